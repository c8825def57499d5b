package ttcb

import (
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
	LocalAuthFailures, LocalBadFrames          uint64
	RateLimited                                uint64
}

type stats struct {
	decided, persisted                         atomic.Uint64
	controlBadMAC, controlMalformed, replays   atomic.Uint64
	timingFailures, stale, clones, controlDrop atomic.Uint64
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
	excluded  bool   // timing failure of its current incarnation
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
	peerSentAt uint64 // highest sentAt of any processed message from a non-excluded module
	pings      map[uint64]time.Time
	samples    []syncSample
	failed     error
	persistReq chan persistJob
	persistOut chan persisted

	ctrlCh chan ctrlIn
	callCh chan localCall

	mu       sync.Mutex
	conns    map[net.Conn]bool
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
		conns: make(map[net.Conn]bool), buckets: make(map[EntityID]*bucket), measures: make(map[EntityID]map[uint64]measure)}
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
	for s := m.lastSlot + 1; s*m.delta <= now && m.failed == nil; s++ {
		if m.joined && now-s*m.delta > uint64(m.cfg.Slack) {
			m.st.timingFailures.Add(1)
			m.failed = fmt.Errorf("%w: boundary %d processed %v late (slack %v)", ErrTimingFailure, s,
				time.Duration(now-s*m.delta), m.cfg.Slack)
			return
		}
		m.lastSlot = s
		m.slot(s)
		if m.joined && m.clk.global()-s*m.delta > uint64(m.cfg.Slack) {
			// Our round messages left too late: receivers drop them and
			// exclude us, so we must stop (crash semantics).
			m.st.timingFailures.Add(1)
			m.failed = fmt.Errorf("%w: boundary %d sent %v late (slack %v)", ErrTimingFailure, s,
				time.Duration(m.clk.global()-s*m.delta), m.cfg.Slack)
			return
		}
	}
}

func (m *Module) slot(s uint64) {
	B := s * m.delta
	var batch []floodExec
	for _, e := range m.t.open {
		s0 := m.slot0(e.tstart)
		if s >= s0 && s <= s0+uint64(m.cfg.F) {
			batch = append(batch, floodExec{elist: e.elist, tstart: e.tstart, decision: e.decision,
				round: uint32(s - s0 + 1), proposed: e.proposed, props: e.props})
		}
	}
	decided := m.t.decideDue(B)
	if len(batch) > 0 {
		m.flood(batch)
	}
	for _, p := range m.peers { // heartbeat every round: lets others see we are connected
		m.send(p, &wire.TTCBControlBody{Kind: &wire.TTCBControlBody_Heartbeat{Heartbeat: &wire.TTCBEmpty{}}})
	}
	if len(decided) > 0 && !m.connected(s, uint64(m.cfg.F)+2) {
		// Cut off from the other modules during the execution: this module
		// may have missed proposals the others counted, so it must not
		// answer (a partitioned module is a crashed one for the TTCB).
		for _, e := range decided {
			e.isolated = true
		}
		m.log.Warn("ttcb decided while isolated; results withheld", "slot", s, "executions", len(decided))
		decided = nil
	}
	if len(decided) > 0 {
		job := persistJob{now: B}
		for _, e := range decided {
			job.keys = append(job.keys, e.key)
			job.recs = append(job.recs, &wire.TTCBRecord{Kind: &wire.TTCBRecord_Decided{Decided: &wire.TTCBDecided{
				Elist: fromElist(e.elist), Tstart: e.tstart, Decision: uint32(e.decision), DecideAt: e.decideAt,
				Result: resultToWire(e.result)}}})
		}
		m.st.decided.Add(uint64(len(decided)))
		m.persist(job)
	}
	if s%64 == 0 {
		m.t.expire(B)
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
		p.inc, p.boot, p.seq, p.excluded, p.joined = c.Incarnation, c.Boot, 0, false, false
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
	if !p.excluded {
		m.peerSentAt = max(m.peerSentAt, body.sentAt)
	}
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
		if p.excluded || !m.joined {
			return
		}
		for _, x := range body.flood {
			m.onFlood(p, body.sentAt, x)
		}
	}
}

// onFlood handles round x.round of an execution from module p. Round r is
// sent at boundary slot0+r−1 and must arrive before boundary slot0+r. A
// message whose sender stamped it later than the boundary plus the slack
// comes from a module that missed its bound: it is dropped and the sender
// excluded until it restarts (it also detects this itself and fails). A
// message stamped in time that finds the round already closed here means
// this module received late (it was descheduled): this module has a
// timing failure and fails itself, before it could answer for the
// execution (see answerable).
func (m *Module) onFlood(p *peerState, sentAt uint64, x floodExec) {
	s0 := m.slot0(x.tstart)
	if sentAt > (s0+uint64(x.round)-1)*m.delta+uint64(m.cfg.Slack) {
		m.st.timingFailures.Add(1)
		p.excluded = true
		m.log.Warn("ttcb peer timing failure", "peer", p.id, "round", x.round, "tstart", x.tstart,
			"late_by", time.Duration(sentAt-(s0+uint64(x.round)-1)*m.delta))
		return
	}
	if m.lastSlot >= s0+uint64(x.round) {
		m.st.timingFailures.Add(1)
		m.failed = fmt.Errorf("%w: round %d of an execution from module %d processed after the round closed",
			ErrTimingFailure, x.round, p.id)
		return
	}
	if x.tstart > m.lastNow+uint64(m.cfg.Horizon) {
		return
	}
	m.t.merge(x.elist, x.tstart, x.decision, m.decideAt(x.tstart), x.props, x.proposed)
}

// answerable reports whether e's result may be given to a caller: decided,
// durable, not decided in isolation, and — with other modules — some
// message stamped at or after e's deadline has been processed. All modules
// write to this module's single control socket and it is read in order,
// so by then every round message sent in time for e has been processed
// (with δ + π + slack ≤ Δ); had one come after its round closed, the
// module would have failed itself instead.
func (m *Module) answerable(e *execution, now uint64) error {
	if e.isolated {
		return fmt.Errorf("%w: module was cut off from the others during the execution", ErrUnavailable)
	}
	if !e.durable || (m.n > 1 && m.peerSentAt < e.decideAt && !e.restored) {
		return fmt.Errorf("%w: ready at %d", ErrNotReady, e.decideAt)
	}
	_, err := e.resultAt(now)
	return err
}

// syncTick: heartbeat, clock-synchronization ping to the reference, join.
func (m *Module) syncTick() {
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

// connected reports whether messages from at least n−f−1 other modules
// (so n−f modules counting this one) were processed in the last k slots.
func (m *Module) connected(s, k uint64) bool {
	heard := 1
	for _, p := range m.peers {
		if !p.excluded && p.heardSlot+k >= s && p.heardSlot != 0 {
			heard++
		}
	}
	return heard >= m.n-m.cfg.F
}

func (m *Module) alive(p *peerState) bool {
	return !p.heard.IsZero() && time.Since(p.heard) < 3*m.cfg.SyncPeriod && !p.excluded
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
		if err != nil {
			return Refused{Err: err}
		}
		if err := m.answerable(e, now); err != nil {
			return Refused{Err: err}
		}
		return e.result
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
