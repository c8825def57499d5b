// Package sim is maftia's deterministic simulator (DESIGN §4): n replicas'
// protocol cores run in one process, single-threaded, every decision taken
// from one seeded random source, so a run is fully determined by its seed
// and a failing seed replays byte for byte.
//
// A Cluster holds the replicas, the network of in-flight messages, the
// services (the TTCB model), and the trace. It can be driven step by step
// (golden interaction scripts do that) or by Run, whose adversarial
// scheduler delivers pending messages in arbitrary order, holds back all
// traffic of chosen replicas for long stretches, partitions the correct
// replicas temporarily, and lets Byzantine replicas rush. The only promise
// it keeps is eventual delivery between correct replicas: a safety phase
// with faults is followed by a liveness phase in which holds and
// partitions are lifted and every protocol must terminate (as
// TigerBeetle's VOPR does).
//
// Byzantine behaviours are thin wrappers around a correct core (as in
// relab/hotstuff): silent, crash after k steps, equivocate (different
// payloads to different replicas), wrong (syntactically valid but
// semantically wrong messages, made by the protocol's Mutator), replay
// (old messages, also into other instances), garbage (random bytes) and
// twins (two copies of one replica with the same identity fed different
// inputs). A suite may add protocol-specific attacks (Suite.Attacks: an AVID
// sender dispersing inconsistent fragments, a CBC sender trying to get two
// payloads certified) and a per-run Setup (the trusted dealer of threshold
// keys, seeded by the run seed so keys replay with the seed). Invariant
// checkers registered by each protocol's Suite run after every run; a
// generic one requires that no correct replica is ever accused.
//
// The simulator does not model cryptography's computational assumptions:
// Byzantine wrappers cannot forge what they cannot compute, because they
// only hold their own keys.
package sim
