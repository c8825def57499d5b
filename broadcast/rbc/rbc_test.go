package rbc

import (
	"bytes"
	"errors"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/wire"
)

var g4 = core.MustGroup(4, 1, core.Async)

func newRBC(t testing.TB, self, sender core.NodeID) *RBC {
	r, err := New("rbc:1", DefaultParams(g4, self, sender))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func msg(from core.NodeID, m *wire.RBC) core.Message {
	return core.Message{From: from, Instance: "rbc:1", Payload: Encode(m)}
}

func TestParamsRefuseTooFewReplicas(t *testing.T) {
	g := core.MustGroup(3, 1, core.HybridSMR) // n=3 tolerates f=1 only with a wormhole
	if _, err := New("rbc:1", DefaultParams(g, 1, 1)); !errors.Is(err, core.ErrResilience) {
		t.Fatalf("want ErrResilience, got %v", err)
	}
}

// A restarted replica that persisted READY(h) never sends READY for
// another digest (amnesia would be equivocation).
func TestRecoveredReplicaDoesNotEquivocate(t *testing.T) {
	r := newRBC(t, 2, 1)
	var out core.Output
	for _, from := range []core.NodeID{1, 3, 4} {
		_ = r.Step(msg(from, &wire.RBC{Kind: wire.RBC_ECHO, Value: []byte("a")}), &out)
	}
	if len(out.Persist) != 1 || out.Persist[0].Key != recordReady {
		t.Fatalf("want a persisted READY record, got %+v", out.Persist)
	}
	rec, err := Recover("rbc:1", DefaultParams(g4, 2, 1), out.Persist)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	for _, from := range []core.NodeID{1, 3, 4} {
		_ = rec.Step(msg(from, &wire.RBC{Kind: wire.RBC_ECHO, Value: []byte("b")}), &out)
	}
	for _, s := range out.Sends {
		if m, _ := Decode(s.Payload, 1<<20); m.Kind == wire.RBC_READY {
			t.Fatal("recovered replica sent a second READY")
		}
	}
	if _, err := Recover("rbc:1", DefaultParams(g4, 2, 1), []core.Record{{Instance: "rbc:1", Key: "ready", Value: []byte("short")}}); err == nil {
		t.Fatal("corrupt record accepted")
	}
}

// A replica restarted after delivering never delivers the same instance
// again (integrity across crashes): the delivery is persisted.
func TestRecoveredAfterDeliveryDoesNotDeliverAgain(t *testing.T) {
	r := newRBC(t, 2, 1)
	var out core.Output
	for _, from := range []core.NodeID{1, 3, 4} {
		_ = r.Step(msg(from, &wire.RBC{Kind: wire.RBC_ECHO, Value: []byte("a")}), &out)
	}
	d := DigestOf("rbc:1", []byte("a"))
	for _, from := range []core.NodeID{1, 3, 4} {
		_ = r.Step(msg(from, &wire.RBC{Kind: wire.RBC_READY, Digest: d[:]}), &out)
	}
	if len(out.Deliveries) != 1 {
		t.Fatalf("delivered %d times before the restart", len(out.Deliveries))
	}
	rec, err := Recover("rbc:1", DefaultParams(g4, 2, 1), out.Persist)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Finished() {
		t.Fatal("recovered instance not finished after a persisted delivery")
	}
	out.Reset()
	for _, from := range []core.NodeID{1, 3, 4} {
		_ = rec.Step(msg(from, &wire.RBC{Kind: wire.RBC_ECHO, Value: []byte("a")}), &out)
		_ = rec.Step(msg(from, &wire.RBC{Kind: wire.RBC_READY, Digest: d[:]}), &out)
	}
	if len(out.Deliveries) != 0 {
		t.Fatal("delivered again after the restart")
	}
}

// Memory stays bounded whatever Byzantine replicas send: one value per
// sender, and equivocations are reported.
func TestByzantineFloodKeepsMemoryBoundedAndIsReported(t *testing.T) {
	r := newRBC(t, 2, 1)
	var out core.Output
	for i := 0; i < 1000; i++ {
		v := bytes.Repeat([]byte{byte(i)}, 100)
		_ = r.Step(msg(4, &wire.RBC{Kind: wire.RBC_ECHO, Value: v}), &out)
		_ = r.Step(msg(3, &wire.RBC{Kind: wire.RBC_SEND, Value: v}), &out)
		_ = r.Step(msg(1, &wire.RBC{Kind: wire.RBC_SEND, Value: v}), &out)
	}
	if len(r.values) > g4.N()+1 {
		t.Fatalf("%d values stored", len(r.values))
	}
	kinds := map[core.EvidenceKind]int{}
	for _, e := range out.Evidence {
		kinds[e.Kind]++
	}
	if kinds[core.Equivocation] == 0 || kinds[core.Unexpected] == 0 {
		t.Fatalf("evidence %v", kinds)
	}
	out.Reset()
	_ = r.Step(core.Message{From: 4, Instance: "rbc:1", Payload: []byte{0xff, 0x01}}, &out)
	if len(out.Evidence) != 1 || out.Evidence[0].Kind != core.Malformed {
		t.Fatalf("garbage not reported as malformed: %v", out.Evidence)
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	bad := [][]byte{
		Encode(&wire.RBC{Kind: wire.RBC_READY, Digest: []byte("short")}),
		Encode(&wire.RBC{Kind: wire.RBC_READY, Digest: make([]byte, 32), Value: []byte("x")}),
		Encode(&wire.RBC{Kind: wire.RBC_SEND, Value: make([]byte, 11)}),
		Encode(&wire.RBC{Kind: wire.RBC_ECHO, Digest: make([]byte, 32)}),
		Encode(&wire.RBC{Kind: 9}),
		Encode(&wire.RBC{}),
	}
	for i, b := range bad {
		if _, err := Decode(b, 10); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("case %d: %v", i, err)
		}
	}
}

// FuzzDecode: arbitrary bytes never panic; accepted messages re-encode to
// something that decodes again.
func FuzzDecode(f *testing.F) {
	f.Add(Encode(&wire.RBC{Kind: wire.RBC_SEND, Value: []byte("v")}))
	f.Add(Encode(&wire.RBC{Kind: wire.RBC_READY, Digest: make([]byte, 32)}))
	f.Add([]byte{0x08, 0x03, 0x1a, 0x20})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b, 1024)
		if err != nil {
			return
		}
		if _, err := Decode(Encode(m), 1024); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

// FuzzStep drives one instance with arbitrary messages from arbitrary
// senders (ATTACKS row 8: then replay through the handler): Step never
// panics or errors, and never delivers twice.
func FuzzStep(f *testing.F) {
	f.Add([]byte{1}, Encode(&wire.RBC{Kind: wire.RBC_SEND, Value: []byte("v")}), []byte{2, 3, 4})
	f.Add([]byte{4}, Encode(&wire.RBC{Kind: wire.RBC_READY, Digest: make([]byte, 32)}), []byte{1})
	f.Fuzz(func(t *testing.T, senders []byte, payload []byte, more []byte) {
		r := newRBC(t, 2, 1)
		var out core.Output
		step := func(from byte, p []byte) {
			if err := r.Step(core.Message{From: core.NodeID(from % 6), Instance: "rbc:1", Payload: p}, &out); err != nil {
				t.Fatalf("Step returned %v on network input", err)
			}
		}
		for _, s := range senders {
			step(s, payload)
		}
		for _, s := range more {
			step(s, Encode(&wire.RBC{Kind: wire.RBC_ECHO, Value: payload}))
			step(s, Encode(&wire.RBC{Kind: wire.RBC_READY, Digest: func() []byte { d := DigestOf("rbc:1", payload); return d[:] }()}))
		}
		if len(out.Deliveries) > 1 {
			t.Fatalf("delivered %d times", len(out.Deliveries))
		}
	})
}
