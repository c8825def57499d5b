package ttcb

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maftia/maftia/wire"
)

// Stats are a module's counters (all monotonic).
type Stats struct {
	Decided, Persisted                         uint64
	ControlBadMAC, ControlMalformed, Replays   uint64
	TimingFailures, Stale, Clones, ControlDrop uint64
	Tainted, LateMessages, LateAfterRelease    uint64
	ClockRejected                              uint64
	// Unvouched counts answers to an entity about an execution this
	// module holds no trace of, given as an attested withholding because
	// the module was cut off or late in that execution's slots.
	Unvouched                         uint64
	LocalAuthFailures, LocalBadFrames uint64
	RateLimited                       uint64
}

type stats struct {
	decided, persisted                         atomic.Uint64
	controlBadMAC, controlMalformed, replays   atomic.Uint64
	timingFailures, stale, clones, controlDrop atomic.Uint64
	tainted, lateMessages, lateAfterRelease    atomic.Uint64
	clockRejected                              atomic.Uint64
	unvouched                                  atomic.Uint64
	localAuthFailures, localBadFrames          atomic.Uint64
	rateLimited                                atomic.Uint64
}

type peerState struct {
	id        uint32
	addr      *net.UDPAddr
	key       []byte
	inc, boot uint64
	seq       uint64
	heard     time.Time // local monotonic
	joined    bool
	heardSlot uint64 // last slot in which a message from it was processed
}

type ctrlIn struct {
	hdr  *wire.TTCBControl
	body []byte
}

type localCall struct {
	entity EntityID
	req    any
	reply  chan any
}

// notReady tells the session goroutine to ask again at (or soon after) at.
type notReady struct {
	at  uint64
	err error
}

type persisted struct {
	keys []ExecKey
	err  error
}

// Module is one TTCB module: the local interface on a Unix socket, the
// control network on UDP, and the agreement state. Create with NewModule,
// run with Run (once).
type Module struct {
	cfg    Config
	log    *slog.Logger
	clk    *clock
	st     stats
	inc    uint64
	boot   uint64
	delta  uint64
	n      int
	self   *Peer
	peers  map[uint32]*peerState
	state  *stateFile
	loaded *loadedState

	udp *net.UDPConn
	ln  *net.UnixListener

	// owned by the loop goroutine
	t          *table
	joined     bool
	startedAt  time.Time
	lastSlot   uint64
	lastNow    uint64
	sendSeq    uint64
	peerSentAt uint64 // highest sentAt of any processed control message
	awaiting   []*execution
	blind      []slotSpan // slots in which this module cannot vouch that it saw every proposal
	cutHist    uint64     // bit i: cut off from n−f modules in slot lastSlot−i
	lateSlots  []uint64
	pings      map[uint64]time.Time
	samples    []syncSample
	failed     error
	persistReq chan persistJob
	persistOut chan persisted

	ctrlCh chan ctrlIn
	callCh chan localCall

	mu       sync.Mutex
	conns    map[net.Conn]bool
	sessions map[EntityID]int
	buckets  map[EntityID]*bucket
	measures map[EntityID]map[uint64]measure
	nextMeas uint64
	joinedAt atomic.Uint64

	recvDelay atomic.Int64 // fault injection (tests): the control reader is descheduled this long per datagram
}

type syncSample struct {
	rtt, offset int64
	from        uint32
}

type persistJob struct {
	recs []*wire.TTCBRecord
	keys []ExecKey
	now  uint64
}

