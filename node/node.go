package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/transport"
	"github.com/maftia/maftia/wire"
)

// ErrStopped is returned by Submit when the node is not running.
var ErrStopped = errors.New("node: not running")

// Node is one replica's runtime. See the package documentation.
type Node struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	others  []core.NodeID
	checker core.Prechecker // nil if the root core has no Precheck

	stepCh  chan core.Event // prechecked messages, per-sender order preserved
	inputCh chan core.Event // local inputs

	// Service replies: unbounded (bounded by the requests cores made) so a
	// service may reply synchronously from the stepping goroutine.
	repliesMu sync.Mutex
	replies   []core.Event
	replyCh   chan struct{} // capacity 1: "replies is not empty"

	running atomic.Bool
	halted  atomic.Value // string: why the node halted
	done    chan struct{}
	ranOnce atomic.Bool

	// Owned by the stepping goroutine.
	out      core.Output // the current batch's effects
	batched  int         // events stepped into out
	scanned  int         // out.Sends already looped back
	loopback []core.Message
	tick     uint64
	timers   map[timerKey]uint64 // → deadline tick
}

type timerKey struct {
	inst  core.InstanceID
	timer string
}

// New checks the configuration and registers the node's metrics.
func New(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registry, itoa(cfg.Self))
	if err != nil {
		return nil, fmt.Errorf("node: register metrics: %w", err)
	}
	n := &Node{
		cfg:     cfg,
		log:     cfg.Logger.With("replica", uint32(cfg.Self)),
		m:       m,
		stepCh:  make(chan core.Event, cfg.QueueLen),
		inputCh: make(chan core.Event, cfg.QueueLen),
		replyCh: make(chan struct{}, 1),
		done:    make(chan struct{}),
		timers:  make(map[timerKey]uint64),
	}
	for _, id := range cfg.Group.Members() {
		if id != cfg.Self {
			n.others = append(n.others, id)
		}
	}
	n.checker, _ = cfg.Protocol.(core.Prechecker)
	return n, nil
}

