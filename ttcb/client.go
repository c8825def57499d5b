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

// Client is a local entity's authenticated session with its TTCB module.
// It is safe for concurrent use; calls are serialized on the session.
type Client struct {
	mu     sync.Mutex
	conn   net.Conn
	s      *sealer
	nextID uint64
	entity EntityID
	module uint32
	broken error
}

// Dial connects to the module's Unix socket and runs the local
// authentication service: the module must prove it holds the private key
// of modulePub (else ErrUnauthorized), and the entity proves it holds
// entityKey, registered for entity at the module.
func Dial(ctx context.Context, socket string, modulePub ed25519.PublicKey, entity EntityID, entityKey ed25519.PrivateKey) (*Client, error) {
	if len(modulePub) != ed25519.PublicKeySize || len(entityKey) != ed25519.PrivateKeySize || entity == 0 {
		return nil, fmt.Errorf("%w: bad module key, entity key or entity ID", ErrConfig)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("ttcb: dial %s: %w", socket, err)
	}
	c := &Client{conn: conn, entity: entity}
	if err := c.handshake(ctx, modulePub, entityKey); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *Client) handshake(ctx context.Context, modulePub ed25519.PublicKey, entityKey ed25519.PrivateKey) error {
	deadline := time.Now().Add(handshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.conn.SetDeadline(deadline)
	defer func() { _ = c.conn.SetDeadline(time.Time{}) }()
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	nonce := make([]byte, 32)
	_, _ = rand.Read(nonce)
	mine := priv.PublicKey().Bytes()
	if err := writeFrame(c.conn, &wire.TTCBLocal{Frame: &wire.TTCBLocal_ClientHello{ClientHello: &wire.TTCBClientHello{
		Entity: uint32(c.entity), Ephemeral: mine, Nonce: nonce}}}); err != nil {
		return err
	}
	f, err := readFrame(c.conn)
	if err != nil {
		return fmt.Errorf("%w: no server hello: %v", ErrUnauthorized, err)
	}
	sh := f.GetServerHello()
	if sh == nil {
		return fmt.Errorf("%w: expected server hello", ErrUnauthorized)
	}
	th := transcript(sh.Module, c.entity, mine, nonce, sh.Ephemeral, sh.Nonce)
	if !verifySig(modulePub, sigModuleLabel, th, sh.Signature) {
		return fmt.Errorf("%w: module signature does not verify under the pinned key", ErrUnauthorized)
	}
	if err := writeFrame(c.conn, &wire.TTCBLocal{Frame: &wire.TTCBLocal_ClientAuth{ClientAuth: &wire.TTCBClientAuth{
		Signature: ed25519.Sign(entityKey, signed(sigEntityLabel, th))}}}); err != nil {
		return err
	}
	e2m, m2e, err := sessionKeys(priv, sh.Ephemeral, th)
	if err != nil {
		return err
	}
	c.s = &sealer{sendKey: e2m, recvKey: m2e, sendDir: 'E', recvDir: 'M'}
	c.module = sh.Module
	return nil
}

// Module is the ID of the module this session is with.
func (c *Client) Module() uint32 { return c.module }

// Err is the error that broke the session (nil while it works): after
// it, every call fails and the caller dials a new session.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// Close ends the session.
func (c *Client) Close() error { return c.conn.Close() }

// call sends one request and returns the reply (a Refused reply becomes
// its error).
func (c *Client) call(ctx context.Context, req any) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return nil, c.broken
	}
	c.nextID++
	id := c.nextID
	body, err := encodeRequest(id, req)
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(d)
	} else {
		_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	fail := func(err error) (any, error) {
		c.broken = fmt.Errorf("ttcb: session broken: %w", err)
		return nil, c.broken
	}
	if err := writeFrame(c.conn, c.s.seal(body)); err != nil {
		return fail(err)
	}
	f, err := readFrame(c.conn)
	if err != nil {
		return fail(err)
	}
	rb, err := c.s.open(f)
	if err != nil {
		return fail(err)
	}
	rid, v, err := decodeResponse(rb)
	if err != nil {
		return fail(err)
	}
	if rid != id {
		return fail(fmt.Errorf("%w: reply %d to request %d", ErrBadRequest, rid, id))
	}
	if r, ok := v.(Refused); ok {
		return nil, r.Err
	}
	return v, nil
}

func as[T any](v any, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	t, ok := v.(T)
	if !ok {
		return zero, fmt.Errorf("%w: unexpected reply %T", ErrBadRequest, v)
	}
	return t, nil
}

// Propose is TTCB_propose: this entity proposes value for the execution
// (elist, tstart, decision). Repeating the same proposal is harmless; the
// reply's tag and ReadyAt hold even with ErrTooLate.
func (c *Client) Propose(ctx context.Context, elist []EntityID, tstart uint64, d Decision, v Value) (TBAProposed, error) {
	return as[TBAProposed](c.call(ctx, TBAPropose{Elist: elist, TStart: tstart, Decision: d, Value: v}))
}

// TryDecide is one TTCB_decide call. The module answers when the result
// is ready (it holds the call until the execution's deadline, bounded);
// ErrNotReady only if it still is not.
func (c *Client) TryDecide(ctx context.Context, tag Tag) (TBAResult, error) {
	return as[TBAResult](c.call(ctx, TBADecide{Tag: tag}))
}

// Decide is TTCB_decide, waiting for the result (the module holds each
// call until the deadline; at most 100 calls, or until ctx ends).
func (c *Client) Decide(ctx context.Context, tag Tag) (TBAResult, error) {
	for range 99 {
		r, err := c.TryDecide(ctx, tag)
		if !errors.Is(err, ErrNotReady) {
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return c.TryDecide(ctx, tag)
}

// GetTimestamp returns the TTCB's global time in nanoseconds.
func (c *Client) GetTimestamp(ctx context.Context) (uint64, error) {
	t, err := as[Timestamp](c.call(ctx, GetTimestamp{}))
	return t.Time, err
}

// Random returns n (1..MaxRandom) random bytes from the TTCB.
func (c *Client) Random(ctx context.Context, n int) ([]byte, error) {
	r, err := as[Random](c.call(ctx, GetRandom{N: n}))
	return r.Bytes, err
}

// StartMeasure starts measuring a timed action with a bound.
func (c *Client) StartMeasure(ctx context.Context, bound time.Duration) (MeasureStarted, error) {
	return as[MeasureStarted](c.call(ctx, StartMeasure{Bound: uint64(bound)}))
}

// StopMeasure ends a measurement: its duration and whether it was a
// timing failure.
func (c *Client) StopMeasure(ctx context.Context, id uint64) (Measured, error) {
	return as[Measured](c.call(ctx, StopMeasure{ID: id}))
}
