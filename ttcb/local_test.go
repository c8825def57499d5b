package ttcb

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/maftia/maftia/wire"
)

// Local authentication: a process pinning the wrong module key refuses
// the session; a process without the entity's key cannot claim its ID; an
// unregistered entity is refused; forged MACs and replays end the session
// and are counted (ATTACKS rows 10, 11).
func TestLocalAuthenticationRefusals(t *testing.T) {
	c := newCluster(t, 1, 0, time.Second, []uint32{1, 1})
	c.waitJoined(1)
	ctx := ctxT(t, 10*time.Second)
	sock, m := c.cfgs[0].Socket, c.mod(1)
	e1 := c.entities[0]
	wrongPub, wrongPriv, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := Dial(ctx, sock, wrongPub, e1.id, e1.priv); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("wrong module key: %v", err)
	}
	before := m.Stats().LocalAuthFailures
	if cl, err := Dial(ctx, sock, m.PublicKey(), e1.id, wrongPriv); err == nil {
		if _, err := cl.GetTimestamp(ctx); err == nil {
			t.Fatal("impersonation of entity 1 with another key was served")
		}
		cl.Close()
	}
	if cl, err := Dial(ctx, sock, m.PublicKey(), 99, wrongPriv); err == nil {
		if _, err := cl.GetTimestamp(ctx); err == nil {
			t.Fatal("unregistered entity was served")
		}
		cl.Close()
	}
	waitFor(t, func() bool { return m.Stats().LocalAuthFailures >= before+2 })

	// Forged MAC and replay on an authenticated session.
	for _, attack := range []string{"forged", "replay"} {
		cl := c.dial(1)
		if _, err := cl.GetTimestamp(ctx); err != nil {
			t.Fatal(err)
		}
		before := m.Stats().LocalAuthFailures
		body, _ := encodeRequest(9, GetTimestamp{})
		var f *wire.TTCBLocal
		if attack == "forged" {
			f = cl.s.seal(body)
			f.GetSealed().Mac[0] ^= 1
		} else {
			f = &wire.TTCBLocal{Frame: &wire.TTCBLocal_Sealed{Sealed: &wire.TTCBSealed{Seq: 1, Body: body,
				Mac: macFrame(cl.s.sendKey, cl.s.sendDir, 1, body)}}}
		}
		if err := writeFrame(cl.conn, f); err != nil {
			t.Fatal(err)
		}
		_ = cl.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := readFrame(cl.conn); err == nil {
			t.Fatalf("%s frame answered", attack)
		}
		waitFor(t, func() bool { return m.Stats().LocalAuthFailures > before })
	}
	// The module still serves honest entities.
	if _, err := c.dial(2).GetTimestamp(ctx); err != nil {
		t.Fatal(err)
	}
}