// NewModule validates cfg, opens the state file (refusing a corrupt one),
// durably starts a new incarnation and binds both interfaces.
func NewModule(cfg Config) (*Module, error) {
	if cfg.Slack == 0 {
		cfg.Slack = cfg.Delta / 2
	}
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Module{cfg: cfg, log: log.With("module", cfg.ID), clk: newClock(cfg.ClockSkew),
		delta: uint64(cfg.Delta), n: len(cfg.Peers), peers: make(map[uint32]*peerState),
		pings: make(map[uint64]time.Time), ctrlCh: make(chan ctrlIn, 4096), callCh: make(chan localCall, 1024),
		persistReq: make(chan persistJob, 1024), persistOut: make(chan persisted, 1024),
		conns: make(map[net.Conn]bool), sessions: make(map[EntityID]int), buckets: make(map[EntityID]*bucket), measures: make(map[EntityID]map[uint64]measure)}
	var b [8]byte
	_, _ = rand.Read(b[:])
	m.boot = binary.BigEndian.Uint64(b[:]) | 1
	for i := range cfg.Peers {
		p := &cfg.Peers[i]
		addr, err := net.ResolveUDPAddr("udp", p.Control)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		if p.ID == cfg.ID {
			m.self = p
			continue
		}
		m.peers[p.ID] = &peerState{id: p.ID, addr: addr, key: cfg.ControlKeys[p.ID]}
	}
	m.t = newTable(tableLimits{Horizon: uint64(cfg.Horizon), Retention: uint64(cfg.Retention),
		MaxExecs: cfg.MaxExecs, MaxPerEntity: cfg.MaxPerEntity})
	st, loaded, err := openState(cfg.StateFile, cfg.ID)
	if err != nil {
		return nil, err
	}
	m.state, m.loaded, m.inc = st, loaded, loaded.incarnation
	for id, inc := range loaded.peers {
		if p := m.peers[id]; p != nil {
			p.inc = inc
		}
	}
	for _, d := range loaded.results {
		r, _ := resultFromWire(d.Result)
		m.t.restore(toEntityList(d.Elist), d.Tstart, Decision(d.Decision), d.DecideAt, r)
	}
	for _, e := range m.t.execs {
		e.durable = true
	}
	laddr, _ := net.ResolveUDPAddr("udp", m.self.Control)
	if m.udp, err = net.ListenUDP("udp", laddr); err != nil {
		st.close()
		return nil, fmt.Errorf("ttcb: control endpoint: %w", err)
	}
	_ = m.udp.SetReadBuffer(4 << 20)
	_ = os.Remove(cfg.Socket)
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.Socket, Net: "unix"})
	if err == nil {
		err = os.Chmod(cfg.Socket, 0o600)
	}
	if err != nil {
		m.udp.Close()
		st.close()
		return nil, fmt.Errorf("ttcb: local socket: %w", err)
	}
	m.ln = ul
	m.log.Info("ttcb module started", "incarnation", m.inc, "restored_results", len(loaded.results), "torn_bytes", loaded.torn)
	return m, nil
}

// PublicKey is the module's long-term key, which local entities pin.
func (m *Module) PublicKey() ed25519.PublicKey { return m.cfg.Key.Public().(ed25519.PublicKey) }

// Incarnation is the module's current (persisted) incarnation number.
func (m *Module) Incarnation() uint64 { return m.inc }

// Now is the module's global time in nanoseconds.
func (m *Module) Now() uint64 { return m.clk.global() }

// ErrorBound is the module's current clock-synchronization error bound
// relative to the reference module (0 for the reference).
func (m *Module) ErrorBound() time.Duration { return time.Duration(m.clk.errBound.Load()) }

// Joined reports whether the module is synchronized and takes part in
// agreements.
func (m *Module) Joined() bool { return m.joinedAt.Load() != 0 }

// SkewClock shifts the module's local clock (fault injection for tests).
func (m *Module) SkewClock(d time.Duration) { m.clk.skew.Add(int64(d)) }

// Stats returns the module's counters.
func (m *Module) Stats() Stats {
	s := &m.st
	return Stats{Decided: s.decided.Load(), Persisted: s.persisted.Load(), ControlBadMAC: s.controlBadMAC.Load(),
		ControlMalformed: s.controlMalformed.Load(), Replays: s.replays.Load(), TimingFailures: s.timingFailures.Load(),
		Stale: s.stale.Load(), Clones: s.clones.Load(), ControlDrop: s.controlDrop.Load(),
		Tainted: s.tainted.Load(), LateMessages: s.lateMessages.Load(), LateAfterRelease: s.lateAfterRelease.Load(),
		ClockRejected: s.clockRejected.Load(), Unvouched: s.unvouched.Load(),
		LocalAuthFailures: s.localAuthFailures.Load(), LocalBadFrames: s.localBadFrames.Load(), RateLimited: s.rateLimited.Load()}
}

// Run serves until ctx is cancelled (returns nil) or the module fails
// itself (returns an error wrapping ErrTimingFailure, ErrRollback or
// ErrModuleFailed): crash-only, the process should exit and be restarted.
// All goroutines it started have ended when it returns.
func (m *Module) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { m.readControl(ctx) })
	wg.Go(func() { m.acceptLocal(ctx, &wg) })
	wg.Go(func() { m.persister(ctx) })
	err := m.loop(ctx)
	m.joinedAt.Store(0)
	cancel()
	m.udp.Close()
	m.ln.Close()
	m.mu.Lock()
	for c := range m.conns {
		c.Close()
	}
	m.mu.Unlock()
	wg.Wait()
	_ = os.Remove(m.cfg.Socket)
	m.state.close()
	if err != nil {
		m.log.Error("ttcb module failed", "err", err)
	}
	return err
}

func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }

// slot0 is the slot whose boundary starts round 1 of an execution.
func (m *Module) slot0(tstart uint64) uint64 { return ceilDiv(tstart, m.delta) }

func (m *Module) decideAt(tstart uint64) uint64 {
	return (m.slot0(tstart) + uint64(m.cfg.F) + 1) * m.delta
}