// Submit hands a local input to the root core (e.g. the value to
// broadcast). It blocks while the input queue is full.
func (n *Node) Submit(ctx context.Context, in core.Input) error {
	if !n.running.Load() {
		return ErrStopped
	}
	select {
	case n.inputCh <- in:
		return nil
	case <-n.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run runs the replica until ctx is cancelled (it returns nil) or a core
// or the storage fails (it returns the error: the replica halts). It
// returns only after every goroutine it started has ended. Run may be
// called once.
func (n *Node) Run(ctx context.Context) error {
	if n.ranOnce.Swap(true) {
		return errors.New("node: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.receive(ctx)
	}()
	n.running.Store(true)
	n.log.Info("replica running", "group", n.cfg.Group.String(), "workers", n.cfg.Workers, "tick", n.cfg.Tick)
	err := n.stepLoop(ctx)
	n.running.Store(false)
	if err != nil {
		n.halted.Store(err.Error())
		n.log.Error("replica halted", "err", err)
	}
	cancel()
	close(n.done)
	wg.Wait()
	n.log.Info("replica stopped")
	return err
}

// stepLoop is the one goroutine that owns the cores. It steps events in
// batches: one event, then whatever else is already waiting (up to
// Config.MaxBatch), all into one Output; then it saves the batch's records
// with one SaveRecords call (one fsync for many steps) and only then
// performs the batch's other effects.
func (n *Node) stepLoop(ctx context.Context) error {
	ticker := time.NewTicker(n.cfg.Tick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-n.stepCh:
			if err := n.apply(ev); err != nil {
				return err
			}
		case ev := <-n.inputCh:
			if err := n.apply(ev); err != nil {
				return err
			}
		case <-n.replyCh:
			if err := n.applyReplies(); err != nil {
				return err
			}
		case <-ticker.C:
			if err := n.applyTimers(); err != nil {
				return err
			}
		}
		if err := n.fillBatch(); err != nil {
			return err
		}
		if err := n.flush(); err != nil {
			return err
		}
	}
}

// fillBatch steps events that are already queued, without waiting, until
// the batch is full.
func (n *Node) fillBatch() error {
	for n.batched < n.cfg.MaxBatch {
		var ev core.Event
		select {
		case ev = <-n.stepCh:
		case ev = <-n.inputCh:
		default:
			return nil
		}
		if err := n.apply(ev); err != nil {
			return err
		}
	}
	return nil
}

// apply steps one event into the batch's Output, then the messages the
// replica addressed to itself, until none are left. Looping back before
// the batch is durable is safe: nothing the loopback causes leaves the
// process before flush has saved every record of the batch.
func (n *Node) apply(ev core.Event) error {
	for {
		n.batched++
		n.m.steps.Add(1)
		n.m.stepsC.Inc()
		if err := n.cfg.Protocol.Step(ev, &n.out); err != nil {
			return fmt.Errorf("node: step %v: %w", ev, err)
		}
		for _, s := range n.out.Sends[n.scanned:] {
			if s.To == core.Everyone || s.To == n.cfg.Self {
				n.loopback = append(n.loopback, core.Message{From: n.cfg.Self, Instance: s.Instance, Payload: s.Payload})
			}
		}
		n.scanned = len(n.out.Sends)
		if len(n.loopback) == 0 {
			return nil
		}
		ev = n.loopback[0]
		n.loopback[0] = core.Message{}
		n.loopback = n.loopback[1:]
	}
}

// flush performs the batch's Output: every record durable first, then
// Sends (self-addressed copies were already looped back), Deliveries,
// Timers, Requests and Evidence, each in the order the steps produced them.
func (n *Node) flush() error {
	if n.batched == 0 {
		return nil
	}
	start := time.Now()
	out := &n.out
	if len(out.Persist) > 0 {
		if err := n.cfg.Storage.SaveRecords(out.Persist); err != nil {
			return fmt.Errorf("node: persist: %w", err)
		}
		n.m.persisted.Add(uint64(len(out.Persist)))
		n.m.persistedC.Add(float64(len(out.Persist)))
	}
	for _, s := range out.Sends {
		if s.To == n.cfg.Self {
			n.m.sent.Add(1)
			n.m.sentC.Inc()
			continue
		}
		frame, err := wire.EncodeEnvelope(wire.Msg{Sender: n.cfg.Self, Instance: s.Instance, Payload: s.Payload})
		if err != nil {
			return fmt.Errorf("node: encode envelope for %s: %w", s.Instance, err)
		}
		if s.To == core.Everyone {
			n.cfg.Transport.SendMany(n.others, frame)
			n.m.sent.Add(uint64(len(n.others) + 1))
			n.m.sentC.Add(float64(len(n.others) + 1))
		} else {
			n.cfg.Transport.Send(s.To, frame)
			n.m.sent.Add(1)
			n.m.sentC.Inc()
		}
	}
	for _, d := range out.Deliveries {
		n.m.delivered.Add(1)
		n.m.deliveredC.Inc()
		if n.cfg.Deliver != nil {
			n.cfg.Deliver(d)
		}
	}
	for _, t := range out.Timers {
		k := timerKey{t.Instance, t.Timer}
		if t.After == 0 {
			delete(n.timers, k)
		} else {
			n.timers[k] = n.tick + t.After
		}
	}
	n.m.timers.Store(uint64(len(n.timers)))
	for _, r := range out.Requests {
		if err := n.request(r); err != nil {
			return err
		}
	}
	for _, e := range out.Evidence {
		n.evidence(e)
	}
	n.m.batch.Observe(float64(n.batched))
	n.m.stepTime.Observe(time.Since(start).Seconds())
	n.out.Reset()
	n.batched, n.scanned = 0, 0
	return nil
}

// request hands a service request to its service; the reply comes back as
// a ServiceReply event.
func (n *Node) request(r core.ServiceRequest) error {
	n.m.requests.Add(1)
	svc := n.cfg.Services[r.Service]
	if svc == nil {
		return fmt.Errorf("node: request to unknown service %q from %s", r.Service, r.Instance)
	}
	var once atomic.Bool
	svc.Handle(r, func(v any) {
		if once.Swap(true) {
			return
		}
		n.repliesMu.Lock()
		n.replies = append(n.replies, core.ServiceReply{Instance: r.Instance, Service: r.Service, Tag: r.Tag, Reply: v})
		n.repliesMu.Unlock()
		select {
		case n.replyCh <- struct{}{}:
		default:
		}
	})
	return nil
}

// evidence records e. It is logged when the count for its accused and
// kind reaches a power of two, so a replica flooding garbage cannot flood
// the log; the metrics and /status count every item.
func (n *Node) evidence(e core.Evidence) {
	count := n.m.accuse(e)
	if count&(count-1) != 0 {
		return
	}
	attrs := []any{"accused", uint32(e.Accused), "kind", string(e.Kind), "instance", string(e.Instance), "detail", e.Detail, "count", count}
	if ep, ok := epoch(e.Instance); ok {
		attrs = append(attrs, "epoch", ep)
	}
	n.log.Warn("evidence of misbehaviour", attrs...)
}

func (n *Node) applyReplies() error {
	n.repliesMu.Lock()
	evs := n.replies
	n.replies = nil
	n.repliesMu.Unlock()
	for _, ev := range evs {
		if err := n.apply(ev); err != nil {
			return err
		}
	}
	return nil
}

// applyTimers advances the abstract clock by one tick and steps every timer
// now due, in deadline order (ties by instance and name). Timer operations
// of the batch take effect at flush.
func (n *Node) applyTimers() error {
	n.tick++
	if len(n.timers) == 0 {
		return nil
	}
	type due struct {
		k  timerKey
		at uint64
	}
	var fire []due
	for k, at := range n.timers {
		if at <= n.tick {
			fire = append(fire, due{k, at})
		}
	}
	slices.SortFunc(fire, func(a, b due) int {
		return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.k.inst, b.k.inst), cmp.Compare(a.k.timer, b.k.timer))
	})
	for _, d := range fire {
		delete(n.timers, d.k)
		if err := n.apply(core.TimerFired{Instance: d.k.inst, Timer: d.k.timer}); err != nil {
			return err
		}
	}
	return nil
}

