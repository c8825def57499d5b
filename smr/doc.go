// Package smr is MAFTIA's replication management (activity support): a
// deterministic application (an FSM) replicated on every replica and fed
// the same totally ordered sequence of authenticated client requests
// (Schneider's state machine approach; Veríssimo et al., IEEE S&P 2006,
// "Activity support services": "trusted applications are implemented by
// deterministic state machines replicated on all the servers and
// initialized to the same state. An atomic broadcast protocol delivers
// client requests, imposing a total order").
//
// The ordering engine is pluggable (Engine): asynchronous atomic broadcast
// (package abc, n ≥ 3f+1) or the wormhole-aided hybrid engine (package
// hybrid, n ≥ 2f+1), chosen by configuration, with the same application on
// top.
//
// Guarantees, given an engine with agreement and total order and at most f
// Byzantine replicas:
//   - S4: only requests carrying a valid signature of a registered client
//     execute, and each (client, seq) at most once — replicas keep a
//     session per client with the last executed sequence number and its
//     reply, part of the replicated state, so retries get the cached reply;
//   - every correct replica executes the same requests in the same order
//     and so passes through the same states; a request that any correct
//     replica rejects is rejected by all (verification is deterministic:
//     one Ed25519 rule, ZIP-215, everywhere);
//   - the client accepts a result once f+1 replicas sent matching signed
//     replies: at least one of them is correct.
//
// The Replica is a protocol core (package core): it never does I/O; replies
// leave as deliveries (Executed) that the runtime signs and sends.
package smr
