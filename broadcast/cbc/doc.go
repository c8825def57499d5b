// Package cbc implements consistent broadcast (also called echo broadcast)
// with a transferable threshold-signature certificate: M. K. Reiter,
// "Secure agreement protocols: reliable and atomic group multicast in
// Rampart", CCS 1994; in the form of C. Cachin, K. Kursawe, F. Petzold and
// V. Shoup, "Secure and efficient asynchronous broadcast protocols",
// CRYPTO 2001, §2.3 (definition) and §3 (the echo-broadcast protocol with
// threshold signatures, "verifiable consistent broadcast"). It is the
// broadcast MAFTIA's multivalued agreement uses to make proposals
// externally verifiable (Veríssimo et al., IEEE S&P 2006).
//
// Fault model: n ≥ 3f+1 replicas, at most f Byzantine (the sender
// included), authenticated point-to-point channels, fully asynchronous.
// Cryptographic assumptions: SHA-256 collision resistance and the
// unforgeability of the threshold BLS scheme of crypto/tsig.
//
// # Protocol
//
//   - The sender sends SEND(m) to all.
//   - On the first SEND(m) from the sender, replica i signs a share on
//     (domain, instance, H(m)) — once per instance, never for two digests;
//     the fact is persisted before the share leaves — and sends
//     SHARE(H(m), σ_i) back to the sender.
//   - The sender combines the threshold of the key set (maftia deals it
//     with threshold n−f; any threshold in [⌈(n+f+1)/2⌉, n−f] is accepted,
//     ⌈(n+f+1)/2⌉ being the minimum for consistency) into the signature σ
//     and sends FINAL(m, σ) to all. Combining is optimistic: the first
//     threshold shares are interpolated and the result verified once; only
//     if it fails is each share verified, the invalid ones reported as
//     InvalidProof evidence and the sender waits for more.
//   - A replica delivers m (with σ, as Certified) on the first FINAL(m, σ)
//     whose σ verifies.
//
// Shares and certificates of received messages are verified by the pure
// Precheck (on the runtime's crypto worker pool), or inline in Step when no
// Precheck ran (the simulator does both). The certificate is transferable:
// VerifyCertificate checks it with the public key alone.
//
// # Guarantees (for one instance with a designated sender)
//
//   - Validity: if the sender is correct and broadcasts m, every correct
//     replica eventually delivers m (the n−f correct replicas' shares
//     suffice).
//   - Consistency (agreement): no two correct replicas deliver different
//     payloads: two certificates need two threshold sets of signers, which
//     share at least 2t−n ≥ f+1 replicas, hence a correct one, and a
//     correct replica signs one digest per instance.
//   - Integrity: every correct replica delivers at most once, and if the
//     sender is correct only what it broadcast.
//   - Consistent broadcast does NOT give totality: with a Byzantine sender
//     some correct replicas may deliver and others not (reliable broadcast,
//     broadcast/rbc or broadcast/avid, does).
//
// # Complexity
//
// Messages: n SEND + n SHARE + n FINAL = O(n), three communication steps.
// Bits: O(n(|m| + κ)) with κ the size of a share (68 bytes) or signature
// (48 bytes) — linear, against O(n²|m|) for Bracha's broadcast.
// Cryptography: per replica one share signature (hash to G1 and an
// exponentiation) and one certificate verification (two pairings, a
// product-of-pairings check); at the sender one interpolation and one
// verification on the optimistic path, plus one pairing check per share
// when some share is bad.
//
// # Bounded memory and evidence (ATTACKS.md rows 5, 7, 8, 11)
//
// The sender keeps at most one share per replica; a replica whose share
// fails is named and ignored from then on, as is a replica whose FINAL
// fails (so each peer costs at most one pairing check). Share indices must
// equal the authenticated sender, so a replayed or duplicated share never
// counts twice. Shares and certificates sign the instance ID, so replaying
// them into another instance fails verification.
package cbc
