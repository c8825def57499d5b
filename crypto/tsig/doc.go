// Package tsig implements robust non-interactive threshold signatures: BLS
// signatures (Boneh–Lynn–Shacham 2001) on BLS12-381 with the signing key
// Shamir-shared among n members so that any threshold of them can sign, in
// the style of Boldyreva, "Threshold Signatures, Multisignatures and Blind
// Signatures Based on the Gap-Diffie-Hellman-Group Signature Scheme"
// (PKC 2003, §3), which is the threshold scheme Cachin, Kursawe and Shoup
// (PODC 2000) and the MAFTIA protocols assume.
//
// # Scheme (min-sig)
//
// A trusted dealer (Deal; a DKG can replace it, keys are separate from the
// dealer) picks a random polynomial f of degree threshold−1 over Z_r and gives
// member i (1..n, equal to its NodeID) the scalar f(i). Public: the group key
// g2^f(0) and the verification keys g2^f(i) in G2 (96 bytes). A signature
// share on m is σ_i = H(m)^f(i) in G1 (48 bytes), H the RFC 9380 hash to G1
// (suite BLS12381G1_XMD:SHA-256_SSWU_RO_) under a per-use domain-separation
// tag carried by the key (certificates, replies and the coin use different
// DSTs, so a share for one use is never valid for another). A share is
// checked with e(σ_i, g2) = e(H(m), g2^f(i)). Any threshold valid shares
// interpolate in the exponent (Lagrange at 0) to H(m)^f(0), the unique BLS
// signature under the group key, whichever shares were used.
//
// # Guarantees
//
// Unforgeability: fewer than threshold members (colluding, adaptively
// corrupted up to threshold−1 statically) cannot produce a valid signature,
// under the co-CDH assumption on BLS12-381 in the random-oracle model.
// Robustness: invalid shares are detected individually (VerifyShare), so a
// correct combiner with threshold valid shares always succeeds, and Combine
// names the bad ones for Evidence. Uniqueness: a message has exactly one
// valid signature under a key, which makes the signature usable as a coin
// (package coin). In maftia the thresholds are n−f (quorum certificates,
// 2f+1 when n = 3f+1) and f+1 (replies, coin) with n ≥ 3f+1.
//
// # Defensive decoding (ATTACKS.md rows 7, 8)
//
// blst does not subgroup-check on decompression; every point decoded here is
// checked to be on the curve, in the prime-order subgroup and not the
// identity, and each failure has its own sentinel error. Share indices are
// range-checked (1..n) and combinations with a duplicate index are refused
// (a duplicate would otherwise let one member count twice). Every share
// carries the key fingerprint and a message tag, so a share made under
// another key set (ErrWrongKey) or for another message (ErrWrongMessage) is
// named as such before the pairing check; these tags are diagnostics only —
// soundness rests on the pairing check (ErrInvalidShare), which a share with
// forged tags still fails. No input bytes make this package panic (fuzzed).
//
// Callers must also check that a share's Index equals the NodeID of the
// authenticated sender it came from: otherwise one Byzantine member could
// submit shares under several indices (its own valid share plus forgeries
// that are merely rejected, or replays of other members' shares).
//
// # Batch verification
//
// BatchVerifyShares checks k shares on one message with a random linear
// combination (Bellare–Garay–Rabin 1998 small-exponent test, 64-bit
// exponents): e(Σ r_i σ_i, g2) = e(H(m), Σ r_i vk_i), falling back to
// per-share checks on failure.
//
// # Why blst
//
// github.com/supranational/blst is constant-time, formally verified in parts,
// audited, implements RFC 9380 hash-to-curve exactly (tested here against the
// RFC's Appendix J.9.1 vectors, and against a signature published by drand's
// quicknet, a production threshold-BLS beacon of the same min-sig shape), and is the most widely deployed BLS12-381
// library (Ethereum clients). Alternatives considered: gnark-crypto (pure Go,
// no cgo, slower pairing) and kilic/bls12-381 (unmaintained). blst needs cgo;
// its Go binding panics on wrong argument types, takes little-endian scalars
// in Mult, and leaves subgroup checks to the caller — all confined to this
// package. Secret polynomial arithmetic uses blst's scalar operations;
// public Lagrange coefficients use math/big. blst's multi-scalar
// multiplication may fan out over internal goroutines that are joined before
// the call returns; results are deterministic.
package tsig
