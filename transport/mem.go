package transport

import (
	"slices"
	"sync"

	"github.com/maftia/maftia/core"
)

// MemNetwork is an in-memory network of endpoints with the Transport
// semantics (bounded, non-blocking sends that drop and count when the
// destination is full; per-sender FIFO; local self-delivery), for tests of
// the runtime without sockets. Links can be cut and restored.
type MemNetwork struct {
	mu        sync.RWMutex
	endpoints map[core.NodeID]*MemEndpoint
	cut       map[[2]core.NodeID]bool
	ids       []core.NodeID
}

// NewMemNetwork creates endpoints for ids, each with an inbound queue of
// queueLen frames.
func NewMemNetwork(queueLen int, ids ...core.NodeID) *MemNetwork {
	n := &MemNetwork{endpoints: make(map[core.NodeID]*MemEndpoint), cut: make(map[[2]core.NodeID]bool)}
	n.ids = slices.Sorted(slices.Values(ids))
	for _, id := range ids {
		n.endpoints[id] = &MemEndpoint{net: n, self: id, inbound: make(chan Inbound, queueLen),
			stats: make(map[core.NodeID]*peerStats)}
		for _, other := range ids {
			n.endpoints[id].stats[other] = newPeerStats(other)
		}
	}
	return n
}

// Endpoint returns the transport of replica id (nil if unknown).
func (n *MemNetwork) Endpoint(id core.NodeID) *MemEndpoint { return n.endpoints[id] }

// SetLink cuts (up=false) or restores the directed link from → to.
// Frames sent over a cut link are dropped, as on a lost connection.
func (n *MemNetwork) SetLink(from, to core.NodeID, up bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if up {
		delete(n.cut, [2]core.NodeID{from, to})
	} else {
		n.cut[[2]core.NodeID{from, to}] = true
	}
}

// MemEndpoint is one replica's side of a MemNetwork.
type MemEndpoint struct {
	net     *MemNetwork
	self    core.NodeID
	inbound chan Inbound
	mu      sync.Mutex
	closed  bool
	stats   map[core.NodeID]*peerStats // read-only map after construction
}

var _ Transport = (*MemEndpoint)(nil)

// Self implements Transport.
func (e *MemEndpoint) Self() core.NodeID { return e.self }

// Receive implements Transport.
func (e *MemEndpoint) Receive() <-chan Inbound { return e.inbound }

// Send implements Transport.
func (e *MemEndpoint) Send(to core.NodeID, frame []byte) {
	st := e.stats[to]
	dst := e.net.endpoints[to]
	if st == nil || dst == nil {
		e.stats[e.self].drops.inc(DropUnknown)
		return
	}
	e.net.mu.RLock()
	cut := e.net.cut[[2]core.NodeID{e.self, to}]
	e.net.mu.RUnlock()
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if cut || closed {
		st.drops.inc(DropClosed)
		return
	}
	dst.mu.Lock()
	defer dst.mu.Unlock()
	if dst.closed {
		st.drops.inc(DropClosed)
		return
	}
	select {
	case dst.inbound <- Inbound{From: e.self, Frame: frame}:
		st.sentFrames.Add(1)
		st.sentBytes.Add(uint64(len(frame)))
		dst.stats[e.self].recvFrames.Add(1)
		dst.stats[e.self].recvBytes.Add(uint64(len(frame)))
	default:
		st.drops.inc(DropQueueFull)
	}
}

// SendMany implements Transport.
func (e *MemEndpoint) SendMany(to []core.NodeID, frame []byte) {
	for _, id := range to {
		e.Send(id, frame)
	}
}

// Broadcast implements Transport.
func (e *MemEndpoint) Broadcast(frame []byte) { e.SendMany(e.net.ids, frame) }

// Status implements Transport.
func (e *MemEndpoint) Status() Status {
	st := Status{Self: e.self, Rejected: map[string]uint64{}}
	for _, id := range e.net.ids {
		ps := e.stats[id].status("")
		ps.Connected = true
		st.Peers = append(st.Peers, ps)
	}
	return st
}

// Close implements Transport: later sends to or from e are dropped.
func (e *MemEndpoint) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	return nil
}
