package transport

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/maftia/maftia/core"
)

// helloMax bounds the hello frame.
const helloMax = len(helloMagic) + 6 + MaxClusterID

// ioBuf is the size of each connection's read and write buffers.
const ioBuf = 64 << 10

// TLS is the mutually authenticated TLS 1.3 mesh. See the package
// documentation for who dials whom, queueing and flood control.
type TLS struct {
	cfg      Config
	log      *slog.Logger
	cert     tls.Certificate
	srvTLS   *tls.Config
	byKey    map[string]core.NodeID // pinned key → member, self excluded
	peers    map[core.NodeID]*peer  // self excluded
	others   []core.NodeID          // members other than self, ascending
	self     *peerStats
	rejected *counterSet
	inbound  chan Inbound
	ln       net.Listener
	hsSem    chan struct{}
	coll     *collector

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type peer struct {
	id       core.NodeID
	addr     string
	key      ed25519.PublicKey
	queue    chan []byte
	accepted chan *tls.Conn // authenticated inbound connections (acceptor side)
	stats    *peerStats
	ever     bool // a connection was established before (owned by the peer loop)
}

var _ Transport = (*TLS)(nil)

// New listens on the address configured for Self and starts connecting to
// the other members.
func New(cfg Config) (*TLS, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Peers[cfg.Self].Addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen: %w", err)
	}
	t, err := NewWithListener(cfg, ln)
	if err != nil {
		ln.Close()
	}
	return t, err
}

// NewWithListener is New on a listener the caller opened (tests open
// 127.0.0.1:0 first to learn the ports). The transport owns ln.
func NewWithListener(cfg Config, ln net.Listener) (*TLS, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	cert, err := SelfSignedCert(cfg.Identity)
	if err != nil {
		return nil, err
	}
	t := &TLS{
		cfg:      cfg,
		log:      cfg.Logger.With("replica", uint32(cfg.Self), "component", "transport"),
		cert:     cert,
		byKey:    make(map[string]core.NodeID),
		peers:    make(map[core.NodeID]*peer),
		self:     newPeerStats(cfg.Self),
		rejected: newCounterSet(rejectReasons),
		inbound:  make(chan Inbound, cfg.InboundLen),
		ln:       ln,
		hsSem:    make(chan struct{}, cfg.MaxHandshakes),
	}
	t.self.connected.Store(true)
	t.srvTLS = t.serverTLS()
	coll := &collector{self: fmt.Sprint(cfg.Self), peers: []*peerStats{t.self}, rejected: t.rejected}
	for id, pc := range cfg.Peers {
		if id == cfg.Self {
			continue
		}
		p := &peer{id: id, addr: pc.Addr, key: pc.Identity, queue: make(chan []byte, cfg.QueueLen),
			accepted: make(chan *tls.Conn), stats: newPeerStats(id)}
		t.peers[id] = p
		t.byKey[string(pc.Identity)] = id
		t.others = append(t.others, id)
		coll.peers = append(coll.peers, p.stats)
	}
	slices.Sort(t.others)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(coll); err != nil {
			return nil, fmt.Errorf("transport: register metrics: %w", err)
		}
		t.coll = coll
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.wg.Add(1)
	go t.acceptLoop()
	for _, id := range t.others {
		p := t.peers[id]
		t.wg.Add(1)
		if t.dials(id) {
			go t.dialLoop(p)
		} else {
			go t.acceptedLoop(p)
		}
	}
	return t, nil
}

// dials reports whether this replica dials peer id: the lower ID dials the
// higher, so there is exactly one connection per pair.
func (t *TLS) dials(id core.NodeID) bool { return t.cfg.Self < id }

// Addr is the listening address.
func (t *TLS) Addr() net.Addr { return t.ln.Addr() }

// Self implements Transport.
func (t *TLS) Self() core.NodeID { return t.cfg.Self }

// Receive implements Transport.
func (t *TLS) Receive() <-chan Inbound { return t.inbound }

