// Package ttcb is maftia's wormhole: a software Trusted Timely Computing
// Base (TTCB) — one small module per host, reached by local payload
// processes over a Unix socket and connected to the other modules by a
// separate control network. It follows the TTCB of Correia, Veríssimo and
// Neves ("The design of a COTS real-time distributed security kernel",
// EDCC 2002) as used by MAFTIA (Veríssimo et al., "Intrusion-tolerant
// middleware", IEEE S&P 2006; DI/FCUL TR 04-14), and the wormhole-aware
// protocols that use it (Correia et al., "Efficient Byzantine-resilient
// reliable multicast on a hybrid failure model", SRDS 2002; Correia, Neves,
// Veríssimo, "How to tolerate half less one Byzantine nodes in practical
// distributed systems", SRDS 2004).
//
// # Services
//
//   - Local authentication (EDCC 2002 §3): an authenticated key exchange
//     between an entity and its module (X25519 ephemeral Diffie–Hellman, the
//     module signs the transcript with its Ed25519 key, which the entity
//     pins; the entity signs it with its registered Ed25519 key, binding its
//     ID; keys from HKDF-SHA256). Every later call carries HMAC-SHA256 with
//     per-direction sequence numbers: no forgery, replay or impersonation of
//     another local entity. See local.go.
//   - Trusted timestamping: GetTimestamp returns global time (ns), strictly
//     increasing per module. Modules synchronize to the reference (the
//     lowest-ID joined module) by round-trip clock reading over the control
//     network; a module's error bound ε is half the smallest recent round
//     trip, so two modules agree within π ≤ ε_i + ε_j (+ drift over one
//     sync period). Measured on loopback: ε ≈ 30–140 µs, worst observed
//     pairwise difference ≈ 15 µs (TestClusterClockPrecisionAndMonotonicity;
//     docs/PERFORMANCE.md).
//   - Trusted block agreement, TBA: Propose(eid, elist, tstart, decision,
//     value) → tag and Decide(tag) → (value, proposed-ok, proposed-any). An
//     execution is identified by (elist, tstart, decision); each entity of
//     elist may propose one 32-byte value before tstart (a repeated equal
//     proposal is idempotent, a different one is refused with ErrConflict).
//     Every caller that obtains the result of an execution obtains the same
//     one: the decision function (Apply; majority, rmulticast, plurality,
//     extensible by RegisterDecision) applied to the proposals the TTCB
//     received by tstart, with the masks of who proposed the decided value
//     and who proposed anything. Results are available by tstart + T_TBA,
//     T_TBA = (f+2)·Δ plus one fsync (Config.TBABound), and kept for
//     Config.Retention; memory is bounded by MaxExecs, MaxPerEntity and a
//     per-entity token bucket (admission control, ATTACKS row 10).
//   - Trusted random numbers (GetRandom), duration measurement and
//     timing-failure detection for a local entity's timed actions
//     (StartMeasure/StopMeasure with a bound).
//
// # How block agreement works
//
// Global time is cut into slots of length Δ. For an execution with tstart,
// round 1 starts at the first slot boundary s0·Δ ≥ tstart. In rounds
// 1..f+1, at boundary (s0+r−1)·Δ, every module sends every other module the
// set of proposals it knows for the execution (flooding); at boundary
// (s0+f+1)·Δ every module applies the decision function to the union it
// holds. This is the synchronous f+1-round FloodSet agreement: with at most
// f module crashes (including crashes in the middle of sending a round),
// one round has no crash, after which all correct modules hold the same
// set, so all decide alike. All messages are authenticated with pairwise
// HMAC-SHA256 keys that only modules hold, and carry the sender's
// persisted incarnation, a random boot nonce and a sequence number.
//
// Timeliness is checked, not assumed silently. Every receiver judges a
// round message by the sender's timestamp: stamped later than its
// boundary plus Slack, every receiver drops it. A module that sent late,
// or that received an in-time message only after its round closed (it was
// descheduled), is faulty for that execution: it never answers it
// (ErrUnavailable). This is crash semantics per execution; a module with
// chronic timing failures (more than MaxTimingFailures in 64 slots) or a
// clock jump fails itself (Run returns ErrTimingFailure) and is restarted
// with a new incarnation, rejoining after it resynchronizes; it refuses
// executions that started before it rejoined. A result is answered only
// once durable and once a control message stamped at or after the deadline
// has been read: all modules write to one socket read in order, so every
// in-time round message was read by then.
//
// A module that cannot hear n−f modules (itself included) does not join,
// and withholds every execution in one of whose slots it did not hear
// from n−f−1 peers (every joined module sends at every boundary, so this
// is checked slot by slot).
//
// An entity that proposed too late to an execution this module holds no
// trace of is told "nobody proposed" (ErrExpired) only once the module
// can vouch for it: after the deadline (as for a release), and only if the
// module was connected and in time in every slot of the execution (it
// keeps a bounded record of "blind" slots). Otherwise it withholds,
// attested (ADR 0007).
//
// # Assumptions
//
//   - Modules fail only by crashing (they are the trusted part); payload
//     processes may be Byzantine — they can propose anything, repeat, lie
//     about tstart or flood, but cannot make two callers see different
//     results, nor speak for another entity.
//   - The control channel is private and synchronous: a datagram sent by a
//     correct module arrives within δ, clocks agree within π, and
//     δ + π + Slack ≤ Δ. Loss of a datagram counts as an omission of its
//     sender; at most f modules may be faulty for one execution.
//   - The module runs with enough CPU to meet Slack: on a heavily
//     oversubscribed machine executions are withheld (liveness), never
//     answered differently (safety). Run it on a dedicated core or with
//     real-time priority in production.
//
// # Crash-only state and its limits (ATTACKS rows 1, 12, 14)
//
// Each module appends to a state file (CRC-framed records, fsync before
// acting): its incarnation at every start, every answerable result before
// it is answered, the incarnations it has seen of the others. A complete
// record with a bad checksum is refused (ErrCorruptState); a torn last
// record (crash between write and fsync) was never acted upon and is
// dropped. A restarted module re-serves exactly what it persisted.
//
// Rollback and cloning: peers remember (and persist) each module's highest
// incarnation and boot nonce; a module starting from a restored older
// state file presents an incarnation they have seen, is told so (Stale)
// and fails itself (ErrRollback); of two copies running at once, the one
// with the older incarnation (or, at equal incarnations, the one heard
// second) is refused the same way, so peers accept one copy at a time. Residual risk: if every module's state is rolled back
// together, or a rolled-back module is isolated from all peers, nothing
// detects it — a hardware monotonic counter (TPM NV counter) would be
// needed, as for any trusted counter without one. A clone on another host
// that cannot reach its peers never joins (n−f rule) but, with n−f = 1
// (f = n−1), could serve results alone.
//
// # Interfaces
//
// Client is the Go API for payload processes; Module is the service;
// Model is a deterministic model of the whole TTCB for the simulator,
// driven by ticks and sharing the decision functions and the execution
// table with Module. Wire formats are protobuf (wire/ttcb.proto) with
// checked decoders (codec.go, fuzzed). `maftia ttcb --config ttcb.yaml`
// runs a module (cmd/maftia/ttcb.go).
package ttcb
