package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/apps/kv"
	"github.com/maftia/maftia/apps/kv/kvtest"
	"github.com/maftia/maftia/client"
	"github.com/maftia/maftia/crypto/keys"
	"github.com/maftia/maftia/crypto/sig"
	"github.com/maftia/maftia/smr"
	"github.com/maftia/maftia/wire"
)

type rawConn struct {
	t *testing.T
	c *tls.Conn
}

func dialRaw(t *testing.T, l *Local, id uint32) *rawConn {
	t.Helper()
	c, err := tls.Dial("tcp", l.Server(id).ClientAddr().String(), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

func (r *rawConn) write(kind byte, body []byte) {
	r.t.Helper()
	if err := wire.WriteClientFrame(r.c, kind, body); err != nil {
		r.t.Fatal(err)
	}
}

// next reads frames until a refusal or a reply arrives (or 10 s pass).
func (r *rawConn) next() (byte, []byte) {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	kind, body, err := wire.ReadClientFrame(r.c, wire.MaxClientFrame)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return kind, body
}

func (r *rawConn) wantRefusal(reason string) {
	r.t.Helper()
	kind, body := r.next()
	if kind != wire.FrameRefused {
		r.t.Fatalf("got frame kind %d, want a refusal (%s)", kind, reason)
	}
	ref, err := wire.DecodeRefusal(body)
	if err != nil || ref.Reason != reason {
		r.t.Fatalf("refusal %+v (%v), want reason %s", ref, err, reason)
	}
}

func signed(l *Local, key *sig.PrivateKey, client, seq uint64, op []byte) []byte {
	req := &wire.ClientRequest{Client: client, Seq: seq, Op: op}
	smr.SignRequest(key, l.Cluster.Digest(), req)
	b, _ := proto.Marshal(req)
	return b
}

// TestBadClientInputRefusedAndCounted (ATTACKS row 10, S4): malformed,
// badly signed, unknown-client, oversized and replayed requests are
// refused (or answered from the session, never executed twice), counted,
// and the service keeps serving.
func TestBadClientInputRefusedAndCounted(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	l := startLocal(t, 4, 1, 2, false, nil)
	r := dialRaw(t, l, 1)
	ck := l.Clients[0]
	put := kv.EncodeOp(&wire.KVOp{Kind: wire.KVOp_PUT, Key: []byte("a"), Value: []byte("1")})

	// Malformed: garbage body, and a frame of the wrong kind.
	r.write(wire.FrameRequest, []byte{0xff, 0xff, 0xff})
	r.wantRefusal(ReasonMalformed)
	r.write(wire.FrameReply, []byte("x"))
	r.wantRefusal(ReasonMalformed)
	// Sequence numbers start at 1.
	r.write(wire.FrameRequest, signed(l, ck.Identity, uint64(ck.ID), 0, put))
	r.wantRefusal(ReasonMalformed)

	// Wrong signature: signed by another key, and a flipped signature bit.
	_, other, _ := sig.GenerateKey(rand.Reader)
	r.write(wire.FrameRequest, signed(l, other, uint64(ck.ID), 1, put))
	r.wantRefusal(ReasonBadSignature)
	// A connection that sent a forged request is closed (a correct client
	// never does; ATTACKS row 10): the next ones need a new connection.
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := wire.ReadClientFrame(r.c, wire.MaxClientFrame); err == nil {
		t.Fatal("connection still open after a forged request")
	}
	r = dialRaw(t, l, 1)
	var req wire.ClientRequest
	proto.Unmarshal(signed(l, ck.Identity, uint64(ck.ID), 1, put), &req)
	req.Signature[5] ^= 1
	b, _ := proto.Marshal(&req)
	r.write(wire.FrameRequest, b)
	r.wantRefusal(ReasonBadSignature)
	r = dialRaw(t, l, 1)
	// Signed for another cluster (domain separation, ATTACKS row 11).
	req2 := &wire.ClientRequest{Client: uint64(ck.ID), Seq: 1, Op: put}
	smr.SignRequest(ck.Identity, [32]byte{1}, req2)
	b, _ = proto.Marshal(req2)
	r.write(wire.FrameRequest, b)
	r.wantRefusal(ReasonBadSignature)
	r = dialRaw(t, l, 1)

	// Unknown client.
	r.write(wire.FrameRequest, signed(l, other, 999, 1, put))
	r.wantRefusal(ReasonUnknownClient)

	// Oversized operation (the frame itself is within bounds).
	big := kv.EncodeOp(&wire.KVOp{Kind: wire.KVOp_PUT, Key: []byte("big"), Value: bytes.Repeat([]byte{'x'}, 64<<10)})
	r.write(wire.FrameRequest, signed(l, ck.Identity, uint64(ck.ID), 1, big))
	r.wantRefusal(ReasonOversized)

	// A valid request executes once; its replay is answered from the
	// session with the same result and is not executed again.
	good := signed(l, ck.Identity, uint64(ck.ID), 10, put)
	var replies [4][]byte
	conns := []*rawConn{r, dialRaw(t, l, 2), dialRaw(t, l, 3), dialRaw(t, l, 4)}
	for _, rc := range conns {
		rc.write(wire.FrameRequest, good)
	}
	for i, rc := range conns {
		kind, body := rc.next()
		if kind != wire.FrameReply {
			t.Fatalf("replica %d: frame kind %d, want a reply", i+1, kind)
		}
		replies[i] = body
	}
	executed := l.Server(1).Stats().Executed
	r.write(wire.FrameRequest, good)
	kind, body := r.next()
	var first, again wire.Reply
	proto.Unmarshal(replies[0], &first)
	proto.Unmarshal(body, &again)
	if kind != wire.FrameReply || !bytes.Equal(first.Result, again.Result) || first.Position != again.Position {
		t.Fatalf("replay answered with %v, want the first reply %v", &again, &first)
	}
	// An older sequence number is a duplicate: dropped, not executed.
	r.write(wire.FrameRequest, signed(l, ck.Identity, uint64(ck.ID), 9, put))

	// Oversized frame header: refused and the connection closed.
	hdr := binary.BigEndian.AppendUint32(nil, 10<<20)
	r.c.Write(hdr)
	r.wantRefusal(ReasonOversized)

	// The service keeps serving an honest client.
	c := kv.Client{S: dial(t, l, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, []byte("b"), []byte("2")); err != nil {
		t.Fatalf("honest client after bad input: %v", err)
	}
	res, err := c.Get(ctx, []byte("a"))
	if err != nil || string(res.Value) != "1" {
		t.Fatalf("get a = %v, %v", res, err)
	}
	// Replica 1 may trail the f+1 replicas that answered: wait for it.
	st := l.Server(1).Stats()
	for deadline := time.Now().Add(10 * time.Second); st.Executed < executed+2 && time.Now().Before(deadline); st = l.Server(1).Stats() {
		time.Sleep(20 * time.Millisecond)
	}
	if st.Executed != executed+2 {
		t.Fatalf("executed %d requests since the replay, want 2 (the honest put and get): a replay executed (S4)", st.Executed-executed)
	}
	if st.Duplicates < 2 {
		t.Fatalf("duplicates = %d, want ≥ 2 (replay and old sequence number)", st.Duplicates)
	}
	ref := l.Server(1).Refused()
	t.Logf("replica 1 refused: %v; duplicates %d", ref, st.Duplicates)
	for reason, want := range map[string]uint64{ReasonMalformed: 3, ReasonBadSignature: 3, ReasonUnknownClient: 1, ReasonOversized: 2} {
		if ref[reason] != want {
			t.Errorf("refused[%s] = %d, want %d", reason, ref[reason], want)
		}
	}

	// Through the client library: a key the cluster does not list is
	// refused by f+1 replicas and Submit says so.
	forged := &keys.ClientPrivate{ID: l.Clients[1].ID, Identity: other}
	fc, err := client.Dial(l.Cluster, forged, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	if _, err := fc.Submit(ctx, put); !errors.Is(err, client.ErrRefused) {
		t.Fatalf("forged client: %v, want ErrRefused", err)
	}
}

// TestConnectionInFlightBoundReleases: the per-connection bound on
// requests waiting for execution counts only requests still waiting, so a
// long-lived connection is not refused as overloaded after
// maxInFlightPerConn requests in total (regression).
func TestConnectionInFlightBoundReleases(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	l := startLocal(t, 4, 1, 1, false, nil)
	c := dial(t, l, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 5 {
		if _, err := c.Submit(ctx, kv.EncodeOp(&wire.KVOp{Kind: wire.KVOp_GET, Key: []byte("a")})); err != nil {
			t.Fatal(err)
		}
	}
	waiting := func() (n int) {
		s := l.Server(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		for conn := range s.conns {
			n += conn.waiting
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second) // replica 1 may trail the f+1 that answered
	for waiting() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := waiting(); n != 0 {
		t.Fatalf("replica 1 still counts %d waiting requests after all were answered", n)
	}
}

// TestFloodingClientHonestThroughput (ATTACKS row 10): while one
// connection floods a replica with badly signed requests as fast as it
// can (bounded in count and time), honest clients keep at least half of
// their throughput. Reported, not enforced, under -short load variance:
// the figure is logged and the test fails only below 50 %.
func TestFloodingClientHonestThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	l := startLocal(t, 4, 1, 5, false, nil)
	var honest []kvtest.Submitter
	for i := range 4 {
		honest = append(honest, dial(t, l, i))
	}
	measure := func() int {
		h := kvtest.NewHistory()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		kvtest.Run(ctx, h, honest, 3, 4*time.Second)
		return h.Acknowledged()
	}
	measure() // warm up connections and epochs
	base := measure()
	_, other, _ := sig.GenerateKey(rand.Reader)
	ck := l.Clients[4]
	stop := make(chan struct{})
	done := make(chan int)
	for id := uint32(1); id <= 4; id++ {
		addr := l.Server(id).ClientAddr().String()
		go func() {
			// One pipelined flood connection per replica. (A flooder that
			// reconnects after every close is not covered: in this single
			// process it steals the replicas' CPU for its own handshakes
			// and signatures, and honest throughput fell to ~17 %;
			// docs/RUNTIME.md.)
			n, dialed := 0, false
			put := kv.EncodeOp(&wire.KVOp{Kind: wire.KVOp_PUT, Key: []byte("f"), Value: []byte("x")})
			var c *tls.Conn
			defer func() {
				if c != nil {
					c.Close()
				}
				done <- n
			}()
			for seq := uint64(1); seq <= 200_000; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				if c == nil {
					if dialed {
						break // closed by the replica for forging: no reconnect
					}
					dialed = true
					var err error
					if c, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}); err != nil {
						continue
					}
					go func(c *tls.Conn) { // drain refusals so the replica's writes never block
						for {
							if _, _, err := wire.ReadClientFrame(c, wire.MaxClientFrame); err != nil {
								return
							}
						}
					}(c)
				}
				if wire.WriteClientFrame(c, wire.FrameRequest, signed(l, other, uint64(ck.ID), seq, put)) != nil {
					c.Close()
					c = nil
					continue
				}
				n++
			}
			<-stop
		}()
	}
	flooded := measure()
	close(stop)
	sent := 0
	for range 4 {
		sent += <-done
	}
	var refused uint64
	for id := uint32(1); id <= 4; id++ {
		refused += l.Server(id).Refused()[ReasonBadSignature]
	}
	t.Logf("honest operations in 4 s: %d alone, %d while %d forged requests were sent (%d refused as bad_signature): %.0f %%",
		base, flooded, sent, refused, 100*float64(flooded)/float64(max(base, 1)))
	if flooded*2 < base {
		t.Fatalf("honest throughput fell to %d of %d under a flooding client (< 50 %%)", flooded, base)
	}
}