// Send implements Transport.
func (t *TLS) Send(to core.NodeID, frame []byte) {
	if to == t.cfg.Self {
		t.deliverSelf(frame)
		return
	}
	p := t.peers[to]
	switch {
	case p == nil:
		t.self.drops.inc(DropUnknown)
	case len(frame) > t.cfg.MaxFrame:
		p.stats.drops.inc(DropOversized)
	case t.ctx.Err() != nil:
		p.stats.drops.inc(DropClosed)
	default:
		select {
		case p.queue <- frame:
		default:
			p.stats.drops.inc(DropQueueFull)
		}
	}
}

// SendMany implements Transport.
func (t *TLS) SendMany(to []core.NodeID, frame []byte) {
	for _, id := range to {
		t.Send(id, frame)
	}
}

// Broadcast implements Transport.
func (t *TLS) Broadcast(frame []byte) {
	t.SendMany(t.others, frame)
	t.deliverSelf(frame)
}

func (t *TLS) deliverSelf(frame []byte) {
	if len(frame) > t.cfg.MaxFrame {
		t.self.drops.inc(DropOversized)
		return
	}
	select {
	case t.inbound <- Inbound{From: t.cfg.Self, Frame: frame}:
		t.self.recvFrames.Add(1)
		t.self.recvBytes.Add(uint64(len(frame)))
	default:
		t.self.drops.inc(DropQueueFull)
	}
}

// Status implements Transport.
func (t *TLS) Status() Status {
	st := Status{Self: t.cfg.Self, Rejected: t.rejected.snapshot()}
	st.Peers = append(st.Peers, t.self.status(t.cfg.Peers[t.cfg.Self].Addr))
	for _, id := range t.others {
		st.Peers = append(st.Peers, t.peers[id].stats.status(t.peers[id].addr))
	}
	slices.SortFunc(st.Peers, func(a, b PeerStatus) int { return int(a.ID) - int(b.ID) })
	return st
}

// Close implements Transport. It waits for every goroutine to end.
func (t *TLS) Close() error {
	t.closeOnce.Do(func() {
		t.cancel()
		t.ln.Close()
		t.wg.Wait()
		if t.coll != nil {
			t.cfg.Registerer.Unregister(t.coll)
		}
	})
	return nil
}

func (t *TLS) sleep(d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-t.ctx.Done():
		return false
	}
}

// jitter returns a duration uniformly in [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// dialLoop keeps one connection to a higher-numbered peer, reconnecting
// with jittered exponential backoff.
func (t *TLS) dialLoop(p *peer) {
	defer t.wg.Done()
	backoff := t.cfg.BackoffMin
	for t.ctx.Err() == nil {
		conn, err := t.dial(p)
		if err != nil {
			if t.ctx.Err() != nil {
				return
			}
			p.stats.connErrs.inc(ConnDial)
			t.log.Debug("dial failed", "peer", uint32(p.id), "err", err, "backoff", backoff)
			if !t.sleep(jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, t.cfg.BackoffMax)
			continue
		}
		start := time.Now()
		t.serve(p, conn)
		if time.Since(start) > t.cfg.BackoffMax {
			backoff = t.cfg.BackoffMin // it was a healthy connection
		}
		if !t.sleep(jitter(backoff)) {
			return
		}
		backoff = min(2*backoff, t.cfg.BackoffMax)
	}
}

