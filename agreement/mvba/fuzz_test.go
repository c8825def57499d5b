package mvba

import (
	"testing"

	"github.com/maftia/maftia/agreement/aba"
	"github.com/maftia/maftia/broadcast/rbc"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/wire"
)

// FuzzDecode: arbitrary bytes never panic; accepted messages re-encode to
// something that decodes again.
func FuzzDecode(f *testing.F) {
	f.Add(Encode(&wire.MVBA{Kind: wire.MVBA_VOTE, Vote: 1}))
	f.Add(Encode(&wire.MVBA{Kind: wire.MVBA_COIN, Share: make([]byte, 68)}))
	f.Add(Encode(&wire.MVBA{Kind: wire.MVBA_DECIDE, Proposer: 2, Value: make([]byte, 32)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		if _, err := Decode(Encode(m)); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

// FuzzStep feeds one instance arbitrary payloads on each of its child
// instances from arbitrary senders: Step never panics or errors on network
// input and never decides twice.
func FuzzStep(f *testing.F) {
	f.Add([]byte{1, 2}, uint8(0), uint64(1), Encode(&wire.MVBA{Kind: wire.MVBA_VOTE, Vote: 1}))
	f.Add([]byte{3}, uint8(1), uint64(2), rbc.Encode(&wire.RBC{Kind: wire.RBC_SEND, Value: []byte("ok")}))
	f.Add([]byte{4, 4}, uint8(2), uint64(1), aba.Encode(&wire.ABA{Kind: wire.ABA_TERM, Value: 1}))
	f.Add([]byte{2, 3, 4}, uint8(4), uint64(0), Encode(&wire.MVBA{Kind: wire.MVBA_DECIDE, Proposer: 2, Value: make([]byte, 32)}))
	f.Fuzz(func(t *testing.T, senders []byte, child uint8, idx uint64, payload []byte) {
		m := newMVBA(t, 1)
		var out core.Output
		if err := m.Step(core.Input{Instance: inst, Value: []byte("ok1")}, &out); err != nil {
			t.Fatal(err)
		}
		var target core.InstanceID
		switch child % 5 {
		case 0:
			target = inst.ChildN("vote", idx%20)
		case 1:
			target = inst.ChildN("prop", idx%6)
		case 2:
			target = inst.ChildN("aba", idx%20)
		case 3:
			target = inst.ChildN("coin", idx%20)
		default:
			target = inst
		}
		for _, s := range senders {
			if err := m.Step(core.Message{From: core.NodeID(s % 6), Instance: target, Payload: payload}, &out); err != nil {
				t.Fatalf("Step returned %v on network input", err)
			}
		}
		if len(out.Deliveries) > 1 {
			t.Fatalf("decided %d times", len(out.Deliveries))
		}
	})
}