func (m *Module) now() uint64 {
	m.lastNow = max(m.lastNow, m.clk.global())
	return m.lastNow
}

func (m *Module) loop(ctx context.Context) error {
	m.startedAt = time.Now()
	m.lastSlot = m.clk.global() / m.delta
	sync := time.NewTicker(m.cfg.SyncPeriod)
	defer sync.Stop()
	timer := time.NewTimer(m.cfg.Delta)
	defer timer.Stop()
	m.syncTick()
	for m.failed == nil {
		next := (m.lastSlot + 1) * m.delta
		if g := m.clk.global(); next > g {
			timer.Reset(time.Duration(next - g))
		} else {
			timer.Reset(0)
		}
		select {
		case <-ctx.Done():
			return nil
		case in := <-m.ctrlCh:
			m.handleControl(in)
		case c := <-m.callCh:
			c.reply <- m.handleCall(c)
		case p := <-m.persistOut:
			if p.err != nil {
				m.failed = fmt.Errorf("%w: %v", ErrModuleFailed, p.err)
				break
			}
			for _, k := range p.keys {
				if e := m.t.execs[k]; e != nil {
					e.durable = true
				}
			}
		case <-sync.C:
			m.syncTick()
		case <-timer.C:
			m.boundaries()
		}
	}
	return m.failed
}

// boundaries processes every slot boundary that has passed. Round r of an
// execution is sent at boundary slot0+r−1 and must be received before
// boundary slot0+r; the decision is taken at boundary slot0+f+1.
//
// Timing failures have crash semantics per execution: a module whose round
// messages for an execution left later than the slack (they will be
// dropped by every receiver, which judge by the sender's stamp) or that
// received a round message in time but only after the round closed, is
// faulty for that execution: it keeps taking part in others but never
// answers this one. A module that misses its bound chronically, or whose
// clock jumps, fails itself and must rejoin with a new incarnation.
func (m *Module) boundaries() {
	now := m.now()
	// take what already arrived before closing rounds
	for i := 0; i < cap(m.ctrlCh); i++ {
		select {
		case in := <-m.ctrlCh:
			m.handleControl(in)
		default:
			i = cap(m.ctrlCh)
		}
	}
	if m.joined && now/m.delta > m.lastSlot+maxSlotsBehind {
		m.selfTimingFailure(fmt.Errorf("%w: %d slots behind (clock jump)", ErrTimingFailure, now/m.delta-m.lastSlot))
		return
	}
	for s := m.lastSlot + 1; s*m.delta <= now && m.failed == nil; s++ {
		m.lastSlot = s
		sent := m.slot(s)
		if late := m.clk.global() - s*m.delta; m.joined && late > uint64(m.cfg.Slack) {
			m.markBlind(s, s)
			for _, e := range sent {
				m.taint(e, "our round message left late")
			}
			m.selfTimingFailure(fmt.Errorf("%w: boundary %d handled %v late (slack %v)", ErrTimingFailure, s,
				time.Duration(late), m.cfg.Slack))
		}
	}
}

// maxSlotsBehind: a module this many slots behind fails itself.
const maxSlotsBehind = 64

// selfTimingFailure records one of this module's own timing failures and
// fails the module when they are chronic (MaxTimingFailures within the
// last 64 slots), or at once for a clock jump.
func (m *Module) selfTimingFailure(err error) {
	m.st.timingFailures.Add(1)
	m.lateSlots = append(m.lateSlots, m.lastSlot)
	for len(m.lateSlots) > 0 && m.lateSlots[0]+64 < m.lastSlot {
		m.lateSlots = m.lateSlots[1:]
	}
	if len(m.lateSlots) > m.cfg.MaxTimingFailures || strings.Contains(err.Error(), "clock jump") {
		m.failed = err
		return
	}
	m.log.Warn("ttcb own timing failure", "err", err, "recent", len(m.lateSlots))
}

func (m *Module) taint(e *execution, why string) {
	if !e.tainted {
		e.tainted = true
		m.st.tainted.Add(1)
		m.log.Warn("ttcb timing failure in an execution: it will not be answered here", "why", why, "tstart", e.tstart)
	}
}