// dial connects, authenticates the peer by its pinned key, and exchanges
// hellos: ours first, then the acceptor's, which must name the peer we
// dialled and our cluster.
func (t *TLS) dial(p *peer) (*tls.Conn, error) {
	d := net.Dialer{Timeout: t.cfg.HandshakeTimeout}
	raw, err := d.DialContext(t.ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(t.ctx, func() { raw.Close() })
	defer stop()
	raw.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	conn := tls.Client(raw, t.clientTLS(p.key))
	fail := func(err error) (*tls.Conn, error) {
		raw.Close()
		return nil, err
	}
	if err := conn.Handshake(); err != nil {
		return fail(err)
	}
	if err := WriteFrame(conn, hello{ID: t.cfg.Self, Cluster: t.cfg.ClusterID}.encode()); err != nil {
		return fail(err)
	}
	f, err := ReadFrame(conn, helloMax)
	if err != nil {
		return fail(fmt.Errorf("reading hello: %w", err))
	}
	h, err := decodeHello(f)
	if err != nil {
		return fail(err)
	}
	if h.ID != p.id || h.Cluster != t.cfg.ClusterID {
		return fail(fmt.Errorf("transport: peer answered as %d of cluster %q", h.ID, h.Cluster))
	}
	if !stop() {
		return fail(t.ctx.Err())
	}
	raw.SetDeadline(time.Time{})
	return conn, nil
}

func (t *TLS) acceptLoop() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			t.log.Warn("accept", "err", err)
			if !t.sleep(10 * time.Millisecond) {
				return
			}
			continue
		}
		select {
		case t.hsSem <- struct{}{}:
		default:
			t.reject(RejectBusy, c, nil)
			c.Close()
			continue
		}
		t.wg.Add(1)
		go t.handshakeInbound(c)
	}
}

// reject counts a refused inbound connection. Unauthenticated clients can
// connect at will, so only the 1st, 2nd, 4th, 8th… refusal of each reason
// is logged; the counter sees them all.
func (t *TLS) reject(reason string, c net.Conn, err error) {
	if n := t.rejected.inc(reason); n&(n-1) == 0 {
		t.log.Warn("refused connection", "reason", reason, "remote", c.RemoteAddr().String(), "err", err, "count", n)
	}
}

// handshakeInbound authenticates an inbound connection: TLS with a pinned
// member key, then a hello whose claimed ID must be that member's and whose
// cluster must be ours, from a member that is supposed to dial us.
func (t *TLS) handshakeInbound(raw net.Conn) {
	defer t.wg.Done()
	defer func() { <-t.hsSem }()
	stop := context.AfterFunc(t.ctx, func() { raw.Close() })
	defer stop()
	raw.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	conn := tls.Server(raw, t.srvTLS)
	refuse := func(reason string, err error) {
		t.reject(reason, raw, err)
		raw.Close()
	}
	if err := conn.Handshake(); err != nil {
		if t.ctx.Err() != nil {
			raw.Close()
			return
		}
		if errors.Is(err, errUnknownKey) || errors.Is(err, errNoPeerKey) {
			refuse(RejectUnknownKey, err)
		} else {
			refuse(RejectHandshake, err)
		}
		return
	}
	k, _ := peerKey(conn.ConnectionState())
	owner := t.byKey[string(k)]
	f, err := ReadFrame(conn, helloMax)
	if err != nil {
		refuse(RejectBadHello, err)
		return
	}
	h, err := decodeHello(f)
	switch {
	case err != nil:
		refuse(RejectBadHello, err)
		return
	case h.Cluster != t.cfg.ClusterID:
		refuse(RejectWrongCluster, fmt.Errorf("cluster %q", h.Cluster))
		return
	case h.ID != owner:
		refuse(RejectWrongID, fmt.Errorf("key of %d claims to be %d", owner, h.ID))
		return
	case t.dials(owner):
		refuse(RejectDirection, fmt.Errorf("%d must be dialled by %d", owner, t.cfg.Self))
		return
	}
	if err := WriteFrame(conn, hello{ID: t.cfg.Self, Cluster: t.cfg.ClusterID}.encode()); err != nil {
		raw.Close()
		return
	}
	if !stop() {
		raw.Close()
		return
	}
	raw.SetDeadline(time.Time{})
	p := t.peers[owner]
	select {
	case p.accepted <- conn:
	case <-t.ctx.Done():
		raw.Close()
	}
}

