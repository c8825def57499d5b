package hybrid

import (
	"bytes"
	"errors"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/ttcb"
	"github.com/maftia/maftia/wire"
)

var g3 = core.MustGroup(3, 1, core.HybridMulticast)

func newRM(t testing.TB, self, sender core.NodeID) *RMulticast {
	r, err := NewRMulticast("brm:1", DefaultRMParams(g3, self, sender, 60))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRMParamsRefuseTooFewReplicas(t *testing.T) {
	if _, err := NewRMulticast("brm:1", DefaultRMParams(core.MustGroup(1, 0, core.Async), 1, 1, 60)); !errors.Is(err, core.ErrResilience) {
		t.Fatalf("n=1 accepted: %v", err)
	}
}

// Integrity: a replica delivers only the message whose hash the TTCB
// decided, whatever it received on the payload network.
func TestRMulticastDeliversOnlyTheDecidedMessage(t *testing.T) {
	r := newRM(t, 2, 1)
	var out core.Output
	_ = r.Step(core.Message{From: 1, Instance: "brm:1", Payload: Encode(&Message{Kind: KindData, Value: []byte("a")})}, &out)
	if len(out.Requests) != 2 {
		t.Fatalf("want propose+decide, got %d requests", len(out.Requests))
	}
	decided := RMDigest("brm:1", 60, []byte("b"))
	out.Reset()
	_ = r.Step(core.ServiceReply{Instance: "brm:1", Service: ttcb.ServiceName, Tag: 3,
		Reply: ttcb.TBAResult{Decided: true, Value: decided, ProposedOK: 1, ProposedAny: 3}}, &out)
	if len(out.Deliveries) != 0 {
		t.Fatal("delivered a message whose hash was not decided")
	}
	// A Byzantine retransmission of another message is not delivered…
	_ = r.Step(core.Message{From: 3, Instance: "brm:1", Payload: Encode(&Message{Kind: KindRetransmit, Value: []byte("c")})}, &out)
	if len(out.Deliveries) != 0 {
		t.Fatal("delivered a retransmitted message with the wrong hash")
	}
	// …the decided one is.
	_ = r.Step(core.Message{From: 1, Instance: "brm:1", Payload: Encode(&Message{Kind: KindRetransmit, Value: []byte("b")})}, &out)
	if len(out.Deliveries) != 1 || !bytes.Equal(out.Deliveries[0].Value.(RMDelivery).Value, []byte("b")) || !r.Finished() {
		t.Fatalf("deliveries %+v", out.Deliveries)
	}
}

// A RETRANSMIT before tstart (only a Byzantine replica sends one) does not
// make a replica propose "nothing" early: it joins only once a trusted
// timestamp shows tstart has passed, so the sender's DATA still counts.
func TestRMulticastEarlyRetransmitDoesNotPreemptProposal(t *testing.T) {
	r := newRM(t, 2, 1)
	var out core.Output
	_ = r.Step(core.Message{From: 3, Instance: "brm:1", Payload: Encode(&Message{Kind: KindRetransmit, Value: []byte("junk")})}, &out)
	if len(out.Requests) != 1 || out.Requests[0].Request != (ttcb.GetTimestamp{}) {
		t.Fatalf("want one timestamp request, got %+v", out.Requests)
	}
	out.Reset()
	_ = r.Step(core.ServiceReply{Instance: "brm:1", Service: ttcb.ServiceName, Tag: rmTagJoin, Reply: ttcb.Timestamp{Time: 10}}, &out)
	if len(out.Requests) != 0 {
		t.Fatalf("joined before tstart: %+v", out.Requests)
	}
	_ = r.Step(core.Message{From: 1, Instance: "brm:1", Payload: Encode(&Message{Kind: KindData, Value: []byte("m")})}, &out)
	p, ok := out.Requests[0].Request.(ttcb.TBAPropose)
	if !ok || p.Value != RMDigest("brm:1", 60, []byte("m")) {
		t.Fatalf("did not propose the sender's hash: %+v", out.Requests)
	}
}

// No decision (the sender did not propose by tstart): nothing is delivered.
func TestRMulticastUndecidedDeliversNothing(t *testing.T) {
	r := newRM(t, 2, 1)
	var out core.Output
	_ = r.Step(core.Message{From: 3, Instance: "brm:1", Payload: Encode(&Message{Kind: KindRetransmit, Value: []byte("a")})}, &out)
	_ = r.Step(core.ServiceReply{Instance: "brm:1", Service: ttcb.ServiceName, Tag: 3, Reply: ttcb.TBAResult{}}, &out)
	if len(out.Deliveries) != 0 || !r.Finished() {
		t.Fatal("undecided instance delivered or did not finish")
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	lim := Limits{MaxValue: 4, MaxRequest: 4, MaxRequests: 2, MaxN: 3}
	bad := [][]byte{
		{0xff, 0x01},
		wire.Marshal(&wire.Hybrid{}),
		wire.Marshal(&wire.Hybrid{Kind: 6}),
		wire.Marshal(&wire.Hybrid{Kind: 257}), // would wrap to DATA as a byte
		Encode(&Message{Kind: KindData, Value: []byte("toolong")}),
		Encode(&Message{Kind: KindData, Value: []byte("ok"), Epoch: 1}),
		Encode(&Message{Kind: KindRetransmit, Requests: [][]byte{{1}}}),
		Encode(&Message{Kind: KindFetch, Epoch: 1, Owner: 4}),
		Encode(&Message{Kind: KindFetch, Epoch: 1, Owner: 0}),
		Encode(&Message{Kind: KindFetch, Epoch: 1, Owner: 1, Requests: [][]byte{{1}}}),
		Encode(&Message{Kind: KindPropose, Epoch: 1, Owner: 1, Value: []byte("v")}),
		Encode(&Message{Kind: KindBatch, Epoch: 1, Owner: 1, Requests: [][]byte{{1}, {2}, {3}}}),
		Encode(&Message{Kind: KindBatch, Epoch: 1, Owner: 1, Requests: [][]byte{[]byte("12345")}}),
	}
	for i, b := range bad {
		if _, err := Decode(b, lim); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("case %d: %v", i, err)
		}
	}
	if _, err := Decode(Encode(&Message{Kind: KindPropose, Epoch: 1, Owner: 2, Requests: [][]byte{[]byte("ab")}}), lim); err != nil {
		t.Fatal(err)
	}
}

func sameMessage(a, b *Message) bool {
	if a.Kind != b.Kind || !bytes.Equal(a.Value, b.Value) || a.Epoch != b.Epoch || a.Owner != b.Owner || len(a.Requests) != len(b.Requests) {
		return false
	}
	for i := range a.Requests {
		if !bytes.Equal(a.Requests[i], b.Requests[i]) {
			return false
		}
	}
	return true
}

// FuzzDecode: arbitrary bytes never panic, errors wrap ErrMalformed with
// a text that depends only on the input, and what is accepted re-encodes
// to a message that decodes to the same fields.
func FuzzDecode(f *testing.F) {
	f.Add(Encode(&Message{Kind: KindData, Value: []byte("v")}))
	f.Add(Encode(&Message{Kind: KindRetransmit, Value: nil}))
	f.Add(Encode(&Message{Kind: KindFetch, Epoch: 7, Owner: 3}))
	f.Add(Encode(&Message{Kind: KindPropose, Epoch: 1, Owner: 1, Requests: [][]byte{[]byte("ok:a"), nil}}))
	f.Add(Encode(&Message{Kind: KindBatch, Epoch: 2, Owner: 2}))
	f.Add([]byte{0x08, 0x81, 0x02})
	f.Add(Encode(&Message{Kind: KindResultQ, Epoch: 4, Owner: 2}))
	f.Add(Encode(&Message{Kind: KindResult, Epoch: 4, Owner: 2, Decided: true, Value: make([]byte, 32), ProposedOK: 3, ProposedAny: 7, Module: 1, Signature: make([]byte, 64)}))
	f.Add(Encode(&Message{Kind: KindResult, Epoch: 4, Owner: 3, Withheld: true, Module: 3, Signature: make([]byte, 64)}))
	lim := Limits{MaxValue: 1024, MaxRequest: 256, MaxRequests: 16, MaxN: 7}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b, lim)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			if _, err2 := Decode(b, lim); err2.Error() != err.Error() {
				t.Fatalf("unstable error text: %q vs %q", err, err2)
			}
			return
		}
		m2, err := Decode(Encode(m), lim)
		if err != nil || !sameMessage(m, m2) {
			t.Fatalf("re-decode: %v, %+v vs %+v", err, m, m2)
		}
	})
}