// slot handles boundary s and returns the executions whose round messages
// it sent.
func (m *Module) slot(s uint64) []*execution {
	B := s * m.delta
	var batch []floodExec
	var sent []*execution
	for _, e := range m.t.open {
		s0 := m.slot0(e.tstart)
		if s >= s0 && s <= s0+uint64(m.cfg.F) {
			batch = append(batch, floodExec{elist: e.elist, tstart: e.tstart, decision: e.decision,
				round: uint32(s - s0 + 1), proposed: e.proposed, props: e.props})
			sent = append(sent, e)
		}
	}
	decided := m.t.decideDue(B)
	if len(batch) > 0 {
		m.flood(batch)
	}
	for _, p := range m.peers { // heartbeat every round: lets others see we are connected
		m.send(p, &wire.TTCBControlBody{Kind: &wire.TTCBControlBody_Heartbeat{Heartbeat: &wire.TTCBEmpty{}}})
	}
	// Every joined module sends a message at every boundary (the heartbeat
	// above, or round messages), and on a timely control network it
	// arrives before the next one. So a slot in which fewer than n−f−1
	// peers were heard is one in which this module may have missed round
	// messages: it is cut off for that slot. (Checking only that peers
	// were heard at some time in the last f+2 slots let a module cut off
	// in the middle of an execution release it from an incomplete set:
	// the hybrid-ttcb-cut-3 scenario.)
	cutOff := m.joined && !m.heardLastSlot()
	m.cutHist <<= 1
	if cutOff {
		m.cutHist |= 1
		m.markBlind(s, s)
	}
	for _, e := range decided {
		// Cut off from the other modules in one of the execution's
		// rounds: this module may have missed proposals the others
		// counted, so it must not answer (a partitioned module is a
		// crashed one for the TTCB).
		if back := s - min(s, m.slot0(e.tstart)); back >= 63 || m.cutHist&(1<<(back+1)-1) != 0 {
			m.taint(e, "cut off from n−f modules in one of its rounds")
		}
	}
	m.awaiting = append(m.awaiting, decided...)
	m.release()
	if s%64 == 0 {
		m.t.expire(B)
		m.pruneBlind(B)
	}
	return sent
}

// release persists decided executions once they may be answered: some
// control message stamped at or after their deadline has been processed
// (see answerable). Tainted ones are never persisted nor answered.
func (m *Module) release() {
	if len(m.awaiting) == 0 {
		return
	}
	var job persistJob
	i := 0
	for ; i < len(m.awaiting); i++ {
		e := m.awaiting[i]
		if m.n > 1 && m.peerSentAt < e.decideAt {
			break
		}
		if e.tainted {
			continue
		}
		e.released = true
		job.keys = append(job.keys, e.key)
		job.recs = append(job.recs, &wire.TTCBRecord{Kind: &wire.TTCBRecord_Decided{Decided: &wire.TTCBDecided{
			Elist: fromElist(e.elist), Tstart: e.tstart, Decision: uint32(e.decision), DecideAt: e.decideAt,
			Result: resultToWire(e.result)}}})
		job.now = max(job.now, e.decideAt)
	}
	m.awaiting = m.awaiting[i:]
	if len(job.keys) > 0 {
		m.st.decided.Add(uint64(len(job.keys)))
		m.persist(job)
	}
}

func (m *Module) persist(job persistJob) {
	select {
	case m.persistReq <- job:
	default:
		m.failed = fmt.Errorf("%w: persistence queue full", ErrModuleFailed)
	}
}

// flood sends the proposal sets of this round to every other module,
// chunked into datagrams.
func (m *Module) flood(batch []floodExec) {
	const perDatagram = 64
	for i := 0; i < len(batch); {
		f := &wire.TTCBFlood{}
		size := 0
		for ; i < len(batch) && len(f.Execs) < perDatagram && size < maxControlFrame/2; i++ {
			x := floodToWire(batch[i])
			size += 16 + 4*len(x.Elist) + 33*len(x.Values)
			f.Execs = append(f.Execs, x)
		}
		for _, p := range m.peers {
			m.send(p, &wire.TTCBControlBody{Kind: &wire.TTCBControlBody_Flood{Flood: f}})
		}
	}
}

func controlMAC(key []byte, c *wire.TTCBControl) []byte {
	h := hmac.New(sha256.New, key)
	var b [32]byte
	binary.BigEndian.PutUint32(b[0:], c.From)
	binary.BigEndian.PutUint32(b[4:], c.To)
	binary.BigEndian.PutUint64(b[8:], c.Incarnation)
	binary.BigEndian.PutUint64(b[16:], c.Boot)
	binary.BigEndian.PutUint64(b[24:], c.Seq)
	h.Write([]byte("maftia-ttcb-control-v1"))
	h.Write(b[:])
	h.Write(c.Body)
	return h.Sum(nil)
}

func (m *Module) send(p *peerState, body *wire.TTCBControlBody) {
	body.SentAt, body.Joined, body.ErrorBound = m.clk.global(), m.joined, uint64(m.clk.errBound.Load())
	bb, err := marshal.Marshal(body)
	if err != nil {
		return
	}
	m.sendSeq++
	c := &wire.TTCBControl{From: m.cfg.ID, To: p.id, Incarnation: m.inc, Boot: m.boot, Seq: m.sendSeq, Body: bb}
	c.Mac = controlMAC(p.key, c)
	b, err := marshal.Marshal(c)
	if err != nil || len(b) > maxControlFrame {
		m.st.controlDrop.Add(1)
		return
	}
	if _, err := m.udp.WriteToUDP(b, p.addr); err != nil {
		m.st.controlDrop.Add(1)
	}
}

