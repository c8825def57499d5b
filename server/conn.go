package server

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/smr"
	"github.com/maftia/maftia/transport"
	"github.com/maftia/maftia/wire"
)

// Reasons a replica refuses a client request (sent to the client in a
// FrameRefused and counted in maftia_smr_refused_total{reason}).
const (
	ReasonMalformed     = "malformed"
	ReasonOversized     = "oversized"
	ReasonUnknownClient = "unknown_client"
	ReasonBadSignature  = "bad_signature"
	ReasonOverloaded    = "overloaded"
)

// maxInFlightPerConn bounds the requests one connection may have waiting
// for execution (ATTACKS row 10: a flooding client cannot grow the
// replica's memory without bound).
const maxInFlightPerConn = 4096

type clientConn struct {
	nc      net.Conn
	wmu     sync.Mutex
	w       *bufio.Writer // guarded by wmu
	waiting int           // guarded by Server.mu
	// slots bounds the connection's requests waiting for signature
	// verification, so one connection cannot fill the shared queue and
	// starve the others (ATTACKS row 10); bad marks a connection that
	// sent a forged request: its queued requests are dropped unverified
	// and it is closed (a correct client never sends one).
	slots chan struct{}
	bad   atomic.Bool
}

// maxUnverifiedPerConn is the number of a connection's requests that may
// wait for signature verification at once.
const maxUnverifiedPerConn = 64

func newClientConn(nc net.Conn) *clientConn {
	return &clientConn{nc: nc, w: bufio.NewWriterSize(nc, 64<<10), slots: make(chan struct{}, maxUnverifiedPerConn)}
}

// send writes one frame and flushes it.
func (c *clientConn) send(kind byte, body []byte) {
	c.queue(kind, body)
	c.flush()
}

// queue buffers one frame; flush sends what is buffered. The reply
// workers queue replies while more are waiting and flush when their queue
// runs dry, so a burst of replies to one client costs one TLS record and
// one write instead of one each (docs/PERFORMANCE.md).
func (c *clientConn) queue(kind byte, body []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := wire.WriteClientFrame(c.w, kind, body); err != nil {
		c.nc.Close() // a client that does not read is dropped
	}
}

func (c *clientConn) flush() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.w.Buffered() == 0 {
		return
	}
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.w.Flush(); err != nil {
		c.nc.Close()
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func marshal(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// clientTLS is the client listener's TLS configuration: the replica proves
// its identity key (pinned by clients from the cluster file); clients are
// not asked for certificates, their requests are signed.
func (s *Server) clientTLS() (*tls.Config, error) {
	cert, err := transport.SelfSignedCert(ed25519.NewKeyFromSeed(s.identity.Marshal()))
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}, nil
}

func (s *Server) acceptLoop(ctx context.Context, wg *sync.WaitGroup) {
	cfg, err := s.clientTLS()
	if err != nil {
		s.log.Error("client TLS", "err", err)
		return
	}
	for {
		nc, err := s.clientLn.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("client accept", "err", err)
			}
			return
		}
		c := newClientConn(tls.Server(nc, cfg))
		s.mu.Lock()
		if ctx.Err() != nil {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[c] = true
		s.mu.Unlock()
		s.m.conns.Inc()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c)
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, c *clientConn) {
	defer func() {
		c.nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		for k, w := range s.waiters {
			if w == c {
				delete(s.waiters, k)
				delete(s.certify, k)
			}
		}
		s.mu.Unlock()
		s.m.conns.Dec()
	}()
	max := s.maxReq + 1024
	for {
		kind, body, err := wire.ReadClientFrame(c.nc, max)
		if err != nil {
			if errors.Is(err, wire.ErrFrameTooLarge) {
				s.refuse(c, 0, 0, ReasonOversized)
			} else if errors.Is(err, wire.ErrMalformed) {
				s.refuse(c, 0, 0, ReasonMalformed)
			}
			return
		}
		certify := kind == wire.FrameRequestCertified
		if kind != wire.FrameRequest && !certify {
			s.refuse(c, 0, 0, ReasonMalformed)
			continue
		}
		req, err := smr.DecodeRequest(body, max)
		if err != nil {
			s.refuse(c, 0, 0, ReasonMalformed)
			continue
		}
		if len(smr.EncodeRequest(req)) > s.maxReq {
			s.refuse(c, req.Client, req.Seq, ReasonOversized)
			continue
		}
		if _, ok := s.clients[req.Client]; !ok {
			s.refuse(c, req.Client, req.Seq, ReasonUnknownClient)
			continue
		}
		s.mu.Lock()
		busy := c.waiting >= maxInFlightPerConn
		s.mu.Unlock()
		if busy {
			s.refuse(c, req.Client, req.Seq, ReasonOverloaded)
			continue
		}
		select {
		case c.slots <- struct{}{}: // released by the verifier
		case <-ctx.Done():
			return
		}
		if c.bad.Load() {
			return
		}
		select {
		case s.verifyCh <- pendingReq{req: req, conn: c, certify: certify}:
		case <-ctx.Done():
			return
		}
	}
}

// refuse counts a refused request and tells the client why.
func (s *Server) refuse(c *clientConn, client, seq uint64, reason string) {
	s.m.refused(reason)
	if c != nil && s.Attack() != AttackSilent {
		c.send(wire.FrameRefused, wire.EncodeRefusal(wire.Refusal{Client: client, Seq: seq, Reason: reason}))
	}
}

var _ = fmt.Sprintf
