// Package hybrid implements MAFTIA's wormhole-aware protocols: protocols
// for a payload system that may be Byzantine and fully asynchronous, aided
// by a small crash-only, synchronous Trusted Timely Computing Base (the
// TTCB, package ttcb) on every host (Veríssimo et al., "Intrusion-tolerant
// middleware", IEEE S&P 2006, "the hybrid configuration"; DI/FCUL TR 04-14).
//
// Every protocol here is a pure core (package core): it never reads a
// clock, and it reaches the TTCB only through service requests,
// out.Request(inst, "ttcb", tag, ttcb.TBAPropose{…}) and ttcb.TBADecide,
// whose answers come back as core.ServiceReply. The TTCB's trusted block
// agreement (TBA) is what makes the small resilience bounds possible: every
// caller that obtains the result of an execution (elist, tstart, decision)
// obtains the same one — the decided 32-byte value and the masks of who
// proposed it (proposed-ok) and who proposed anything by tstart.
//
// # Fault model
//
// Payload replicas: n, of which at most f Byzantine, authenticated
// point-to-point channels, no timing assumptions for safety. TTCB: one
// module per host, crash-only, synchronous (results of an execution are
// available at tstart + T_TBA), reachable only by the local replica under
// its own identity — a Byzantine replica can propose any value, late, or
// twice (the second different one is refused), but cannot propose for
// another replica nor make two callers see different results. An execution
// is named by (elist, tstart, decision); the protocols here never let a
// (possibly Byzantine) sender choose tstart alone: it comes from the
// parent (a schedule derived from agreed history, or configuration), so
// all correct replicas use the same execution.
//
// # Reliable multicast: BRM-T (RMulticast)
//
// Correia, Lung, Fraga, Veríssimo, "Efficient Byzantine-resilient reliable
// multicast on a hybrid failure model", SRDS 2002 (the BRM-T protocol). Resilience
// n ≥ f+2 (any number of Byzantine recipients as long as two replicas are
// correct). The sender multicasts DATA(M) on the payload network and
// proposes H(M) (domain-separated, bound to the instance and tstart) to a
// TBA with decision rmulticast (the value of elist[0] = the sender); every
// recipient proposes the hash of what it received. The TBA decides which
// message is valid (the sender's proposal) and who holds it (proposed-ok).
// Recovery: a replica that delivers and is among the first f+1 of
// proposed-ok, or not in it at all, retransmits M to every replica missing
// from proposed-ok; a replica that hears of the instance only after tstart
// joins the agreement late (the TTCB refuses the proposal but answers the
// result) and delivers the retransmitted message whose hash was decided.
// Guarantees: agreement (correct replicas deliver the same message or
// none, even under an equivocating sender), integrity (at most once, and
// for a correct sender only its message), validity (a correct sender that
// proposes by tstart is delivered by every correct replica) and totality.
// Cost: n payload messages in the failure-free case (DATA to all, the
// sender's own copy included; plus up to
// (f+1)·(n−|proposed-ok|) retransmissions), one TBA execution, two TTCB
// calls per replica.
//
// # Vector consensus and consensus (VConsensus, NewConsensus)
//
// After Neves, Correia, Veríssimo, "Solving vector consensus with a
// wormhole", IEEE TPDS 16(12), 2005, and Correia, Neves, Lung, Veríssimo,
// "Low complexity Byzantine-resilient consensus", Distributed Computing
// 17(3), 2005. Resilience n ≥ 3f+1, as the papers state. Round r: every
// replica reliably multicasts its proposal with BRM-T, all n multicasts
// sharing tstart_r. The TTCB's results of those n block agreements are the
// same at every replica, so they already are an agreed vector of hashes:
// entry s is present iff the TBA decided s's hash and at least f+1
// replicas hold the message (|proposed-ok| ≥ f+1, so a correct holder
// retransmits it). A replica learns every result by joining late the
// multicasts it did not hear of, as soon as its own result (available at
// tstart_r + T_TBA) tells it TTCB time is past tstart_r. If at least 2f+1
// entries are present (so at least f+1 from correct replicas) the
// replica decides the vector once it holds their messages; otherwise every
// correct replica, seeing the same results, moves to round r+1 with
// tstart_{r+1} = tstart_r + T_TBA + Window·2^(r+1) (capped). Payload
// messages need no timing for safety; a round succeeds once 2f+1 senders
// and f of their recipients are timely relative to the window, which
// keeps doubling (the only timing the payload side ever sees is the
// TTCB's). Consensus decides the value with the most (≥ f+1) entries of
// the vector, ties to the smallest, else a default ⊥: agreement; if all
// correct replicas propose v they decide v; a decided value was proposed
// by a correct replica. Cost per round: n multicasts, i.e. n² payload
// messages (plus retransmissions), n TBA executions and n² TBA proposals
// (2n² TTCB calls); one round in the failure-free case.
//
// # Atomic multicast (AMulticast)
//
// Instance k is a vector consensus on every replica's batch of pending
// requests; the present entries' valid requests, in replica order without
// duplicates, are batch k (n ≥ 3f+1; per instance the cost of one vector
// consensus). It meets the smr Engine contract too.
//
// # Ordering engine for hybrid state machine replication (Engine)
//
// Correia, Neves, Veríssimo, "How to tolerate half less one Byzantine
// nodes in practical distributed systems", SRDS 2004: n ≥ 2f+1, because
// agreement on the order is done by the TTCB. Epoch e has tstart_e. Every
// replica j sends PROPOSE(e, B_j) with its pending valid requests to all
// and proposes H(e, j, B_j) to the TBA whose elist starts at j (decision
// majority: decided iff more than n/2 = f+1 replicas proposed the same
// hash, so a correct replica validated B_j with the deterministic Valid
// predicate and holds it). A replica proposes for every batch it receives
// and validates, then joins late the other executions of the epoch once
// its first result shows TTCB time past tstart_e (the TTCB answers both
// "nobody proposed" and "expired" with ErrExpired; a trusted timestamp
// and Params.Retention tell them apart; a module that cannot vouch for
// "nobody proposed" withholds instead, ADR 0007). With all n results, decided
// batches it lacks are fetched from their proposed-ok replicas; the epoch
// delivers one *wire.Batch (the decided batches in owner order, duplicates
// removed; nothing when all are empty). tstart_{e+1} = tstart_e + T_TBA +
// Window·2^w, where w counts consecutive weak epochs (fewer than f+1
// executions decided): an execution the TTCB could not decide is a timing
// failure of the payload system it detected, and the next epoch gets more
// time. There is no leader and so no leader election: a Byzantine or
// silent replica wastes only its own execution of each epoch, and every
// request submitted to f+1 correct replicas is in a correct replica's
// batch. No payload timers are used: the TTCB's replies, which arrive at
// tstart + T_TBA, are the only clock (core.TimerFired is accepted and
// ignored, so a runtime may use it to start epoch 0). Guarantees (the smr
// Engine contract): agreement and total order (all correct replicas obtain
// the same n results per epoch and process epochs in order), integrity
// (only Valid requests, none twice per batch), validity (once the payload
// system is timely relative to the doubling window). Cost per epoch: n²
// PROPOSE messages, n executions, n² TBA proposals (2n² TTCB calls), plus
// FETCH/BATCH for late replicas; batching amortizes it over requests.
//
// Deviations and limits: the epoch schedule, not the sender, fixes every
// tstart (the papers let the initiator pick it; with a Byzantine
// initiator that would split the correct replicas over two executions).
// The engine persists its resume point (epoch, tstart, weak count, last
// batch) durably before each epoch's PROPOSE; a restarted replica resumes
// there without proposing a batch of its own (the TTCB keeps what it
// proposed before the crash), joins late and fetches decided batches; it
// implements smr.Resumer, so state transfer skips it past what others no
// longer keep (Params.Retain epochs, the TTCB's Retention). A result its
// own module withholds (a timing failure of that module in the execution)
// is relayed by the others: adopted with a valid module attestation
// (Params.ModuleKeys), else from f+1 identical reports; with every
// module's attested withholding the execution counts as undecided, since
// no module ever answered it (relay.go; docs/adr/0006-hybrid-runtime.md).
// Atomic multicast and vector consensus hold messages for later
// instances/rounds only AMParams.Ahead / VCParams.RoundsAhead ahead and do
// not persist anything. Epochs are not pipelined. See
// docs/adr/0004-hybrid-schedules.md.
//
// # Memory
//
// Per instance at most one message per sender is kept before the result
// is known; an engine keeps a bounded window of epochs and bounded queues.
package hybrid
