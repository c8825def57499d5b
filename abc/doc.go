// Package abc is MAFTIA's atomic broadcast and secure causal atomic
// broadcast for the arbitrary-failure configuration (Veríssimo et al.,
// IEEE S&P 2006, "Secure asynchronous agreement and broadcast": "the
// parties proceed in global rounds and agree on a set of messages to
// deliver via multivalued agreement"). It follows the MVBA-based shape of
// Cachin, Kursawe, Petzold and Shoup, "Secure and Efficient Asynchronous
// Broadcast Protocols" (CRYPTO 2001, §5 atomic broadcast, §6 secure causal
// atomic broadcast), with the dissemination of Dumbo2 (Guo et al., CCS
// 2020): batches travel by erasure-coded reliable broadcast and MVBA agrees
// only on small certificates.
//
// Fault model: n ≥ 3f+1, at most f Byzantine, authenticated channels, fully
// asynchronous — no timeouts; randomness comes only from the threshold coin
// inside MVBA.
//
// # Protocol, epoch e (instance order/e:E)
//
//	take up to BatchSize queued requests — first those in this replica's
//	  bucket (digest mod n), then any that waited two epochs — and
//	  AVID-broadcast them on order/e:E/avid:self
//	upon AVID delivery of j's batch with outcome digest d (payload or ⊥):
//	  broadcast STORED(j, d, σ_self) — a threshold share (f+1) on
//	  ("stored", e, j, d)
//	upon f+1 valid shares for (j, d): combine them into proof_j — one
//	  correct replica delivered j's batch, so by AVID totality all will
//	  (interpolated at once, checked at proposal time: see Complexity)
//	upon n−f proofs (and epoch e−1 proposed): propose the vector of all held
//	  proofs to MVBA order/e:E/mvba, whose external validity requires ≥ n−f
//	  entries with valid proofs
//	upon MVBA decision V, once every batch in V is AVID-delivered:
//	  deliver, in sender order, the requests of V's batches that are valid
//	  (client signature), not duplicated within the epoch and not delivered
//	  in the last Dedup epochs
//
// Pipelining: epoch e+1 disseminates as soon as epoch e has proposed. An
// epoch starts when this replica has work or f+1 replicas started it.
//
// # Guarantees
//
//   - Agreement and total order: correct replicas deliver the same batches
//     in the same order (MVBA agreement on V, AVID agreement on each batch;
//     the output is a deterministic function of V and the batches).
//   - Integrity: only requests that pass Valid, none twice within Dedup
//     epochs (exactly-once beyond that is the job of smr's client sessions),
//     nothing invented (every batch was AVID-broadcast by its sender).
//   - Validity / censorship resistance: a request held by f+1 correct
//     replicas is delivered — each correct holder includes it within two
//     epochs, and V has n−f entries so it contains a correct holder's batch.
//   - Bounded memory: state for at most Window epochs; messages further
//     ahead are dropped. A replica that fell behind asks FETCH(e) once f+1
//     replicas showed they are past it and accepts f+1 identical EPOCH
//     answers (one is from a correct replica); outputs are kept for Retain
//     epochs, beyond which the state-transfer of package smr takes over:
//     ResumeToken and Resume (resume.go, smr.Resumer) let a replica that
//     installed a certified checkpoint continue right after its batch,
//     with the Dedup window of delivered digests certified in the token.
//
// # Restarts (recover.go, docs/adr/0008)
//
// A replica never speaks in an epoch at or above its durable mark, raised
// (and persisted before that Output's sends) when it first creates state
// for an epoch. After a restart it sits out every epoch below the mark it
// recovered — it learns their outputs by FETCH — so it never contradicts
// what it said before the crash; for those epochs it counts as crashed.
//
// # Secure causal mode (Params.Decrypt)
//
// Clients encrypt requests with TDH2 (crypto/tenc) under the group key and
// label Params.Label. Replicas order ciphertexts whose validity proof
// checks; only after an epoch's order is fixed does a replica release its
// decryption shares (DECRYPT(e, shares) on the root instance); f+1 valid
// shares open each ciphertext; plaintexts whose client signature fails are
// dropped alike everywhere. Before the order is fixed at most f shares (the
// Byzantine replicas' own) exist, so no coalition of f replicas sees a
// request's content before its position is fixed: it can neither front-run
// nor censor by content. Withheld or invalid shares are tolerated (n−f ≥
// f+1 correct replicas release valid ones); invalid ones are evidence.
//
// # Complexity per epoch
//
// Messages: n AVIDs (O(n²) each), n² STORED, one MVBA (O(n²) expected),
// plus n² DECRYPT in causal mode. Bits: O(n·|B|) for batches of |B| bytes
// in total, plus O(n²·λ) for proofs. Crypto per replica: n share
// signatures, n interpolations, one batched pairing check of the proofs an
// epoch proposes (tsig.VerifyBatch; on failure per-proof and per-share
// checks name the bad shares, which are evidence), the MVBA's, and the
// proof checks of MVBA proposals (cached; entries equal to one's own
// checked proof need no pairing since threshold BLS signatures are
// unique); causal mode adds one decryption share and one combination per
// request.
package abc
