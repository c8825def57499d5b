package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/crypto/keys"
	"github.com/maftia/maftia/crypto/sig"
	"github.com/maftia/maftia/smr"
	"github.com/maftia/maftia/wire"
)

// Errors of Submit.
var (
	// ErrRefused: f+1 replicas refused the request (the reason is in the
	// wrapped message: malformed, oversized, unknown_client, bad_signature).
	ErrRefused = errors.New("client: request refused by the replicas")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client: closed")
)

// Options tune a Client.
type Options struct {
	// Retry is how long Submit waits before re-sending the request to the
	// replicas that have not answered (reconnecting where needed).
	Retry time.Duration
	// DialTimeout bounds one connection attempt.
	DialTimeout time.Duration
	// Addresses overrides the members' ClientAddress (index i: replica i+1).
	Addresses []string
	// FirstSeq is the first sequence number to use; 0: derived from the
	// clock (see Client).
	FirstSeq uint64
}

// Client submits operations to a replicated service. One Client has one
// client identity and runs one request at a time (Submit serialises):
// replicas execute a client's requests in sequence-number order and drop a
// request whose number is not above the last one executed, so concurrent
// requests of one identity would starve each other. Use one Client per
// identity for concurrency.
//
// Sequence numbers: the first is the wall clock in microseconds at Dial
// (or Options.FirstSeq), then +1 per request. A process restarted later
// therefore starts above every number it used before (as long as it
// issued fewer than one request per microsecond and the clock did not go
// back), so a restart never reuses a number the replicas already executed.
type Client struct {
	cluster  *keys.Cluster
	digest   [32]byte
	key      *sig.PrivateKey
	id       uint64
	opts     Options
	replicas map[uint32]sig.VerifyKey
	conns    []*conn

	mu     sync.Mutex // one Submit at a time
	seq    uint64
	faults map[uint32]uint64
	last   accepted // the previous request's outcome, to judge late replies

	closeOnce sync.Once
	closed    chan struct{}
}

type conn struct {
	id   uint32
	addr string
	pk   ed25519.PublicKey

	mu      sync.Mutex
	nc      net.Conn
	sub     chan<- frame // where to send frames; nil when nobody waits
	wg      sync.WaitGroup
	out     chan []byte // requests for the writer goroutine
	writing bool        // the writer goroutine was started
	failed  time.Time   // last failed dial: no new attempt for a second
}

// accepted is a request's outcome as f+1 replicas vouched for it.
type accepted struct {
	seq      uint64
	result   []byte
	position uint64
	judged   map[uint32]bool
}

// judgeLate checks a reply to the previous request that arrived after
// Submit returned: a validly signed reply with another outcome is proof
// that its replica misbehaved. A reply with the accepted outcome proves
// nothing either way, so its signature is not checked (in the common case
// that halves the client's verification work).
func (c *Client) judgeLate(r *wire.Reply) {
	l := &c.last
	if l.judged == nil || r.Client != c.id || r.Seq != l.seq || l.judged[r.Replica] {
		return
	}
	if bytes.Equal(r.Result, l.result) && r.Position == l.position {
		return
	}
	pk, ok := c.replicas[r.Replica]
	if !ok || smr.VerifyReply(pk, c.digest, r) != nil {
		return
	}
	l.judged[r.Replica] = true
	c.faults[r.Replica]++
}

type frame struct {
	from  uint32
	kind  byte
	reply *wire.Reply
	ref   wire.Refusal
}

// Dial prepares a client for the cluster with the client's key.
// Connections are opened lazily by Submit and re-opened after failures.
func Dial(cluster *keys.Cluster, key *keys.ClientPrivate, opts Options) (*Client, error) {
	if cluster == nil || key == nil {
		return nil, errors.New("client: cluster and key are required")
	}
	if opts.Retry <= 0 {
		opts.Retry = 500 * time.Millisecond
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.Addresses != nil && len(opts.Addresses) != len(cluster.Members) {
		return nil, fmt.Errorf("client: %d addresses for %d replicas", len(opts.Addresses), len(cluster.Members))
	}
	c := &Client{cluster: cluster, digest: cluster.Digest(), key: key.Identity, id: uint64(key.ID), opts: opts,
		replicas: map[uint32]sig.VerifyKey{}, faults: map[uint32]uint64{}, closed: make(chan struct{})}
	for i, m := range cluster.Members {
		addr := m.ClientAddress()
		if opts.Addresses != nil {
			addr = opts.Addresses[i]
		}
		c.replicas[m.ID] = m.Identity.Expand()
		c.conns = append(c.conns, &conn{id: m.ID, addr: addr, pk: ed25519.PublicKey(m.Identity.Marshal()), out: make(chan []byte, 4)})
	}
	c.seq = opts.FirstSeq
	if c.seq == 0 {
		c.seq = uint64(time.Now().UnixMicro())
	}
	return c, nil
}

// ID is the client identity.
func (c *Client) ID() uint64 { return c.id }

// Faults counts, per replica, misbehaviour this client saw: signed
// replies whose result differs from the one f+1 replicas agreed on
// (provable to others), and reply shares of the service's signature that
// did not verify (seen on the connection pinned to that replica).
func (c *Client) Faults() map[uint32]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[uint32]uint64, len(c.faults))
	for k, v := range c.faults {
		out[k] = v
	}
	return out
}