// FuzzStepRMulticast drives one BRM-T instance with arbitrary messages from
// arbitrary senders and arbitrary TTCB results (ATTACKS row 8): Step never
// errors on network input, never delivers twice, and delivers only a
// message whose hash equals the decided value.
func FuzzStepRMulticast(f *testing.F) {
	f.Add([]byte{1, 3}, Encode(&Message{Kind: KindData, Value: []byte("v")}), true, byte(0))
	f.Add([]byte{2}, Encode(&Message{Kind: KindRetransmit, Value: []byte("v")}), false, byte(1))
	f.Fuzz(func(t *testing.T, senders []byte, payload []byte, decided bool, when byte) {
		r := newRM(t, 2, 1)
		var out core.Output
		dm, _ := Decode(payload, r.limits())
		var want ttcb.Value
		if dm != nil {
			want = RMDigest("brm:1", 60, dm.Value)
		}
		res := core.ServiceReply{Instance: "brm:1", Service: ttcb.ServiceName, Tag: 3,
			Reply: ttcb.TBAResult{Decided: decided, Value: want, ProposedOK: ttcb.Mask(when), ProposedAny: 7}}
		for i, s := range senders {
			if int(when)%(len(senders)+1) == i {
				_ = r.Step(res, &out)
			}
			if err := r.Step(core.Message{From: core.NodeID(s % 5), Instance: "brm:1", Payload: payload}, &out); err != nil {
				t.Fatalf("Step returned %v on network input", err)
			}
		}
		_ = r.Step(res, &out)
		if len(out.Deliveries) > 1 {
			t.Fatalf("delivered %d times", len(out.Deliveries))
		}
		for _, d := range out.Deliveries {
			if !decided || RMDigest("brm:1", 60, d.Value.(RMDelivery).Value) != want {
				t.Fatal("delivered a message that was not decided")
			}
		}
	})
}
