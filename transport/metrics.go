package transport

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maftia/maftia/core"
)

// Reasons a frame is dropped before reaching the wire or the consumer.
const (
	DropQueueFull = "queue_full" // destination's send queue full (drop newest)
	DropOversized = "oversized"  // frame larger than MaxFrame, never sent
	DropUnknown   = "unknown"    // destination is not a member
	DropClosed    = "closed"     // transport closed
)

var dropReasons = []string{DropQueueFull, DropOversized, DropUnknown, DropClosed}

// Reasons a connection is torn down by the local side or fails.
const (
	ConnOversized = "oversized" // peer announced a frame over MaxFrame
	ConnTruncated = "truncated" // stream ended inside a frame
	ConnIO        = "io"        // read/write error or timeout
	ConnReplaced  = "replaced"  // a newer authenticated connection replaced it
	ConnDial      = "dial"      // outbound dial or handshake failed
)

var connReasons = []string{ConnOversized, ConnTruncated, ConnIO, ConnReplaced, ConnDial}

// Reasons an inbound handshake is refused.
const (
	RejectHandshake    = "handshake"     // TLS failed (e.g. a certificate without its private key)
	RejectUnknownKey   = "unknown_key"   // certificate key is no member's pinned key
	RejectWrongID      = "wrong_id"      // valid member key, but the hello claims another ID
	RejectWrongCluster = "wrong_cluster" // hello names another cluster
	RejectDirection    = "direction"     // a member that should be dialled, not dial
	RejectBadHello     = "bad_hello"     // hello missing or malformed
	RejectBusy         = "busy"          // too many handshakes in progress
)

var rejectReasons = []string{RejectHandshake, RejectUnknownKey, RejectWrongID, RejectWrongCluster,
	RejectDirection, RejectBadHello, RejectBusy}

// counterSet is a fixed set of named counters.
type counterSet struct {
	names []string
	vals  []atomic.Uint64
}

func newCounterSet(names []string) *counterSet {
	return &counterSet{names: names, vals: make([]atomic.Uint64, len(names))}
}

// inc adds one to the named counter and returns its new value.
func (c *counterSet) inc(name string) uint64 {
	for i, n := range c.names {
		if n == name {
			return c.vals[i].Add(1)
		}
	}
	return 0
}

func (c *counterSet) get(name string) uint64 {
	for i, n := range c.names {
		if n == name {
			return c.vals[i].Load()
		}
	}
	return 0
}

func (c *counterSet) snapshot() map[string]uint64 {
	m := make(map[string]uint64)
	for i, n := range c.names {
		if v := c.vals[i].Load(); v > 0 {
			m[n] = v
		}
	}
	return m
}

// peerStats are one peer's counters, updated lock-free on the hot path and
// exported both through Status and as Prometheus metrics.
type peerStats struct {
	id                    core.NodeID
	sentFrames, sentBytes atomic.Uint64
	recvFrames, recvBytes atomic.Uint64
	reconnects, throttled atomic.Uint64
	connected             atomic.Bool
	drops, connErrs       *counterSet
}

func newPeerStats(id core.NodeID) *peerStats {
	return &peerStats{id: id, drops: newCounterSet(dropReasons), connErrs: newCounterSet(connReasons)}
}

func (s *peerStats) status(addr string) PeerStatus {
	return PeerStatus{
		ID: s.id, Addr: addr, Connected: s.connected.Load(),
		SentFrames: s.sentFrames.Load(), SentBytes: s.sentBytes.Load(),
		RecvFrames: s.recvFrames.Load(), RecvBytes: s.recvBytes.Load(),
		Reconnects: s.reconnects.Load(), Throttled: s.throttled.Load(),
		Drops: s.drops.snapshot(), ConnErrors: s.connErrs.snapshot(),
	}
}

var (
	descSentFrames = prometheus.NewDesc("maftia_transport_sent_frames_total", "Frames written to a peer.", []string{"replica", "peer"}, nil)
	descSentBytes  = prometheus.NewDesc("maftia_transport_sent_bytes_total", "Bytes written to a peer (payload and header).", []string{"replica", "peer"}, nil)
	descRecvFrames = prometheus.NewDesc("maftia_transport_received_frames_total", "Frames received from a peer.", []string{"replica", "peer"}, nil)
	descRecvBytes  = prometheus.NewDesc("maftia_transport_received_bytes_total", "Bytes received from a peer (payload and header).", []string{"replica", "peer"}, nil)
	descReconnects = prometheus.NewDesc("maftia_transport_reconnects_total", "Connections to a peer established after the first.", []string{"replica", "peer"}, nil)
	descThrottled  = prometheus.NewDesc("maftia_transport_throttled_total", "Times a peer's reader paused because the peer exceeded its inbound rate.", []string{"replica", "peer"}, nil)
	descDrops      = prometheus.NewDesc("maftia_transport_dropped_frames_total", "Frames dropped, by reason.", []string{"replica", "peer", "reason"}, nil)
	descConnErrs   = prometheus.NewDesc("maftia_transport_connection_errors_total", "Connections to a peer torn down or failed, by reason.", []string{"replica", "peer", "reason"}, nil)
	descConnected  = prometheus.NewDesc("maftia_transport_connected_peers", "1 if an authenticated connection to the peer is up.", []string{"replica", "peer"}, nil)
	descRejected   = prometheus.NewDesc("maftia_transport_rejected_handshakes_total", "Inbound connections refused during authentication, by reason.", []string{"replica", "reason"}, nil)
)

// collector exports a set of peerStats and the handshake rejections.
type collector struct {
	self     string
	peers    []*peerStats
	rejected *counterSet
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSentFrames, descSentBytes, descRecvFrames, descRecvBytes,
		descReconnects, descThrottled, descDrops, descConnErrs, descConnected, descRejected} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, p := range c.peers {
		id := strconv.FormatUint(uint64(p.id), 10)
		counter(descSentFrames, p.sentFrames.Load(), c.self, id)
		counter(descSentBytes, p.sentBytes.Load(), c.self, id)
		counter(descRecvFrames, p.recvFrames.Load(), c.self, id)
		counter(descRecvBytes, p.recvBytes.Load(), c.self, id)
		counter(descReconnects, p.reconnects.Load(), c.self, id)
		counter(descThrottled, p.throttled.Load(), c.self, id)
		for i, r := range p.drops.names {
			counter(descDrops, p.drops.vals[i].Load(), c.self, id, r)
		}
		for i, r := range p.connErrs.names {
			counter(descConnErrs, p.connErrs.vals[i].Load(), c.self, id, r)
		}
		up := 0.0
		if p.connected.Load() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, up, c.self, id)
	}
	for i, r := range c.rejected.names {
		counter(descRejected, c.rejected.vals[i].Load(), c.self, r)
	}
}