// Connect opens the connections to every replica now (Submit otherwise
// opens them on first use) and reports how many succeeded. Load
// generators call it for their clients a few at a time, so thousands of
// TLS handshakes do not all start at once.
func (c *Client) Connect(ctx context.Context) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for _, cn := range c.conns {
		cn.mu.Lock()
		connected := cn.nc != nil
		cn.mu.Unlock()
		if connected {
			ok++
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := cn.dial(ctx, c); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok
}

// Close closes every connection.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed) // a running Submit returns ErrClosed
		for _, cn := range c.conns {
			cn.mu.Lock()
			if cn.nc != nil {
				cn.nc.Close()
			}
			cn.mu.Unlock()
			cn.wg.Wait()
		}
	})
	return nil
}

// Submit sends op, signed, to every replica and returns the result once
// f+1 replicas returned matching signed replies. It re-sends every
// Options.Retry to the replicas that have not answered, and gives up when
// ctx ends (the request may still execute: a retry with the same sequence
// number is impossible after Submit returns, so callers treat the outcome
// as unknown).
func (c *Client) Submit(ctx context.Context, op []byte) ([]byte, error) {
	res, _, err := c.submit(ctx, op, false)
	return res, err
}

// SubmitCertified is Submit for a result the service signs as a whole:
// it asks every replica for its share of the service's threshold
// signature and returns once f+1 matching replies carry shares that
// combine into one valid signature under the cluster's reply key. The
// certificate convinces anyone holding the cluster file
// (smr.VerifyCertificate) with one check — the service acting as a single
// trusted third party. Replicas whose share is invalid are counted in
// Faults. Each replica spends a BLS signature per certified reply, so use
// it for the results that must be shown to others.
func (c *Client) SubmitCertified(ctx context.Context, op []byte) (smr.Certificate, error) {
	_, cert, err := c.submit(ctx, op, true)
	return cert, err
}

func (c *Client) submit(ctx context.Context, op []byte, certify bool) ([]byte, smr.Certificate, error) {
	var none smr.Certificate
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.closed:
		return nil, none, ErrClosed
	default:
	}
	c.seq++
	req := &wire.ClientRequest{Client: c.id, Seq: c.seq, Op: op}
	smr.SignRequest(c.key, c.digest, req)
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return nil, none, err
	}
	kind := wire.FrameRequest
	if certify {
		kind = wire.FrameRequestCertified
	}
	framed := append([]byte{kind}, body...)
	ch := make(chan frame, 4*len(c.conns))
	for _, cn := range c.conns {
		cn.mu.Lock()
		cn.sub = ch
		cn.mu.Unlock()
	}
	defer func() {
		for _, cn := range c.conns {
			cn.mu.Lock()
			cn.sub = nil
			cn.mu.Unlock()
		}
	}()
	col := NewCollector(c.digest, c.cluster.F, c.replicas, c.id, c.seq)
	col.TrustChannel() // every conn is pinned, and below a reply naming another replica is dropped
	if certify {
		col.Certify(c.cluster.Reply)
	}
	answered := map[uint32]bool{}
	replies := map[uint32]*wire.Reply{}
	refusals := map[string]map[uint32]bool{}
	send := func() {
		for _, cn := range c.conns {
			if !answered[cn.id] {
				cn.enqueue(c, framed)
			}
		}
	}
	send()
	t := time.NewTicker(c.opts.Retry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, none, fmt.Errorf("client: request %d: %w", c.seq, ctx.Err())
		case <-c.closed:
			return nil, none, ErrClosed
		case <-t.C:
			send()
		case f := <-ch:
			switch f.kind {
			case wire.FrameRefused:
				if (f.ref.Client != c.id || f.ref.Seq != c.seq) && f.ref.Client != 0 {
					continue
				}
				if refusals[f.ref.Reason] == nil {
					refusals[f.ref.Reason] = map[uint32]bool{}
				}
				refusals[f.ref.Reason][f.from] = true
				answered[f.from] = true
				if len(refusals[f.ref.Reason]) >= c.cluster.F+1 {
					return nil, none, fmt.Errorf("%w: %s", ErrRefused, f.ref.Reason)
				}
			case wire.FrameReply:
				if f.reply.Replica != f.from {
					continue // a replica relaying another's reply: ignore
				}
				if f.reply.Seq != c.seq {
					c.judgeLate(f.reply)
					continue
				}
				res, pos, done, err := col.Add(f.reply)
				if err != nil {
					continue
				}
				answered[f.from] = true
				replies[f.from] = f.reply
				if done {
					c.last = accepted{seq: c.seq, result: res, position: pos, judged: map[uint32]bool{}}
					for id, r := range replies {
						c.last.judged[id] = true
						// A disagreeing reply is held as proof only if its
						// signature verifies (the accept path trusted the
						// channel and checked none).
						if (!bytes.Equal(r.Result, res) || r.Position != pos) && smr.VerifyReply(c.replicas[id], c.digest, r) == nil {
							c.faults[id]++
						}
					}
					for _, id := range col.BadShares() {
						c.faults[id]++
					}
					return res, col.Certificate(), nil
				}
			}
		}
	}
}

