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
// multicast on a hybrid failure model", SRDS 2002 (Fig. 2). Resilience
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
// Cost: n−1 payload messages in the failure-free case (plus up to
// (f+1)·(n−|proposed-ok|) retransmissions), one TBA execution, two TTCB
// calls per replica.
//
// # Ordering engine for hybrid state machine replication (Engine)
//
// Correia, Neves, Veríssimo, "How to tolerate half less one Byzantine nodes
// in practical distributed systems", SRDS 2004: n ≥ 2f+1. See engine.go.
//
// # Memory
//
// Per instance at most one message per sender is kept before the result
// is known; an engine keeps a bounded window of epochs and bounded queues.
package hybrid
