// Package transport is maftia's multipoint network (MN in the MAFTIA
// architecture, DESIGN §2): a mesh of mutually authenticated TLS 1.3
// connections between the n replicas of one cluster, plus an in-memory
// network with the same interface for tests.
//
// # Authentication (ATTACKS.md row 11)
//
// Each replica's Ed25519 identity public key is pinned in the cluster
// configuration (Config.Peers). At start-up a replica makes a self-signed
// certificate from its identity key (SelfSignedCert). There is no CA and no
// hostname check: both sides skip chain verification and instead compare
// the key in the peer's certificate with the pinned key (tls.Config
// VerifyConnection); TLS 1.3's CertificateVerify proves possession of the
// private key, and client certificates are required. After the handshake
// the dialer sends a hello frame with the NodeID it claims and the cluster
// identifier; the acceptor checks that the claimed ID is the member whose
// key was proven, that the cluster matches, and that this member is one
// that should dial it, then answers with its own hello, which the dialer
// checks likewise. Refusals are counted by reason
// (maftia_transport_rejected_handshakes_total{reason}): handshake (TLS
// failed, e.g. a certificate carrying another member's key presented
// without that key), unknown_key (no other member's pinned key), wrong_id
// (a member's key claiming another ID), wrong_cluster, direction (a
// higher ID dialling), bad_hello, busy (more than MaxHandshakes handshakes
// in flight).
// Handshake and hello must complete within HandshakeTimeout.
//
// # Who dials whom
//
// The lower NodeID dials the higher, so there is exactly one connection
// per pair and no tie-breaking. A replica accepts only from lower IDs; a
// new authenticated connection from a peer replaces the current one (the
// peer restarted and its old connection is a half-open leftover). A dialer
// whose connection fails redials with jittered exponential backoff
// (BackoffMin doubling up to BackoffMax, each delay uniform in [d/2, d));
// the backoff resets after a connection that lived longer than BackoffMax.
//
// # Framing (ATTACKS.md row 8)
//
// Each frame is a 4-byte big-endian length and that many bytes, at most
// Config.MaxFrame. A longer announced length, or a stream that ends inside
// a frame, drops the connection and is counted
// (maftia_transport_connection_errors_total{reason="oversized"|"truncated"});
// memory is allocated in 64 KiB steps as bytes arrive, never up front for
// the announced length. Garbage almost always decodes as an oversized
// length. ReadFrame has a fuzz target.
//
// # Queues, loss and eventual delivery
//
// Sends never block the caller (the node's stepping goroutine). Each peer
// has a bounded FIFO of QueueLen frames; when it is full the newest frame
// is dropped and counted (maftia_transport_dropped_frames_total
// {reason="queue_full"}). Frames queued while a peer is disconnected stay
// queued and are written after reconnection; frames already handed to a
// connection that then fails (in its write buffer or in flight) are lost,
// and nothing is re-sent. The reasoning: the asynchronous protocols above
// need eventual delivery only between correct replicas, which holds while
// queues do not overflow; a replica so slow or so long disconnected that
// its queue overflows is, for the protocols, indistinguishable from one of
// the f faulty replicas. Buffering for it without bound would let one slow
// or malicious peer exhaust the memory of the correct ones (ATTACKS.md row
// 2), so the transport bounds the damage and the protocols above catch a
// lagging replica up by checkpoint and state transfer instead. Frames for
// Self are delivered locally, without the network.
//
// The writer coalesces: frames go through a 64 KiB bufio.Writer that is
// flushed only when the peer's queue is empty. Each write and flush has a
// WriteTimeout, so a peer that stops reading is disconnected rather than
// blocking its writer forever.
//
// # Flood control (ATTACKS.md rows 2 and 10)
//
// Each connection's reader applies a token bucket in frames and in bytes
// per second (RateFrames/BurstFrames, RateBytes/BurstBytes; a negative
// rate disables a limit). A peer over its budget is throttled: its reader
// stops reading until the bucket refills, so TCP flow control pushes back
// on the flooder, whose own queue to us then overflows and drops. Throttle
// events are counted (maftia_transport_throttled_total). Readers of other
// peers are independent goroutines and keep their own budgets. Received
// frames go to one shared channel of InboundLen frames; a full channel
// blocks readers (backpressure), never drops.
//
// # Metrics
//
// All metrics carry replica and peer labels and are named
// maftia_transport_<what>_<unit>: sent/received frames and bytes, dropped
// frames by reason, connection errors by reason, reconnects, throttle
// events, connected peers (gauge), rejected handshakes by reason. They are
// registered on Config.Registerer and unregistered by Close; Status
// returns the same counters for /status.
//
// # Goroutines
//
// One accept loop, one goroutine per peer (dialler or acceptor, which also
// writes), one reader per live connection, one per handshake in progress
// (at most MaxHandshakes). Close stops them all and waits for them.
package transport
