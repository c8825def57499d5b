package core

import (
	"fmt"
	"testing"
)

func TestEarlyBufferBoundedPerSender(t *testing.T) {
	b := NewEarlyBuffer(3, 100)
	for i := 0; i < 10; i++ {
		b.Add(Message{From: 1, Instance: RootN("x", uint64(i)), Payload: make([]byte, 10)})
	}
	if b.Len(1) != 3 {
		t.Fatalf("sender 1 holds %d messages, bound is 3", b.Len(1))
	}
	// A flooding sender does not take space from another.
	if !b.Add(Message{From: 2, Instance: "x:1", Payload: make([]byte, 90)}) {
		t.Fatal("sender 2 refused")
	}
	if b.Add(Message{From: 2, Instance: "x:1", Payload: make([]byte, 20)}) {
		t.Fatal("byte bound not enforced")
	}
	got := b.Take("x:1")
	if len(got) != 2 || got[0].From != 1 || got[1].From != 2 {
		t.Fatalf("Take returned %v, want arrival order 1,2", got)
	}
	if b.Len(2) != 0 || b.Bytes(2) != 0 || b.Len(1) != 2 {
		t.Fatalf("accounting after take: len2=%d bytes2=%d len1=%d", b.Len(2), b.Bytes(2), b.Len(1))
	}
	b.Discard(func(InstanceID) bool { return true })
	if b.Total() != 0 {
		t.Fatal("discard left messages")
	}
}

// echoCore delivers every message it gets and finishes after `after` of them.
type echoCore struct {
	id    InstanceID
	after int
	got   int
}

func (c *echoCore) Step(ev Event, out *Output) error {
	if m, ok := ev.(Message); ok {
		c.got++
		out.Deliver(c.id, string(m.Payload))
	}
	return nil
}
func (c *echoCore) Finished() bool { return c.got >= c.after }

func TestMuxRoutesBuffersAndReaps(t *testing.T) {
	started := map[InstanceID]bool{}
	mux := NewMux(1, func(id InstanceID) (Protocol, error) {
		if _, i, _ := id.Last(); i > 5 {
			return nil, ErrNoInstance
		}
		if !started[id] {
			return nil, ErrNotYet
		}
		return &echoCore{id: id, after: 2}, nil
	}, 4, 1<<10)
	var out Output
	step := func(from NodeID, inst InstanceID, p string) {
		t.Helper()
		if err := mux.Step(Message{From: from, Instance: inst, Payload: []byte(p)}, &out); err != nil {
			t.Fatal(err)
		}
	}
	step(1, "i:1/sub", "early")
	step(1, "i:9", "never")
	if len(out.Deliveries) != 0 || mux.Early().Total() != 1 {
		t.Fatalf("deliveries=%v early=%d", out.Deliveries, mux.Early().Total())
	}
	started["i:1"] = true
	step(2, "i:1", "now")
	want := "[{i:1 early} {i:1 now}]"
	if fmt.Sprint(out.Deliveries) != want {
		t.Fatalf("got %v want %s", out.Deliveries, want)
	}
	if mux.Running() != 0 {
		t.Fatal("finished child not reaped")
	}
	out.Reset()
	step(3, "i:1", "late")
	if len(out.Deliveries) != 0 {
		t.Fatal("late message reached a finished instance")
	}
	// A flooding sender is bounded and accused.
	for i := 0; i < 10; i++ {
		step(4, "i:2", "x")
	}
	if mux.Early().Len(4) != 4 || len(out.Evidence) != 6 || out.Evidence[0].Kind != Flooding {
		t.Fatalf("early=%d evidence=%v", mux.Early().Len(4), out.Evidence)
	}
	// Too-shallow instance from the network is evidence, not an error.
	out.Reset()
	if err := NewMux(2, nil, 1, 1).Step(Message{From: 1, Instance: "a"}, &out); err != nil || len(out.Evidence) != 1 {
		t.Fatalf("err=%v evidence=%v", err, out.Evidence)
	}
}
