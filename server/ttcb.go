package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/ttcb"
)

// TTCBConfig is how a hybrid replica reaches the TTCB module of its host:
// the module's Unix socket, the module's public key (pinned: the local
// authentication service refuses any other module) and this replica's
// entity key, registered at the module under the replica's ID.
type TTCBConfig struct {
	Socket    string
	ModuleKey ed25519.PublicKey
	EntityKey ed25519.PrivateKey
}

// ttcbService is the runtime side of the hybrid engine's "ttcb" service
// requests (node.Service): it carries them to the local module over
// authenticated sessions and hands the replies back as ServiceReply
// events. Proposals and timestamps go, in the order the engine made them,
// over one session; a TBADecide is handed to one of a few other sessions
// only after every request before it has been answered (so the module has
// seen the proposal it refers to), because the module holds a decide call
// until the execution's deadline. A broken session (the module restarted)
// is dialled again and the call repeated: proposals and decides are
// idempotent. Refusals (late proposal, expired result, …) go back to the
// engine as ttcb.Refused, as the model does.
type ttcbService struct {
	cfg     TTCBConfig
	entity  ttcb.EntityID
	log     *slog.Logger
	ordered chan ttcbCall
	decides chan ttcbCall
	workers int

	calls, refused, redials atomic.Uint64
	tba                     uint64   // the schedule's T_TBA, ns
	due                     sync.Map // execution tag → when its result is due (Unix ns)
}

type ttcbCall struct {
	req   core.ServiceRequest
	reply func(any)
}

func newTTCBService(cfg TTCBConfig, self core.NodeID, n int, tba time.Duration, log *slog.Logger) (*ttcbService, error) {
	if cfg.Socket == "" || len(cfg.ModuleKey) != ed25519.PublicKeySize || len(cfg.EntityKey) != ed25519.PrivateKeySize {
		return nil, errors.New("server: the hybrid configuration needs the TTCB socket, the module's public key and this replica's entity key")
	}
	// One session for ordered calls plus one per concurrent decide (the
	// engine waits on n per epoch); the module allows 8 per entity.
	return &ttcbService{cfg: cfg, entity: ttcb.EntityID(self), log: log.With("service", "ttcb"),
		ordered: make(chan ttcbCall, 1<<14), decides: make(chan ttcbCall, 1<<14), workers: min(n+1, 7), tba: uint64(tba)}, nil
}

// Handle implements node.Service; it never blocks the stepping goroutine.
func (s *ttcbService) Handle(req core.ServiceRequest, reply func(any)) {
	s.calls.Add(1)
	select {
	case s.ordered <- ttcbCall{req, reply}:
	default:
		s.refused.Add(1)
		reply(ttcb.Refused{Err: fmt.Errorf("%w: local TTCB request queue full", ttcb.ErrOverloaded)})
	}
}

// run serves requests until ctx ends.
func (s *ttcbService) run(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(1 + s.workers)
	go func() {
		defer wg.Done()
		var c *ttcb.Client
		defer func() { closeSession(c) }()
		for {
			select {
			case <-ctx.Done():
				return
			case call := <-s.ordered:
				if _, ok := call.req.Request.(ttcb.TBADecide); ok {
					select {
					case s.decides <- call:
					case <-ctx.Done():
						return
					}
					continue
				}
				if p, ok := call.req.Request.(ttcb.TBAPropose); ok {
					// When its result is due (global time is Unix time).
					s.due.Store(ttcb.ExecutionTag(p.Elist, p.TStart, p.Decision), p.TStart+s.tba)
				}
				call.reply(s.do(ctx, &c, call.req.Request))
			}
		}
	}()
	for range s.workers {
		go func() {
			defer wg.Done()
			var c *ttcb.Client
			defer func() { closeSession(c) }()
			for {
				select {
				case <-ctx.Done():
					return
				case call := <-s.decides:
					call.reply(s.do(ctx, &c, call.req.Request))
				}
			}
		}()
	}
}

func closeSession(c *ttcb.Client) {
	if c != nil {
		c.Close()
	}
}

