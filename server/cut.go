package server

import (
	"sync/atomic"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/transport"
)

// cutTransport drops the frames this replica sends to the peers in its
// cut set (fault injection for tests and demos: Server.CutLinks). A link
// cut at both ends is a partition; the transport's connections stay up,
// so this is the "messages lost" fault, not "peer unreachable".
type cutTransport struct {
	transport.Transport
	members []core.NodeID
	cut     atomic.Pointer[map[core.NodeID]bool]
	dropped atomic.Uint64
}

func (c *cutTransport) cutTo(to core.NodeID) bool {
	m := c.cut.Load()
	return m != nil && (*m)[to]
}

func (c *cutTransport) Send(to core.NodeID, f []byte) {
	if c.cutTo(to) {
		c.dropped.Add(1)
		return
	}
	c.Transport.Send(to, f)
}

func (c *cutTransport) SendMany(to []core.NodeID, f []byte) {
	if c.cut.Load() == nil {
		c.Transport.SendMany(to, f)
		return
	}
	for _, id := range to {
		c.Send(id, f)
	}
}

func (c *cutTransport) Broadcast(f []byte) {
	if c.cut.Load() == nil {
		c.Transport.Broadcast(f)
		return
	}
	for _, id := range c.members {
		c.Send(id, f) // Self included: delivered locally
	}
}

// CutLinks makes this replica drop everything it sends to the listed
// replicas from now on (none: heal). Fault injection for tests: cutting
// replica k's links at k and at every other replica isolates k.
func (s *Server) CutLinks(peers ...uint32) {
	if len(peers) == 0 {
		s.cut.cut.Store(nil)
		return
	}
	m := map[core.NodeID]bool{}
	for _, p := range peers {
		m[core.NodeID(p)] = true
	}
	s.cut.cut.Store(&m)
}
