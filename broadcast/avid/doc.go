// Package avid implements erasure-coded reliable broadcast in the style of
// AVID: C. Cachin and S. Tessaro, "Asynchronous verifiable information
// dispersal", SRDS 2005 (§3, the AVID dispersal protocol, whose READY
// phase and fragment-consistency check are run here as a broadcast with
// retrieval folded in), with the Merkle-tree commitment and the
// decode/re-encode check as in the RBC of Miller et al., "The Honey Badger
// of BFT protocols", CCS 2016 (Figure 2). It is the bandwidth-efficient
// alternative to broadcast/rbc (Bracha) in MAFTIA's communication-support
// layer (Veríssimo et al., IEEE S&P 2006).
//
// Fault model: n ≥ 3f+1 replicas, at most f Byzantine (the sender
// included), authenticated point-to-point channels, fully asynchronous: no
// timeouts. Cryptographic assumption: SHA-256 is collision resistant.
//
// # Protocol
//
//   - The sender frames the payload m (8-byte length ‖ m, zero-padded),
//     splits it into f+1 data fragments and adds n−f−1 Reed–Solomon parity
//     fragments (github.com/klauspost/reedsolomon), so any f+1 of the n
//     fragments recover m. It commits to the fragments with a Merkle tree
//     (SHA-256; leaves, inner nodes and padding domain-separated; every
//     leaf bound to the instance ID and its index) and sends replica i
//     SEND(h, F_i, proof_i).
//   - Replica i checks the proof and sends ECHO(h, F_i, proof_i) — its own
//     fragment only — to all.
//   - After n−f ECHOs with valid proofs for h, or f+1 READY(h), a replica
//     sends READY(h) (once).
//   - After 2f+1 READY(h) and f+1 valid fragments of h, it decodes m,
//     re-encodes m and recomputes the root. If it equals h it delivers m,
//     otherwise it delivers Invalid{h} (⊥): the sender dispersed fragments
//     that are not a consistent encoding. Every correct replica reaches the
//     same verdict whichever f+1 fragments it used, so the outcome never
//     diverges and nothing crashes on a Byzantine sender's choice.
//
// # Guarantees (for one instance with a designated sender)
//
//   - Validity: if the sender is correct and broadcasts m, every correct
//     replica eventually delivers m.
//   - Agreement: no two correct replicas deliver different outcomes (two
//     different payloads, or a payload and ⊥).
//   - Integrity: every correct replica delivers at most once, and if the
//     sender is correct only what it broadcast.
//   - Totality: if one correct replica delivers, every correct replica
//     eventually delivers (2f+1 READYs contain f+1 correct ones, whose
//     READYs amplify; the first correct READY for h followed n−f ECHOs, at
//     least n−2f ≥ f+1 of them from correct replicas that echoed their
//     fragment to everyone, so every correct replica gets f+1 fragments).
//
// # Complexity
//
// Messages: n SEND + n² ECHO + n² READY = O(n²). Bits: with S =
// ⌈(|m|+8)/(f+1)⌉ and a proof of ⌈log₂ n⌉ hashes, the sender sends
// n(S + 32⌈log₂ n⌉ + 32) and every replica sends n(S + 32⌈log₂ n⌉ + 32) +
// 32n, i.e. O(n|m|/(f+1) + n² log n) per replica and O(n²|m|/(f+1)) = O(n|m|)
// in total, against Bracha's O(n|m|) per replica and O(n²|m|) in total.
// Computation: one encoding at the sender; per replica, n+1 proof checks,
// one decoding and one re-encoding.
//
// # Bounded memory (ATTACKS.md rows 2, 5, 6, 8)
//
// Per instance a replica keeps, per peer, one ECHO fragment and one READY
// root; a second, different one is Equivocation evidence, a proof that
// fails is InvalidProof evidence (and that replica's later ECHOs are
// ignored), a SEND from anyone but the sender is Unexpected. Fragments
// larger than the fragment size of a MaxPayload-byte payload, proofs of the
// wrong length and other malformed bytes are refused by Decode. So memory
// is at most n fragments of Params.MaxFragment bytes, whatever Byzantine
// replicas send; after delivery the instance keeps only the fact that it
// delivered. READY and ECHO decisions are persisted before they are sent.
package avid