// acceptedLoop serves the connections a lower-numbered peer makes to us; a
// newer authenticated connection replaces the current one (the peer
// restarted or lost the old one first).
func (t *TLS) acceptedLoop(p *peer) {
	defer t.wg.Done()
	var next *tls.Conn
	for {
		if next == nil {
			select {
			case next = <-p.accepted:
			case <-t.ctx.Done():
				return
			}
		}
		next = t.serve(p, next)
	}
}

// serve runs one authenticated connection until it fails, the transport
// closes or (acceptor side) a replacement arrives, which it returns. The
// writer runs here; the reader in its own goroutine.
func (t *TLS) serve(p *peer, conn *tls.Conn) (replacement *tls.Conn) {
	if p.ever {
		p.stats.reconnects.Add(1)
	}
	p.ever = true
	p.stats.connected.Store(true)
	t.log.Info("connected", "peer", uint32(p.id), "remote", conn.RemoteAddr().String())
	stopRead := make(chan struct{})
	readErr := make(chan error, 1)
	t.wg.Add(1)
	go t.readLoop(p, conn, stopRead, readErr)

	var accepted chan *tls.Conn
	if !t.dials(p.id) {
		accepted = p.accepted
	}
	bw := bufio.NewWriterSize(conn, ioBuf)
	reason := ""
loop:
	for {
		select {
		case f := <-p.queue:
			conn.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
			if err := WriteFrame(bw, f); err != nil {
				reason = ConnIO
				break loop
			}
			p.stats.sentFrames.Add(1)
			p.stats.sentBytes.Add(uint64(HeaderLen + len(f)))
			if len(p.queue) == 0 { // coalesce: flush only when nothing else waits
				if err := bw.Flush(); err != nil {
					reason = ConnIO
					break loop
				}
			}
		case err := <-readErr:
			readErr = nil
			reason = readReason(err)
			if reason != "" {
				t.log.Warn("dropping connection", "peer", uint32(p.id), "reason", reason, "err", err)
			}
			break loop
		case c := <-accepted:
			replacement = c
			reason = ConnReplaced
			break loop
		case <-t.ctx.Done():
			break loop
		}
	}
	close(stopRead)
	// Close the TCP connection directly: tls.Conn.Close would first try to
	// write close_notify, which can stall for seconds on a peer that stopped
	// reading.
	conn.NetConn().Close()
	if readErr != nil {
		<-readErr
	}
	p.stats.connected.Store(false)
	if reason != "" {
		p.stats.connErrs.inc(reason)
	}
	t.log.Info("disconnected", "peer", uint32(p.id), "reason", reason)
	return replacement
}

func readReason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrFrameTooLarge):
		return ConnOversized
	case errors.Is(err, ErrTruncated):
		return ConnTruncated
	default: // EOF, reset, timeout
		return ConnIO
	}
}

// readLoop reads frames, enforces the per-peer flood limit and hands the
// frames to the shared inbound channel. Its result goes to done.
func (t *TLS) readLoop(p *peer, conn *tls.Conn, stop <-chan struct{}, done chan<- error) {
	defer t.wg.Done()
	br := bufio.NewReaderSize(conn, ioBuf)
	now := time.Now()
	frames := newBucket(t.cfg.RateFrames, t.cfg.BurstFrames, now)
	bytes := newBucket(t.cfg.RateBytes, t.cfg.BurstBytes, now)
	for {
		f, err := ReadFrame(br, t.cfg.MaxFrame)
		if err != nil {
			done <- err
			return
		}
		p.stats.recvFrames.Add(1)
		p.stats.recvBytes.Add(uint64(HeaderLen + len(f)))
		now = time.Now()
		if wait := max(frames.take(1, now), bytes.take(float64(HeaderLen+len(f)), now)); wait > 0 {
			p.stats.throttled.Add(1)
			tm := time.NewTimer(wait)
			select {
			case <-tm.C:
			case <-stop:
				tm.Stop()
				done <- nil
				return
			}
		}
		select {
		case t.inbound <- Inbound{From: p.id, Frame: f}:
		case <-stop:
			done <- nil
			return
		}
	}
}
