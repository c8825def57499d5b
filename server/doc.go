// Package server hosts one replica of a replicated service in the async
// configuration (DESIGN.md §1; Veríssimo et al., IEEE S&P 2006, §4 "AS:
// activity services"): the replicas' TLS mesh (transport), the runtime
// (node), replication management (smr.Replica) over the atomic broadcast
// engine (abc), the application (apps/kv by default), the durable log of
// executed batches (storage) and the client API.
//
// Guarantees, with n ≥ 3f+1 replicas of which at most f are Byzantine:
// only requests signed by a client listed in the cluster file are ordered
// and executed, each exactly once (ATTACKS S4); a request is refused
// before ordering — and the refusal counted in maftia_smr_refused_total —
// if it is malformed, oversized, from an unknown client or badly signed;
// every reply travels on the TLS connection pinned to the replica's
// identity key and is signed with that key (one signature per batch of
// replies, a Merkle proof per reply: docs/adr/0009), so a client that
// waits for f+1 matching replies gets what the replicated state machine
// computed, and a wrong reply is provable to third parties. The batches a replica executes are made durable before any
// reply that depends on them is sent, and re-executed at restart (S2).
//
// The client API (docs/adr/0002-client-api.md) is a length-prefixed
// protobuf protocol over TLS 1.3 at each member's ClientAddress: the
// replica proves its pinned identity key; clients are authenticated by
// their request signatures. Signatures are batch-verified on a worker
// pool, off the stepping goroutine (a gatherer waits up to a millisecond
// for 8 requests before handing a batch over, so batches grow with the
// load); the ordering engine and the replica
// re-check requests deterministically, reusing those verdicts.
package server
