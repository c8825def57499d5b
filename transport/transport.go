package transport

import (
	"github.com/maftia/maftia/core"
)

// Inbound is one frame received from an authenticated peer.
type Inbound struct {
	From  core.NodeID
	Frame []byte
}

// Transport is the multipoint network between the replicas of one cluster.
//
// Sends never block: a frame goes into the destination's bounded queue or
// is dropped and counted. Frames handed to Send, SendMany or Broadcast must
// not be modified afterwards (one slice is shared by every destination).
// Self-addressed frames are delivered locally, without the network.
type Transport interface {
	// Self is the local replica.
	Self() core.NodeID
	// Send queues frame for one replica.
	Send(to core.NodeID, frame []byte)
	// SendMany queues frame for each listed replica.
	SendMany(to []core.NodeID, frame []byte)
	// Broadcast queues frame for every member, Self included.
	Broadcast(frame []byte)
	// Receive yields frames from peers in per-peer FIFO order. The channel
	// is never closed; consumers stop on their own context.
	Receive() <-chan Inbound
	// Status reports per-peer connection state and counters.
	Status() Status
	// Close stops every goroutine and closes every connection.
	Close() error
}

// Status is a snapshot of a transport's state.
type Status struct {
	Self     core.NodeID       `json:"self"`
	Peers    []PeerStatus      `json:"peers"`
	Rejected map[string]uint64 `json:"rejected_handshakes"`
}

// PeerStatus is one peer's connection state and counters.
type PeerStatus struct {
	ID         core.NodeID       `json:"id"`
	Addr       string            `json:"addr,omitempty"`
	Connected  bool              `json:"connected"`
	SentFrames uint64            `json:"sent_frames"`
	SentBytes  uint64            `json:"sent_bytes"`
	RecvFrames uint64            `json:"recv_frames"`
	RecvBytes  uint64            `json:"recv_bytes"`
	Reconnects uint64            `json:"reconnects"`
	Throttled  uint64            `json:"throttled"`
	Drops      map[string]uint64 `json:"drops,omitempty"`
	ConnErrors map[string]uint64 `json:"conn_errors,omitempty"`
}