// readControl authenticates datagrams and hands them to the loop.
func (m *Module) readControl(ctx context.Context) {
	buf := make([]byte, maxControlFrame+1)
	for ctx.Err() == nil {
		k, _, err := m.udp.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		c, err := decodeControl(buf[:k], m.n)
		if err != nil || c.To != m.cfg.ID {
			m.st.controlMalformed.Add(1)
			continue
		}
		p := m.peers[c.From]
		if p == nil || !hmac.Equal(c.Mac, controlMAC(p.key, c)) {
			m.st.controlBadMAC.Add(1)
			continue
		}
		if d := m.recvDelay.Load(); d > 0 {
			time.Sleep(time.Duration(min(d, int64(time.Second))))
		}
		select {
		case m.ctrlCh <- ctrlIn{hdr: c, body: c.Body}:
		default:
			m.st.controlDrop.Add(1)
		}
	}
}

// handleControl applies incarnation, clone and replay checks, then the
// message.
func (m *Module) handleControl(in ctrlIn) {
	c := in.hdr
	p := m.peers[c.From]
	switch {
	case c.Incarnation < p.inc || (c.Incarnation == p.inc && p.boot != 0 && c.Boot != p.boot):
		if c.Incarnation == p.inc {
			m.st.clones.Add(1)
		} else {
			m.st.stale.Add(1)
		}
		m.send(p, &wire.TTCBControlBody{Kind: &wire.TTCBControlBody_Stale{Stale: p.inc}})
		return
	case c.Incarnation > p.inc || p.boot == 0:
		if c.Incarnation > p.inc {
			m.persist(persistJob{recs: []*wire.TTCBRecord{bootRecord(p.id, c.Incarnation)}})
		}
		p.inc, p.boot, p.seq, p.joined = c.Incarnation, c.Boot, 0, false
		m.log.Info("ttcb peer incarnation", "peer", p.id, "incarnation", p.inc)
	}
	if c.Seq <= p.seq {
		m.st.replays.Add(1)
		return
	}
	p.seq = c.Seq
	body, err := decodeControlBody(in.body, uint32(m.cfg.F+1))
	if err != nil {
		m.st.controlMalformed.Add(1)
		return
	}
	p.heard, p.joined, p.heardSlot = time.Now(), body.joined, m.lastSlot
	m.peerSentAt = max(m.peerSentAt, body.sentAt)
	defer m.release()
	switch body.kind {
	case ctrlStale:
		if body.stale >= m.inc {
			m.failed = fmt.Errorf("%w: module %d saw incarnation %d, ours is %d", ErrRollback, p.id, body.stale, m.inc)
		}
	case ctrlPing:
		m.send(p, &wire.TTCBControlBody{Kind: &wire.TTCBControlBody_Pong{Pong: &wire.TTCBPong{Ping: body.ping, Global: m.clk.global()}}})
	case ctrlPong:
		m.onPong(p, body)
	case ctrlFlood:
		if !m.joined {
			return
		}
		for _, x := range body.flood {
			m.onFlood(p, body.sentAt, x)
		}
	}
}

// onFlood handles round x.round of an execution from module p. Round r is
// sent at boundary slot0+r−1 and must arrive before boundary slot0+r.
// Every receiver judges a message by the sender's stamp: stamped later
// than the boundary plus the slack, it is dropped by all (the sender, which
// knows it was late, does not answer the execution). Stamped in time but
// arriving after the round closed here, this module received late: it is
// faulty for the execution and will not answer it.
func (m *Module) onFlood(p *peerState, sentAt uint64, x floodExec) {
	s0 := m.slot0(x.tstart)
	if sentAt > (s0+uint64(x.round)-1)*m.delta+uint64(m.cfg.Slack) {
		m.st.lateMessages.Add(1)
		m.log.Debug("ttcb late round message dropped", "peer", p.id, "round", x.round,
			"late_by", time.Duration(sentAt-(s0+uint64(x.round)-1)*m.delta))
		return
	}
	if m.lastSlot >= s0+uint64(x.round) {
		if e := m.t.execs[ExecutionKey(x.elist, x.tstart, x.decision)]; e != nil {
			if e.released {
				m.st.lateAfterRelease.Add(1)
				m.log.Error("ttcb synchrony assumption violated: round message after the result was released",
					"peer", p.id, "tstart", x.tstart)
			}
			m.taint(e, "round message received after the round closed")
		}
		// Possibly an execution this module holds no trace of (its entity
		// proposed late or not at all): it must not vouch for "nobody
		// proposed" there either.
		m.markBlind(s0, s0+uint64(m.cfg.F)+1)
		m.selfTimingFailure(fmt.Errorf("%w: round %d from module %d processed after the round closed",
			ErrTimingFailure, x.round, p.id))
		return
	}
	if x.tstart > m.lastNow+uint64(m.cfg.Horizon) {
		return
	}
	if m.t.merge(x.elist, x.tstart, x.decision, m.decideAt(x.tstart), x.props, x.proposed) == nil && x.tstart >= m.t.floor {
		m.markBlind(s0, s0+uint64(m.cfg.F)+1) // not admitted (table full): this module missed it
	}
}

