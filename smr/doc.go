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
//   - the client accepts a result once f+1 replicas sent matching replies
//     authenticated as theirs (by the pinned channel, or by the signature:
//     SignReplies signs a batch of replies at once, and VerifyReply checks
//     one of them alone through its Merkle path, docs/adr/0009): at least
//     one of them is correct.
//
// Checkpoints and state transfer (checkpoint.go, xfer.go): every
// CheckpointEvery batches the replicas certify (seq, digest) of their
// checkpoint state — the engine's resume token followed by Snapshot() —
// with the Quorum key (threshold n−f, so f+1 correct signers). A replica
// at least TransferLag batches behind a certified checkpoint fetches that
// state from peers in SnapshotChunk-sized chunks and installs it; the
// engine, if it implements Resumer, continues right after it. Guarantee:
// a replica installs only a state that f+1 correct replicas reached at
// that position (certificate checked against the cluster's Quorum key,
// every chunk against hashes bound by the certified digest), so agreement
// and exactly-once execution carry across the jump; this needs only the
// threshold-signature assumption, not any peer. Liveness of a transfer
// needs one correct replica that holds the target state (at most f
// faulty sources are each accused and dropped after one wrong answer, and
// silent ones are bypassed by re-requesting their chunks elsewhere), and
// a replica that lags without restarting learns of checkpoints only from
// new checkpoint shares (progress of the others). Memory: one state of at
// most MaxSnapshot bytes, whose size is certified before it is allocated.
//
// The Replica is a protocol core (package core): it never does I/O; replies
// leave as deliveries (Executed, and Transferred after a state transfer)
// that the runtime handles.
package smr