// Garbage on both interfaces: nothing crashes, everything is counted, and
// the module keeps serving (ATTACKS row 8).
func TestBadInputBothInterfaces(t *testing.T) {
	c := newCluster(t, 2, 0, time.Second, []uint32{1})
	c.waitJoined(1, 2)
	ctx := ctxT(t, 10*time.Second)
	inputs := [][]byte{
		{}, {0xff}, {0, 0, 0, 5, 1, 2}, {0xff, 0xff, 0xff, 0xff}, {0, 0, 0, 3, 0x0a, 0x01, 0xff},
		make([]byte, 300),
	}
	for _, in := range inputs {
		c.waitJoined(1)
		conn, err := net.Dial("unix", c.cfgs[0].Socket)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write(in)
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		var b [1]byte
		_, _ = conn.Read(b[:]) // the module closes or times out the handshake
		conn.Close()
	}
	m := c.mod(1)
	// Malformed requests inside an authenticated session are refused with
	// ErrBadRequest, the session stays usable.
	cl := c.dial(1)
	for _, r := range []any{GetRandom{N: 0}, GetRandom{N: MaxRandom + 1},
		TBAPropose{Elist: []EntityID{1, 1}, TStart: 1, Decision: DecisionMajority},
		TBAPropose{Elist: []EntityID{2}, TStart: m.Now() + uint64(time.Second), Decision: DecisionMajority},
		TBAPropose{Elist: []EntityID{1}, TStart: m.Now() + uint64(time.Second), Decision: 77}} {
		if _, err := cl.call(ctx, r); !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrNotInElist) {
			t.Fatalf("%+v: %v", r, err)
		}
	}
	if _, err := cl.TryDecide(ctx, 12345); !errors.Is(err, ErrUnknownTag) {
		t.Fatalf("unknown tag: %v", err)
	}
	// Control network: garbage, wrong MACs, wrong destination.
	udp, err := net.Dial("udp", c.cfgs[0].Peers[0].Control)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	good := &wire.TTCBControl{From: 2, To: 1, Incarnation: 1, Boot: 1, Seq: 1, Body: []byte{1}, Mac: make([]byte, 32)}
	gb, _ := marshal.Marshal(good)
	for _, in := range append(inputs, gb) {
		_, _ = udp.Write(in)
	}
	waitFor(t, func() bool { s := m.Stats(); return s.ControlMalformed > 0 && s.ControlBadMAC > 0 })
	// A replayed datagram (as module 2 sent it long ago: sequence 1 of its
	// current boot, correctly authenticated) is refused as a replay.
	m2 := c.mod(2)
	old := &wire.TTCBControl{From: 2, To: 1, Incarnation: m2.inc, Boot: m2.boot, Seq: 1}
	old.Body, _ = marshal.Marshal(&wire.TTCBControlBody{Kind: &wire.TTCBControlBody_Heartbeat{Heartbeat: &wire.TTCBEmpty{}}})
	old.Mac = controlMAC(c.cfgs[0].ControlKeys[2], old)
	ob, _ := marshal.Marshal(old)
	replays := m.Stats().Replays
	_, _ = udp.Write(ob)
	waitFor(t, func() bool { return m.Stats().Replays > replays })
	if _, err := cl.GetTimestamp(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("stats after garbage: %+v", m.Stats())
}

// Admission control: an entity flooding its module is rate limited while
// another entity on the same module keeps being served (ATTACKS row 10).
func TestAdmissionControlProtectsOthers(t *testing.T) {
	tweakConfig = func(c *Config) { c.RateEvery, c.RateBurst = 2*time.Millisecond, 50 }
	defer func() { tweakConfig = nil }()
	c := newCluster(t, 1, 0, time.Second, []uint32{1, 1})
	c.waitJoined(1)
	ctx := ctxT(t, 20*time.Second)
	flood, honest := c.dial(1), c.dial(2)
	limited := 0
	for range 5000 {
		if _, err := flood.GetTimestamp(ctx); errors.Is(err, ErrRateLimited) {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("flooding entity never rate limited")
	}
	for range 40 {
		if _, err := honest.GetTimestamp(ctx); err != nil {
			t.Fatalf("honest entity refused: %v", err)
		}
	}
	t.Logf("flooding entity: %d of 5000 requests rate limited", limited)
}

// Duration measurement and timing-failure detection for local actions,
// and trusted random numbers.
func TestMeasurementAndRandom(t *testing.T) {
	c := newCluster(t, 1, 0, time.Second, []uint32{1})
	c.waitJoined(1)
	ctx := ctxT(t, 10*time.Second)
	cl := c.dial(1)
	ok, _ := cl.StartMeasure(ctx, time.Second)
	late, _ := cl.StartMeasure(ctx, time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	r1, err1 := cl.StopMeasure(ctx, ok.ID)
	r2, err2 := cl.StopMeasure(ctx, late.ID)
	if err1 != nil || err2 != nil || r1.TimingFailure || !r2.TimingFailure || r2.Duration < uint64(5*time.Millisecond) {
		t.Fatalf("measurements %+v %v %+v %v", r1, err1, r2, err2)
	}
	if _, err := cl.StopMeasure(ctx, ok.ID); !errors.Is(err, ErrUnknownMeasure) {
		t.Fatalf("double stop: %v", err)
	}
	a, _ := cl.Random(ctx, 32)
	b, _ := cl.Random(ctx, 32)
	if len(a) != 32 || string(a) == string(b) {
		t.Fatal("random")
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