// slotSpan is an inclusive range of slots.
type slotSpan struct{ from, to uint64 }

// markBlind records that this module may have missed round messages in
// slots from..to: it was cut off from n−f modules, handled a boundary
// late, received a round message after its round closed, or could not
// admit an execution. Kept (merged, sorted by from) while an execution
// touching those slots can still be asked about.
func (m *Module) markBlind(from, to uint64) {
	if n := len(m.blind); n > 0 && m.blind[n-1].from <= from && from <= m.blind[n-1].to+1 {
		m.blind[n-1].to = max(m.blind[n-1].to, to) // the common case: extends the latest span
		return
	}
	m.blind = append(m.blind, slotSpan{from, to})
	slices.SortFunc(m.blind, func(a, b slotSpan) int { return cmp.Compare(a.from, b.from) })
	merged := m.blind[:1]
	for _, b := range m.blind[1:] {
		if last := &merged[len(merged)-1]; b.from <= last.to+1 {
			last.to = max(last.to, b.to)
		} else {
			merged = append(merged, b)
		}
	}
	m.blind = merged
	if len(m.blind) > maxBlindSpans { // keep memory bounded: coarsen the oldest
		m.blind[1].from = m.blind[0].from
		m.blind = m.blind[1:]
	}
}

// maxBlindSpans bounds the blind record (ATTACKS.md row 10); merging the
// oldest spans only makes the module more cautious.
const maxBlindSpans = 1024

// pruneBlind drops spans no execution that may still be asked about
// touches: an execution touching slot `to` decides by (to+f+1)·Δ and is
// kept Retention after that.
func (m *Module) pruneBlind(now uint64) {
	m.blind = slices.DeleteFunc(m.blind, func(b slotSpan) bool {
		return (b.to+uint64(m.cfg.F)+2)*m.delta+uint64(m.cfg.Retention) < now
	})
}

func (m *Module) blindIn(from, to uint64) bool {
	for _, b := range m.blind {
		if b.from <= to && b.to >= from {
			return true
		}
	}
	return false
}

// answerNoExecution answers an entity's Decide for an execution it asked
// about (it proposed, perhaps late) that this module holds no trace of.
// "Nobody proposed by tstart" (ErrExpired) is a claim about every module's
// proposals, so it is given only once it can be vouched for: the
// execution's rounds are over here, a control message stamped at or after
// its deadline has been processed (as for release), and the module was
// connected and in time in all its slots. A module that cannot vouch
// withholds, attested — it never answers that execution, which no longer
// can appear here (its round messages would now be late and its
// proposals too late). Past the retention window the answer is ErrExpired
// as before: the result may have existed here and been dropped.
func (m *Module) answerNoExecution(ref entRef, now uint64) any {
	s0 := m.slot0(ref.tstart)
	sd := s0 + uint64(m.cfg.F) + 1
	at := sd * m.delta
	expired := fmt.Errorf("%w: nobody proposed by tstart, or the result expired", ErrExpired)
	if now > at+uint64(m.cfg.Retention) {
		return Refused{Err: expired}
	}
	if m.lastSlot < sd {
		return notReady{at: at, err: fmt.Errorf("%w: ready at %d", ErrNotReady, at)}
	}
	if ref.tstart < m.t.floor || m.blindIn(s0, sd) {
		m.st.unvouched.Add(1)
		return Attest(m.cfg.Key, m.cfg.ID, ref.key, TBAResult{Tag: ref.key.Tag(), Withheld: true})
	}
	if m.n > 1 && m.peerSentAt < at {
		return notReady{at: at, err: fmt.Errorf("%w: ready at %d", ErrNotReady, at)}
	}
	return Refused{Err: expired}
}

