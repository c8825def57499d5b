// Package tenc is labelled, CCA-secure threshold public-key encryption with
// verifiable decryption shares: TDH2 of Shoup and Gennaro, "Securing
// Threshold Cryptosystems against Chosen Ciphertext Attack" (EUROCRYPT 1998,
// J. Cryptology 2002, §4 "TDH2"), made hybrid. Secure causal atomic broadcast
// (Cachin, Kursawe, Petzold, Shoup, CRYPTO 2001, §4; MAFTIA D26) uses it to
// keep a client request secret until its position in the order is fixed.
//
// # Scheme
//
// Group: ristretto255 (prime order ℓ, RFC 9496), generator g and a second
// generator ḡ obtained by hashing to the group (nobody knows log_g ḡ). A
// trusted dealer (Deal; replaceable by a DKG) Shamir-shares x; public h = g^x
// and verification keys h_i = g^{x_i}; threshold f+1 in maftia.
//
//   - Encrypt(label, m): r random; u = g^r, ū = ḡ^r; K = HKDF-SHA-256(h^r, u);
//     c = AES-256-GCM_K(m, ad = label); a Chaum–Pedersen proof (e, f) that
//     log_g u = log_ḡ ū whose Fiat–Shamir challenge hashes (label, c, u, ū,
//     commitments) — the TDH2 proof that binds the label and the payload.
//   - Check(ct, label): verifies that proof. It is the only way to obtain a
//     CheckedCiphertext, and DecryptShare and Combine accept nothing else, so
//     no member can release a decryption share for an unchecked ciphertext
//     (that check is what makes TDH2 CCA-secure; skipping it turns the
//     scheme into a decryption oracle for mauled ciphertexts).
//   - DecryptShare: u_i = u^{x_i} with a Chaum–Pedersen proof that
//     log_u u_i = log_g h_i (challenge over key id, ciphertext tag, index).
//   - Combine: verify shares, skip and name invalid ones, interpolate
//     h^r = Π u_i^{λ_i} over threshold valid shares, derive K, open c.
//
// All Fiat–Shamir transcripts are domain-separated and length-prefixed
// (crypto/internal/lp), hashed to a scalar with RFC 9380 expand_message_xmd
// (SHA-512) (ATTACKS.md row 11: ambiguous hash inputs leaking threshold keys).
//
// # Guarantees
//
// Under DDH in ristretto255 in the random-oracle model, with at most
// threshold−1 corrupted members: IND-CCA2 security of labelled ciphertexts
// (Shoup–Gennaro Theorem 2) plus the AEAD's security for the payload;
// robustness: invalid decryption shares are detected (ErrInvalidShareProof)
// and f Byzantine members cannot prevent decryption by f+1 correct ones.
// Decryption is deterministic given a checked ciphertext: every correct
// member obtains the same plaintext or the same ErrDecrypt. Combine verifies
// every share it uses: an optimistic combine-then-verify (as in tsig) is not
// safe here, since a Byzantine encryptor and share holders could make the
// result depend on which shares were used.
//
// Every element is decoded canonically and the identity is refused;
// ristretto255 has no cofactor, so there is no small-subgroup case. Indices
// are range-checked, duplicates refused; lengths are bounded before
// allocation; no input bytes make this package panic (fuzzed).
//
// # Why these libraries
//
// github.com/cloudflare/circl's group.Ristretto255 (DESIGN.md §5) gives a
// prime-order group with canonical encodings and RFC 9380 hashing, avoiding
// the cofactor pitfalls of raw edwards25519; the alternative, reusing
// BLS12-381 G1 from blst, costs ~5× more per exponentiation and brings
// subgroup checks back. The payload AEAD is the standard library's
// AES-256-GCM with keys from crypto/hkdf (no extra dependency; each key is
// used for exactly one message, so a fixed nonce is safe).
package tenc