// enqueue hands the request (its frame kind, then its body) to the connection's writer without blocking
// (a slow or unreachable replica never delays Submit; if its queue is
// full the request is dropped and the next retry sends it again).
func (cn *conn) enqueue(c *Client, body []byte) {
	cn.mu.Lock()
	if !cn.writing {
		select {
		case <-c.closed:
			cn.mu.Unlock()
			return
		default:
		}
		cn.writing = true
		cn.wg.Add(1)
		go cn.writer(c)
	}
	cn.mu.Unlock()
	select {
	case cn.out <- body:
	default:
	}
}

// writer sends queued requests until the client is closed.
func (cn *conn) writer(c *Client) {
	defer cn.wg.Done()
	for {
		select {
		case <-c.closed:
			return
		case b := <-cn.out:
			cn.send(c, b)
		}
	}
}

// send writes the request (kind byte, then body), (re)connecting first if needed.
func (cn *conn) send(c *Client, body []byte) {
	cn.mu.Lock()
	nc := cn.nc
	cn.mu.Unlock()
	if nc == nil {
		cn.mu.Lock()
		recent := time.Since(cn.failed) < time.Second
		cn.mu.Unlock()
		if recent {
			return // back off: a storm of handshakes would time out together
		}
		var err error
		if nc, err = cn.dial(context.Background(), c); err != nil {
			cn.mu.Lock()
			cn.failed = time.Now()
			cn.mu.Unlock()
			return
		}
	}
	nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if err := wire.WriteClientFrame(nc, body[0], body[1:]); err != nil {
		nc.Close()
	}
}

func (cn *conn) dial(ctx context.Context, c *Client) (net.Conn, error) {
	d := &net.Dialer{Timeout: c.opts.DialTimeout}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // no CA and no host name: VerifyConnection pins the replica's key
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("client: replica presented no certificate")
			}
			k, ok := cs.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
			if !ok || !k.Equal(cn.pk) {
				return fmt.Errorf("client: replica %d's key differs from the cluster file", cn.id)
			}
			return nil
		},
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	nc, err := (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", cn.addr)
	if err != nil {
		return nil, err
	}
	cn.mu.Lock()
	select {
	case <-c.closed:
		cn.mu.Unlock()
		nc.Close()
		return nil, ErrClosed
	default:
	}
	if cn.nc != nil {
		cn.nc.Close()
	}
	cn.nc = nc
	cn.wg.Add(1)
	cn.mu.Unlock()
	go cn.read(nc)
	return nc, nil
}

// read dispatches a connection's frames to the waiting Submit.
func (cn *conn) read(nc net.Conn) {
	defer cn.wg.Done()
	defer func() {
		nc.Close()
		cn.mu.Lock()
		if cn.nc == nc {
			cn.nc = nil
		}
		cn.mu.Unlock()
	}()
	for {
		kind, body, err := wire.ReadClientFrame(nc, wire.MaxClientFrame)
		if err != nil {
			return
		}
		f := frame{from: cn.id, kind: kind}
		switch kind {
		case wire.FrameReply:
			var r wire.Reply
			if proto.Unmarshal(body, &r) != nil {
				return
			}
			f.reply = &r
		case wire.FrameRefused:
			if f.ref, err = wire.DecodeRefusal(body); err != nil {
				return
			}
		default:
			return
		}
		cn.mu.Lock()
		sub := cn.sub
		cn.mu.Unlock()
		if sub != nil {
			select {
			case sub <- f:
			default: // Submit is not keeping up: it will retry
			}
		}
	}
}