// answerable reports whether e's result may be given to a caller: it is
// decided, not tainted (see onFlood, boundaries) and released and durable.
// Release waits until some message stamped at or after e's deadline has
// been processed: all modules write to this module's single control
// socket, read in order, so by then every round message sent in time for e
// has been processed (given δ + π + slack ≤ Δ) — had one come after its
// round closed, e would be tainted instead.
func (m *Module) answerable(e *execution, now uint64) error {
	if e.tainted {
		return fmt.Errorf("%w: this module had a timing failure (or was cut off) in this execution", ErrUnavailable)
	}
	if !e.durable {
		return fmt.Errorf("%w: ready at %d", ErrNotReady, e.decideAt)
	}
	_, err := e.resultAt(now)
	return err
}

// syncTick: heartbeat, clock-synchronization ping to the reference, join.
func (m *Module) syncTick() {
	if g := m.clk.global(); m.joined && g+uint64(m.cfg.Slack) < m.lastNow {
		m.selfTimingFailure(fmt.Errorf("%w: clock went back by %v (clock jump)", ErrTimingFailure, time.Duration(m.lastNow-g)))
		return
	}
	if !m.joined { // before joining, slots are not processed: announce ourselves here
		for _, p := range m.peers {
			m.send(p, &wire.TTCBControlBody{Kind: &wire.TTCBControlBody_Heartbeat{Heartbeat: &wire.TTCBEmpty{}}})
		}
	}
	ref := m.reference()
	if ref != nil {
		t0 := uint64(m.clk.local())
		m.pings[t0] = time.Now()
		for k, at := range m.pings {
			if time.Since(at) > 4*m.cfg.SyncPeriod {
				delete(m.pings, k)
			}
		}
		m.send(ref, &wire.TTCBControlBody{Kind: &wire.TTCBControlBody_Ping{Ping: t0}})
	}
	if m.joined || time.Since(m.startedAt) < 3*m.cfg.SyncPeriod {
		return
	}
	alive := 1
	for _, p := range m.peers {
		if m.alive(p) {
			alive++
		}
	}
	switch {
	case alive < m.n-m.cfg.F:
		return // join only with n−f modules reachable
	case ref != nil && len(m.samples) > 0:
		m.join("synchronized with module", ref.id)
	case ref == nil && m.lowestAlive():
		m.join("reference (no synchronized module alive)", m.cfg.ID)
	}
}

// heardLastSlot reports whether messages from at least n−f−1 other
// modules (so n−f modules counting this one) were processed since the
// previous boundary (heardSlot is the slot current when they were).
func (m *Module) heardLastSlot() bool {
	heard := 1
	for _, p := range m.peers {
		if p.heardSlot != 0 && p.heardSlot+1 >= m.lastSlot {
			heard++
		}
	}
	return heard >= m.n-m.cfg.F
}

func (m *Module) alive(p *peerState) bool {
	return !p.heard.IsZero() && time.Since(p.heard) < 3*m.cfg.SyncPeriod
}

// reference is the lowest-ID joined, alive module other than this one if
// that is lower than this module's ID (or this module is not joined);
// nil when this module is the reference.
func (m *Module) reference() *peerState {
	var best *peerState
	for _, p := range m.peers {
		if p.joined && m.alive(p) && (best == nil || p.id < best.id) {
			best = p
		}
	}
	if best == nil || (m.joined && m.cfg.ID < best.id) {
		return nil
	}
	return best
}

func (m *Module) lowestAlive() bool {
	for _, p := range m.peers {
		if m.alive(p) && p.id < m.cfg.ID {
			return false
		}
	}
	return true
}

func (m *Module) join(why string, ref uint32) {
	m.joined = true
	j := m.now()
	m.t.floor = j + m.delta
	m.lastSlot = max(m.lastSlot, j/m.delta)
	m.joinedAt.Store(j)
	m.log.Info("ttcb module joined", "why", why, "reference", ref, "at", j, "error_bound", time.Duration(m.clk.errBound.Load()))
}

// onPong: Cristian's clock reading. offset = t_ref + rtt/2 − t1, error
// bound rtt/2; the sample with the smallest round trip of the last 8 wins.
func (m *Module) onPong(p *peerState, b *ctrlBody) {
	if _, ok := m.pings[b.ping]; !ok {
		return
	}
	delete(m.pings, b.ping)
	t1 := m.clk.local()
	rtt := t1 - int64(b.ping)
	if rtt < 0 || rtt > int64(m.cfg.Delta) {
		return
	}
	if ref := m.reference(); ref == nil || ref.id != p.id {
		return
	}
	if len(m.samples) > 0 && m.samples[0].from != p.id {
		m.samples = m.samples[:0]
	}
	m.samples = append(m.samples, syncSample{rtt: rtt, offset: int64(b.pongGlobal) + rtt/2 - t1, from: p.id})
	if len(m.samples) > 8 {
		m.samples = m.samples[1:]
	}
	best := slices.MinFunc(m.samples, func(a, b syncSample) int { return int(a.rtt - b.rtt) })
	if step := best.offset - m.clk.offset.Load(); m.joined && (step > int64(m.cfg.Slack)/2 || -step > int64(m.cfg.Slack)/2) {
		// A joined module never steps its clock by more than slack/2: a
		// larger disagreement means the reference's clock (or ours)
		// jumped. The module whose own clock jumped detects it and fails
		// (boundaries, syncTick); the others keep their time.
		m.st.clockRejected.Add(1)
		m.samples = m.samples[:0]
		return
	}
	m.clk.offset.Store(best.offset)
	m.clk.errBound.Store(best.rtt/2 + int64(b.errorBound))
}

