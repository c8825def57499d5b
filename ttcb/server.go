package ttcb

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/maftia/maftia/wire"
)

const (
	handshakeTimeout     = 2 * time.Second
	maxSessionsPerEntity = 8 // so one entity cannot take all MaxSessions
)

func (m *Module) acceptLocal(ctx context.Context, wg *sync.WaitGroup) {
	for ctx.Err() == nil {
		c, err := m.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(time.Millisecond)
			continue
		}
		m.mu.Lock()
		if len(m.conns) >= m.cfg.MaxSessions || ctx.Err() != nil {
			m.mu.Unlock()
			c.Close()
			continue
		}
		m.conns[c] = true
		m.mu.Unlock()
		wg.Go(func() {
			defer func() {
				m.mu.Lock()
				delete(m.conns, c)
				m.mu.Unlock()
				c.Close()
			}()
			if err := m.serve(ctx, c); err != nil && !errors.Is(err, net.ErrClosed) {
				m.log.Debug("ttcb local session ended", "err", err)
			}
		})
	}
}

func (m *Module) entityKey(id EntityID) ed25519.PublicKey {
	for _, e := range m.cfg.Entities {
		if e.ID == id {
			return e.PublicKey
		}
	}
	return nil
}

// handshake runs the module side of the local authentication service.
func (m *Module) handshake(c net.Conn) (EntityID, *sealer, error) {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	f, err := readFrame(c)
	if err != nil {
		return 0, nil, err
	}
	hello := f.GetClientHello()
	if hello == nil {
		return 0, nil, fmt.Errorf("%w: expected client hello", ErrUnauthorized)
	}
	eid := EntityID(hello.Entity)
	epub := m.entityKey(eid)
	if epub == nil {
		return 0, nil, fmt.Errorf("%w: entity %d not registered at this module", ErrUnauthorized, eid)
	}
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return 0, nil, err
	}
	nonce := make([]byte, 32)
	_, _ = rand.Read(nonce)
	mine := priv.PublicKey().Bytes()
	th := transcript(m.cfg.ID, eid, hello.Ephemeral, hello.Nonce, mine, nonce)
	sig := ed25519.Sign(m.cfg.Key, signed(sigModuleLabel, th))
	if err := writeFrame(c, &wire.TTCBLocal{Frame: &wire.TTCBLocal_ServerHello{ServerHello: &wire.TTCBServerHello{
		Module: m.cfg.ID, Ephemeral: mine, Nonce: nonce, Signature: sig}}}); err != nil {
		return 0, nil, err
	}
	f, err = readFrame(c)
	if err != nil {
		return 0, nil, err
	}
	auth := f.GetClientAuth()
	if auth == nil || !verifySig(epub, sigEntityLabel, th, auth.Signature) {
		return 0, nil, fmt.Errorf("%w: entity %d signature", ErrUnauthorized, eid)
	}
	e2m, m2e, err := sessionKeys(priv, hello.Ephemeral, th)
	if err != nil {
		return 0, nil, err
	}
	return eid, &sealer{sendKey: m2e, recvKey: e2m, sendDir: 'M', recvDir: 'E'}, nil
}

func (m *Module) serve(ctx context.Context, c net.Conn) error {
	eid, s, err := m.handshake(c)
	if err != nil {
		m.st.localAuthFailures.Add(1)
		m.log.Warn("ttcb local authentication failed", "err", err)
		return err
	}
	m.mu.Lock()
	if m.sessions[eid] >= maxSessionsPerEntity {
		m.mu.Unlock()
		return fmt.Errorf("%w: entity %d has %d sessions", ErrOverloaded, eid, maxSessionsPerEntity)
	}
	m.sessions[eid]++
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.sessions[eid]--
		m.mu.Unlock()
	}()
	for ctx.Err() == nil {
		f, err := readFrame(c)
		if err != nil {
			if errors.Is(err, ErrBadRequest) {
				m.st.localBadFrames.Add(1)
			}
			return err
		}
		body, err := s.open(f)
		if err != nil {
			m.st.localAuthFailures.Add(1)
			return err
		}
		id, req, err := decodeRequest(body)
		var reply any
		switch {
		case err != nil:
			m.st.localBadFrames.Add(1)
			reply = Refused{Err: err}
		case !m.admit(eid):
			m.st.rateLimited.Add(1)
			reply = Refused{Err: ErrRateLimited}
		default:
			reply = m.dispatch(ctx, eid, req)
		}
		out, err := encodeResponse(id, reply)
		if err != nil {
			return err
		}
		if err := writeFrame(c, s.seal(out)); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// admit is admission control: a token bucket per entity, so a flooding
// local process cannot take the module's time from others.
func (m *Module) admit(eid EntityID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.buckets[eid]
	if b == nil {
		b = &bucket{}
		m.buckets[eid] = b
	}
	return b.take(uint64(time.Since(m.clk.start)), uint64(m.cfg.RateEvery), uint64(m.cfg.RateBurst))
}

func (m *Module) dispatch(ctx context.Context, eid EntityID, req any) any {
	switch r := req.(type) {
	case GetTimestamp:
		return Timestamp{Time: m.clk.timestamp()}
	case GetRandom:
		b := make([]byte, r.N)
		_, _ = rand.Read(b)
		return Random{Bytes: b}
	case StartMeasure:
		m.mu.Lock()
		defer m.mu.Unlock()
		ms := m.measures[eid]
		if ms == nil {
			ms = make(map[uint64]measure)
			m.measures[eid] = ms
		}
		if len(ms) >= m.cfg.MaxMeasures {
			return Refused{Err: fmt.Errorf("%w: %d open measurements", ErrOverloaded, len(ms))}
		}
		m.nextMeas++
		now := m.clk.timestamp()
		ms[m.nextMeas] = measure{start: now, bound: r.Bound}
		return MeasureStarted{ID: m.nextMeas, Start: now}
	case StopMeasure:
		m.mu.Lock()
		defer m.mu.Unlock()
		ms, ok := m.measures[eid][r.ID]
		if !ok {
			return Refused{Err: ErrUnknownMeasure}
		}
		delete(m.measures[eid], r.ID)
		d := m.clk.timestamp() - ms.start
		return Measured{Duration: d, TimingFailure: d > ms.bound}
	}
	// TBA calls go to the loop. A Decide before the result is ready waits
	// here (not in the loop) until the deadline, then asks again, so a
	// caller needs one round trip; the wait is bounded.
	limit := time.Now().Add(m.cfg.TBABound() + 5*time.Second)
	for {
		call := localCall{entity: eid, req: req, reply: make(chan any, 1)}
		select {
		case m.callCh <- call:
		case <-ctx.Done():
			return Refused{Err: ErrClosed}
		}
		var r any
		select {
		case r = <-call.reply:
		case <-ctx.Done():
			return Refused{Err: ErrClosed}
		}
		nr, ok := r.(notReady)
		if !ok {
			return r
		}
		if time.Now().After(limit) {
			return Refused{Err: nr.err}
		}
		wait := time.Millisecond
		if now := m.clk.global(); nr.at > now {
			wait = max(wait, time.Duration(nr.at-now))
		}
		select {
		case <-time.After(min(wait, m.cfg.TBABound())):
		case <-ctx.Done():
			return Refused{Err: ErrClosed}
		}
	}
}