// do performs one call on *c, dialling (again) as needed, and returns the
// reply value for the engine. It gives up only when ctx ends.
func (s *ttcbService) do(ctx context.Context, c **ttcb.Client, req any) any {
	backoff := 10 * time.Millisecond
	unavailable := 0
	bound := decideBound
	if d, ok := req.(ttcb.TBADecide); ok {
		// A decide is bounded: a module that restarted or was cut off
		// may hold an execution it will never release. Past the bound
		// (the result's due time plus a margin, when the proposal was
		// seen) the engine is told "unavailable" and asks the other
		// replicas.
		if v, ok := s.due.LoadAndDelete(d.Tag); ok {
			bound = time.Until(time.Unix(0, int64(v.(uint64)))) + decideMargin
			bound = max(min(bound, decideBound), decideMargin)
		}
		parent := ctx
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(parent, bound)
		defer cancel()
		defer func() {
			if ctx.Err() != nil && parent.Err() == nil && *c != nil {
				(*c).Close() // the call may still be pending on it
				*c = nil
			}
		}()
	}
	unavailableNow := func() any {
		if ctx.Err() == context.DeadlineExceeded {
			s.refused.Add(1)
			return ttcb.Refused{Err: fmt.Errorf("%w: no answer from the module within %v", ttcb.ErrUnavailable, bound.Round(time.Millisecond))}
		}
		return ttcb.Refused{Err: ttcb.ErrClosed}
	}
	for {
		if *c == nil {
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			cl, err := ttcb.Dial(dctx, s.cfg.Socket, s.cfg.ModuleKey, s.entity, s.cfg.EntityKey)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return unavailableNow()
				}
				if errors.Is(err, ttcb.ErrUnauthorized) || errors.Is(err, ttcb.ErrConfig) {
					s.log.Error("TTCB module refused this replica", "socket", s.cfg.Socket, "err", err)
				} else if backoff >= time.Second {
					s.log.Warn("TTCB module unreachable", "socket", s.cfg.Socket, "err", err)
				}
				sleep(ctx, backoff)
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			s.redials.Add(1)
			*c = cl
		}
		v, err := call(ctx, *c, req)
		switch {
		case err == nil:
			return v
		case ctx.Err() != nil:
			return unavailableNow()
		case (*c).Err() != nil: // the session broke: dial again and repeat
			s.log.Warn("TTCB session broken; reconnecting", "err", err)
			(*c).Close()
			*c = nil
			sleep(ctx, 10*time.Millisecond)
		case errors.Is(err, ttcb.ErrRateLimited), errors.Is(err, ttcb.ErrNotReady):
			sleep(ctx, 5*time.Millisecond) // transient: ask again
		case errors.Is(err, ttcb.ErrUnavailable) && beforeTStart(req) && unavailable < 100:
			// The module has not synchronized yet (it just started or
			// restarted) and the execution has not started: a proposal
			// refused now would leave no result to ask for, so ask again
			// (up to 2 s, and only until tstart). After tstart the
			// refusal stands: the module rejoined after the execution
			// began, and the engine gets the result from other replicas.
			unavailable++
			sleep(ctx, 20*time.Millisecond)
		case errors.Is(err, ttcb.ErrTooEarly):
			// The schedule starts beyond the module's horizon (the replica
			// was started long before the cluster's start time): wait.
			sleep(ctx, time.Second)
		default:
			s.refused.Add(1)
			return ttcb.Refused{Err: err}
		}
		if ctx.Err() != nil {
			return unavailableNow()
		}
	}
}

// decideBound bounds one TBADecide whose proposal was not seen (results
// are due at tstart + T_TBA; the schedule's backoff keeps tstart within
// about 20 s); decideMargin is the wait past a known due time.
const (
	decideBound  = 30 * time.Second
	decideMargin = 3 * time.Second
)

func call(ctx context.Context, c *ttcb.Client, req any) (any, error) {
	switch r := req.(type) {
	case ttcb.TBAPropose:
		return c.Propose(ctx, r.Elist, r.TStart, r.Decision, r.Value)
	case ttcb.TBADecide:
		return c.Decide(ctx, r.Tag)
	case ttcb.GetTimestamp:
		t, err := c.GetTimestamp(ctx)
		return ttcb.Timestamp{Time: t}, err
	}
	return nil, fmt.Errorf("%w: request %T", ttcb.ErrBadRequest, req)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// beforeTStart reports whether req is a proposal whose tstart is still in
// the future by this host's clock (TTCB global time is Unix time).
func beforeTStart(req any) bool {
	p, ok := req.(ttcb.TBAPropose)
	return ok && uint64(time.Now().UnixNano()) < p.TStart
}

// register exports the adapter's counters (maftia_ttcb_*).
func (s *ttcbService) register(reg prometheus.Registerer) error {
	for _, c := range []struct {
		name, help string
		v          *atomic.Uint64
	}{
		{"maftia_ttcb_calls_total", "Requests of the ordering engine to the local TTCB module.", &s.calls},
		{"maftia_ttcb_refused_total", "Of those, answered with a refusal (late proposal, withheld or expired result, queue full, no answer in time).", &s.refused},
		{"maftia_ttcb_sessions_total", "Authenticated sessions opened to the module (more than the workers: the module restarted or a session broke).", &s.redials},
	} {
		v := c.v
		if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(v.Load()) })); err != nil {
			return err
		}
	}
	return nil
}
