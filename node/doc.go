// Package node is maftia's runtime (DESIGN §2–3): it hosts a stack of
// deterministic protocol cores (a core.Protocol, typically a *core.Mux whose
// factory creates instances) and gives them what they must not touch
// themselves: goroutines, the network (package transport), storage, clocks,
// a crypto worker pool, metrics and logs.
//
// # Pipeline
//
//	transport.Receive ─▶ receive: wire.DecodeEnvelope, sender == peer? ─▶ precheck pool ─▶ per-sender reorder ─▶ stepping goroutine
//	Submit (local inputs), service replies, timer ticks ────────────────────────────────────────────────────────▶ stepping goroutine
//
// One receive goroutine decodes every frame with wire.DecodeEnvelope (sender
// in 1..n, canonical instance ID, bounded payload) and checks that the
// envelope's sender is the peer the transport authenticated. A frame that
// fails either check is dropped, counted
// (maftia_node_dropped_messages_total{reason="malformed"|"sender_mismatch"})
// and recorded as evidence against the authenticated peer, which provably
// sent it over its own channel: the impersonated replica is never blamed.
//
// If the root core implements core.Prechecker, each message is checked on a
// pool of Config.Workers goroutines (GOMAXPROCS by default) and the result
// travels in Message.Checked. Per-sender order is preserved: the receive
// goroutine hands each job both to the pool and to its sender's FIFO, and
// one forwarder per sender waits for the head job before passing it on, so
// checks run in parallel but each sender's messages reach Step in arrival
// order (a slow check from one sender never delays another sender). A
// Precheck error is a drop (reason "precheck"); if it wraps *core.Evidence
// the evidence is recorded.
//
// # The stepping goroutine
//
// Run's own goroutine is the only one that touches the cores. It steps
// events in batches: it waits for one event, then also steps whatever is
// already queued (up to Config.MaxBatch events), all into one core.Output,
// and then performs that Output, in order:
//
//  1. Persist: Storage.SaveRecords with every record of the batch, in one
//     call that returns only when they are durable — before any message of
//     any step of the batch is sent (the "persist before send" rule of
//     etcd-io/raft's Ready). One commit (one fsync with the Pebble store,
//     about 19 ms on the reference disk) serves a whole batch, so the cost
//     per step falls as load rises. A storage error halts the replica.
//  2. Sends: each message is wrapped in a wire envelope with Sender = Self.
//     To Everyone: the transport sends to every other member; To == Self:
//     nothing goes to the network. The copies for Self were already looped
//     back during the batch: after each Step the runtime steps the
//     messages the replica addressed to itself (From = Self, Checked = nil,
//     so the core decodes inline) before the next external event. That is
//     safe before the records are durable because nothing those steps
//     cause leaves the process until the whole batch is saved.
//  3. Deliveries: Config.Deliver, synchronously and in order — so the
//     application never sees a delivery whose justifying records could be
//     lost in a crash.
//  4. Timers: abstract ticks. The runtime advances a tick counter every
//     Config.Tick and steps TimerFired for due timers in deadline order;
//     setting a timer again re-arms it, After == 0 cancels it.
//  5. Requests: to the Service registered under the request's name; the
//     reply comes back as a ServiceReply event. A request to an unknown
//     service halts the replica (a wiring bug, not an attack).
//  6. Evidence: counted per accused replica and kind
//     (maftia_node_evidence_total{accused,kind}), logged at WARN with the
//     accused, kind, instance and epoch, and shown in /status (totals per
//     replica and kind, and the 32 most recent items).
//
// An error from Step means a local invariant broke: Run stops every
// goroutine it started and returns the error (the replica halts; /healthz
// turns 503). Byzantine input never produces an error.
//
// # Shutdown, logs, admin
//
// Run returns nil when its context is cancelled, after every goroutine it
// started has ended (tests check with goleak). The transport is the
// caller's: close it after Run returns. Logs are log/slog with the stable
// keys replica, instance and epoch. AdminHandler serves /metrics
// (Prometheus, Config.Registry), /healthz and /status (JSON: members and
// their connections from the transport, runtime counters, rejected
// handshakes, evidence per replica).
//
// # Memory bounds
//
// Every queue between goroutines is bounded (Config.QueueLen); a full queue
// blocks its producer, which ultimately stops the transport's reader for
// that peer (TCP back-pressure), never grows. Loopback messages are bounded
// by what one Output can produce. Buffering for instances not yet started
// is the Mux's EarlyBuffer, bounded per sender.
package node
