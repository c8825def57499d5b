package main

import (
	"testing"

	"github.com/maftia/maftia/broadcast/rbc"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/wire"
)

// TestRBCStackBoundsLiveInstancesPerSender: a Byzantine replica starting
// broadcasts it never completes is held to maxLivePerSender instances;
// other senders, and finished instances, are unaffected.
func TestRBCStackBoundsLiveInstancesPerSender(t *testing.T) {
	g := core.MustGroup(4, 1, core.Async)
	s := newRBCStack(g, 1, 1<<10, nil)
	var out core.Output
	send := rbc.Encode(&wire.RBC{Kind: wire.RBC_SEND, Value: []byte("x")})
	for i := range maxLivePerSender + 100 {
		inst := core.RootN("rbc", 4).ChildN("s", uint64(i))
		if err := s.Step(core.Message{From: 4, Instance: inst, Payload: send}, &out); err != nil {
			t.Fatal(err)
		}
	}
	if s.Running() != maxLivePerSender {
		t.Fatalf("running %d, want %d", s.Running(), maxLivePerSender)
	}
	// Another sender's broadcast still starts, and completes.
	inst := core.RootN("rbc", 2).ChildN("s", 1)
	s.Step(core.Message{From: 2, Instance: inst, Payload: send}, &out)
	if s.Running() != maxLivePerSender+1 {
		t.Fatalf("sender 2 refused: running %d", s.Running())
	}
	var d [32]byte = rbc.DigestOf(inst, []byte("x"))
	for _, from := range []core.NodeID{2, 3, 4} {
		s.Step(core.Message{From: from, Instance: inst, Payload: rbc.Encode(&wire.RBC{Kind: wire.RBC_ECHO, Value: []byte("x")})}, &out)
		s.Step(core.Message{From: from, Instance: inst, Payload: rbc.Encode(&wire.RBC{Kind: wire.RBC_READY, Digest: d[:]})}, &out)
	}
	if len(out.Deliveries) != 1 || s.Running() != maxLivePerSender {
		t.Fatalf("deliveries %d, running %d", len(out.Deliveries), s.Running())
	}
	// Malformed instance names start nothing.
	for _, bad := range []core.InstanceID{"rbc:9/s:1", "rbc:2/x:1", "abc:2/s:1", "rbc:2/s:1/extra"} {
		s.Step(core.Message{From: 2, Instance: bad, Payload: send}, &out)
	}
	if s.Running() != maxLivePerSender {
		t.Fatalf("bad instance started: running %d", s.Running())
	}
}