// handleCall serves Propose and Decide for a local entity (loop goroutine).
func (m *Module) handleCall(c localCall) any {
	if m.failed != nil {
		return Refused{Err: ErrModuleFailed}
	}
	now := m.now()
	switch r := c.req.(type) {
	case TBAPropose:
		if !m.joined {
			return Refused{Err: fmt.Errorf("%w: module not yet synchronized", ErrUnavailable)}
		}
		out, err := m.t.propose(now, c.entity, r, m.decideAt)
		if err != nil {
			return Refused{Err: err}
		}
		return out
	case TBADecide:
		e, err := m.t.lookup(c.entity, r.Tag)
		if nx := (*noExecution)(nil); errors.As(err, &nx) {
			return m.answerNoExecution(nx.ref, now)
		}
		if err != nil {
			return Refused{Err: err}
		}
		if e.tainted && !e.released {
			// Withheld for good: say so, attested, so that payload
			// protocols can tell "nobody has this result" from "not me".
			// Only if never answered: a taint after the release (the
			// synchrony assumption broke) gets a plain refusal, since the
			// result may already be in someone's hands.
			return Attest(m.cfg.Key, m.cfg.ID, e.key, TBAResult{Tag: e.key.Tag(), Withheld: true})
		}
		if err := m.answerable(e, now); err != nil {
			if errors.Is(err, ErrNotReady) {
				return notReady{at: e.decideAt, err: err}
			}
			return Refused{Err: err}
		}
		return Attest(m.cfg.Key, m.cfg.ID, e.key, e.result)
	}
	return Refused{Err: fmt.Errorf("%w: %T", ErrBadRequest, c.req)}
}

// persister appends records and fsyncs before results become visible;
// it compacts the file when it grows.
func (m *Module) persister(ctx context.Context) {
	live := map[ExecKey]*wire.TTCBRecord{}
	for _, d := range m.loaded.results {
		live[ExecutionKey(toEntityList(d.Elist), d.Tstart, Decision(d.Decision))] =
			&wire.TTCBRecord{Kind: &wire.TTCBRecord_Decided{Decided: d}}
	}
	peers := map[uint32]uint64{}
	for id, inc := range m.loaded.peers {
		peers[id] = inc
	}
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-m.persistReq:
			err := m.state.append(job.recs)
			for i, r := range job.recs {
				if d := r.GetDecided(); d != nil {
					live[job.keys[i]] = r
				} else if b := r.GetBoot(); b != nil {
					peers[b.Module] = max(peers[b.Module], b.Incarnation)
				}
			}
			if err == nil && m.state.size > 8<<20 && job.now > 0 {
				err = m.compact(live, peers, job.now)
			}
			if len(job.keys) > 0 || err != nil {
				m.st.persisted.Add(uint64(len(job.keys)))
				select {
				case m.persistOut <- persisted{keys: job.keys, err: err}:
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

func (m *Module) compact(live map[ExecKey]*wire.TTCBRecord, peers map[uint32]uint64, now uint64) error {
	recs := []*wire.TTCBRecord{bootRecord(m.cfg.ID, m.inc)}
	for id, inc := range peers {
		recs = append(recs, bootRecord(id, inc))
	}
	for k, r := range live {
		if d := r.GetDecided(); d.DecideAt+uint64(m.cfg.Retention) < now {
			delete(live, k)
			continue
		}
		recs = append(recs, r)
	}
	return m.state.rewrite(recs)
}

// Supervise runs a module with cfg until ctx ends, restarting it with a
// new incarnation after it failed itself on a timing failure (crash-only
// recovery), at most maxRestarts times. started, if set, is called with
// each incarnation before it runs. Any other error ends it.
func Supervise(ctx context.Context, cfg Config, maxRestarts int, started func(*Module)) error {
	for restarts := 0; ; restarts++ {
		m, err := NewModule(cfg)
		if err != nil {
			return err
		}
		if started != nil {
			started(m)
		}
		err = m.Run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, ErrTimingFailure) || restarts >= maxRestarts {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(cfg.Delta):
		}
	}
}