// receive decodes frames from the transport and hands them, prechecked
// and in per-sender order, to the stepping goroutine.
func (n *Node) receive(ctx context.Context) {
	var wg sync.WaitGroup
	var work chan *job
	perSender := make(map[core.NodeID]chan *job)
	if n.checker != nil {
		work = make(chan *job, n.cfg.QueueLen)
		for range n.cfg.Workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range work {
					j.msg.Checked, j.err = n.checker.Precheck(j.msg)
					close(j.done)
				}
			}()
		}
		for _, id := range n.cfg.Group.Members() {
			ch := make(chan *job, n.cfg.QueueLen)
			perSender[id] = ch
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.forward(ctx, ch)
			}()
		}
	}
	defer func() {
		if work != nil {
			close(work)
			for _, ch := range perSender {
				close(ch)
			}
		}
		wg.Wait()
	}()
	rx := n.cfg.Transport.Receive()
	for {
		var in transport.Inbound
		select {
		case <-ctx.Done():
			return
		case in = <-rx:
		}
		n.m.received.Add(1)
		n.m.receivedC.Inc()
		msg, ok := n.decode(in)
		if !ok {
			continue
		}
		if work == nil {
			select {
			case n.stepCh <- msg:
			case <-ctx.Done():
				return
			}
			continue
		}
		j := &job{msg: msg, done: make(chan struct{})}
		select {
		case work <- j:
		case <-ctx.Done():
			return
		}
		select {
		case perSender[msg.From] <- j:
		case <-ctx.Done():
			return
		}
	}
}

type job struct {
	msg  core.Message
	err  error
	done chan struct{}
}

// forward passes one sender's prechecked messages to the stepping
// goroutine in the order they were received.
func (n *Node) forward(ctx context.Context, jobs <-chan *job) {
	for j := range jobs {
		<-j.done
		if j.err != nil {
			n.m.drop(DropPrecheck)
			var ev *core.Evidence
			if errors.As(j.err, &ev) {
				n.evidence(*ev)
			} else {
				n.log.Debug("precheck refused message", "from", uint32(j.msg.From), "instance", string(j.msg.Instance), "err", j.err)
			}
			continue
		}
		select {
		case n.stepCh <- j.msg:
		case <-ctx.Done():
			n.m.drop(DropShutdown)
		}
	}
}

// decode checks a frame from an authenticated peer: it must be a valid
// envelope whose sender is that peer. Anything else is dropped, counted
// and recorded as evidence against the peer, who provably sent it over
// its authenticated channel.
func (n *Node) decode(in transport.Inbound) (core.Message, bool) {
	env, err := wire.DecodeEnvelope(in.Frame, n.cfg.Group.N(), n.cfg.MaxPayload)
	if err != nil {
		n.m.drop(DropMalformed)
		n.evidence(core.Evidence{Accused: in.From, Kind: core.Malformed, Detail: err.Error()})
		return core.Message{}, false
	}
	if env.Sender != in.From {
		n.m.drop(DropSenderMismatch)
		n.evidence(core.Evidence{Accused: in.From, Kind: core.Unexpected, Instance: env.Instance,
			Detail: fmt.Sprintf("envelope claims sender %d", env.Sender)})
		return core.Message{}, false
	}
	return core.Message{From: env.Sender, Instance: env.Instance, Payload: env.Payload}, true
}

// epoch extracts the index of an "e:<n>" segment, the convention for
// epochs in instance IDs.
func epoch(id core.InstanceID) (uint64, bool) {
	for id != "" {
		if name, i, ok := id.Last(); ok && name == "e" {
			return i, true
		}
		id = id.Parent()
	}
	return 0, false
}

func itoa(id core.NodeID) string { return strconv.FormatUint(uint64(id), 10) }
