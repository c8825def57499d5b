package hybrid

import (
	"bytes"
	"errors"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/ttcb"
	"github.com/maftia/maftia/wire"
)

var g3smr = core.MustGroup(3, 1, core.HybridSMR)

func okValid(r []byte) bool { return bytes.HasPrefix(r, []byte("ok:")) }

func newEngine(t testing.TB) *Engine {
	e, err := New("order", DefaultParams(g3smr, 2, okValid))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEngineParamsRefuseTooFewReplicas(t *testing.T) {
	if _, err := New("order", DefaultParams(core.MustGroup(2, 0, core.Async), 1, okValid)); err != nil {
		t.Fatalf("n=2 f=0 refused: %v", err)
	}
	p := DefaultParams(g3smr, 1, okValid)
	p.Valid = nil
	if _, err := New("order", p); err == nil {
		t.Fatal("missing Valid accepted")
	}
	if _, err := NewVConsensus("vc", DefaultVCParams(g3smr, 1, 60)); !errors.Is(err, core.ErrResilience) {
		t.Fatalf("vector consensus with n=3 f=1 accepted: %v", err)
	}
}

// A correct replica never votes for a batch with an invalid or duplicated
// request, and reports its owner.
func TestEngineRefusesInvalidBatches(t *testing.T) {
	for _, b := range [][][]byte{{[]byte("bad:x")}, {[]byte("ok:a"), []byte("ok:a")}} {
		e := newEngine(t)
		var out core.Output
		_ = e.Step(core.Message{From: 3, Instance: "order", Payload: Encode(&Message{Kind: KindPropose, Epoch: 0, Owner: 3, Requests: b})}, &out)
		for _, q := range out.Requests {
			if p, ok := q.Request.(ttcb.TBAPropose); ok && p.Elist[0] == 3 {
				t.Fatalf("voted for invalid batch %q", b)
			}
		}
		if len(out.Evidence) != 1 || out.Evidence[0].Accused != 3 {
			t.Fatalf("evidence %+v", out.Evidence)
		}
	}
}

// Memory stays bounded under PROPOSE floods for far epochs.
func TestEngineBuffersOnlyAFewEpochsAhead(t *testing.T) {
	e := newEngine(t)
	var out core.Output
	for ep := uint64(0); ep < 1000; ep++ {
		_ = e.Step(core.Message{From: 3, Instance: "order", Payload: Encode(&Message{Kind: KindPropose, Epoch: ep, Owner: 3, Requests: [][]byte{[]byte("ok:x")}})}, &out)
	}
	if len(e.future) > int(e.p.Ahead) {
		t.Fatalf("%d future epochs buffered", len(e.future))
	}
}

// FuzzStepEngine drives the engine with arbitrary messages, TTCB results
// and refusals (ATTACKS row 8): Step never panics, never errors on network
// input, and delivers only consecutive batches of valid requests.
func FuzzStepEngine(f *testing.F) {
	f.Add([]byte{3, 1}, Encode(&Message{Kind: KindPropose, Epoch: 0, Owner: 3, Requests: [][]byte{[]byte("ok:a")}}), uint8(1), uint8(3))
	f.Add([]byte{1}, Encode(&Message{Kind: KindFetch, Epoch: 0, Owner: 1}), uint8(0), uint8(0))
	f.Add([]byte{2}, Encode(&Message{Kind: KindBatch, Epoch: 0, Owner: 1}), uint8(2), uint8(7))
	f.Add([]byte{1, 2, 3}, Encode(&Message{Kind: KindResult, Epoch: 0, Owner: 3, ProposedAny: 1}), uint8(1), uint8(255))
	f.Add([]byte{1, 2}, Encode(&Message{Kind: KindResult, Epoch: 0, Owner: 1, Decided: true, Value: make([]byte, 32), ProposedOK: 1, ProposedAny: 3}), uint8(3), uint8(200))
	f.Add([]byte{3}, Encode(&Message{Kind: KindResultQ, Epoch: 0, Owner: 2}), uint8(2), uint8(1))
	f.Fuzz(func(t *testing.T, senders []byte, payload []byte, owner uint8, mask uint8) {
		e := newEngine(t)
		var out core.Output
		_ = e.Step(core.Input{Instance: "order", Value: []byte("ok:mine")}, &out)
		m, _ := Decode(payload, e.lim)
		for _, s := range senders {
			if err := e.Step(core.Message{From: core.NodeID(s % 5), Instance: "order", Payload: payload}, &out); err != nil {
				t.Fatalf("Step returned %v on network input", err)
			}
		}
		// Results for every owner of epoch 0: the fuzzed batch decided for
		// its owner (if it parsed), the others undecided.
		for _, j := range g3smr.Members() {
			if (uint8(j)+owner)%4 == 0 {
				// "no execution or expired", then the time that tells which
				// (an expired result halts the replica: a local error, fine).
				_ = e.Step(core.ServiceReply{Instance: "order", Service: ttcb.ServiceName, Tag: e.tag(0, j) | tagDecide, Reply: ttcb.Refused{Err: ttcb.ErrExpired}}, &out)
				_ = e.Step(core.ServiceReply{Instance: "order", Service: ttcb.ServiceName, Tag: e.tag(0, j) | tagTime, Reply: ttcb.Timestamp{Time: uint64(mask) * 100}}, &out)
				continue
			}
			res := ttcb.TBAResult{ProposedOK: ttcb.Mask(mask)}
			if m != nil && m.Owner == j && owner%2 == 1 {
				res.Decided, res.Value = true, BatchHash("order", 0, j, m.Requests)
			}
			_ = e.Step(core.ServiceReply{Instance: "order", Service: ttcb.ServiceName, Tag: e.tag(0, j) | tagDecide, Reply: res}, &out)
		}
		_ = e.Step(core.ServiceReply{Instance: "order", Service: ttcb.ServiceName, Tag: uint64(owner), Reply: ttcb.Refused{Err: ttcb.ErrTooLate}}, &out)
		// Again after the results: RESULT answers to the questions the
		// engine asked for withheld or expired results.
		for _, s := range senders {
			if err := e.Step(core.Message{From: core.NodeID(s % 5), Instance: "order", Payload: payload}, &out); err != nil {
				t.Fatalf("Step returned %v on network input", err)
			}
		}
		for i, d := range out.Deliveries {
			b := d.Value.(*wire.Batch)
			if b.Seq != uint64(i+1) {
				t.Fatalf("batch %d at position %d", b.Seq, i+1)
			}
			for _, r := range b.Requests {
				if !okValid(r) {
					t.Fatalf("delivered invalid request %q", r)
				}
			}
		}
	})
}

// FuzzStepVConsensus drives vector consensus with arbitrary messages into
// arbitrary instances and arbitrary TTCB results: never a panic or an
// error on network input, at most one decision.
func FuzzStepVConsensus(f *testing.F) {
	f.Add([]byte{1, 2}, "vc/r:0/brm:2", Encode(&Message{Kind: KindData, Value: []byte("a")}), true, uint8(7))
	f.Add([]byte{3}, "vc/r:1/brm:1", Encode(&Message{Kind: KindRetransmit, Value: []byte("b")}), false, uint8(1))
	g4 := core.MustGroup(4, 1, core.Async)
	f.Fuzz(func(t *testing.T, senders []byte, inst string, payload []byte, decided bool, mask uint8) {
		id, err := core.ParseInstanceID(inst)
		if err != nil {
			return
		}
		v, err := NewVConsensus("vc", DefaultVCParams(g4, 1, 60))
		if err != nil {
			t.Fatal(err)
		}
		var out core.Output
		_ = v.Step(core.Input{Instance: "vc", Value: []byte("mine")}, &out)
		for _, s := range senders {
			if err := v.Step(core.Message{From: core.NodeID(s % 6), Instance: id, Payload: payload}, &out); err != nil {
				t.Fatalf("Step returned %v on network input", err)
			}
		}
		for _, s := range g4.Members() {
			res := ttcb.TBAResult{Decided: decided, ProposedOK: ttcb.Mask(mask)}
			if m, err := Decode(payload, Limits{MaxValue: 1 << 20, MaxN: 4}); err == nil && m.Kind == KindData {
				res.Value = RMDigest(core.InstanceID("vc/r:0").ChildN("brm", uint64(s)), 60, m.Value)
			}
			_ = v.Step(core.ServiceReply{Instance: core.InstanceID("vc/r:0").ChildN("brm", uint64(s)), Service: ttcb.ServiceName, Tag: rmTagPropose | 1, Reply: res}, &out)
		}
		if len(out.Deliveries) > 1 {
			t.Fatalf("decided %d times", len(out.Deliveries))
		}
	})
}

// "Expired" from the TTCB means either that nobody proposed by tstart or
// that the result expired: a trusted timestamp within the retention tells
// the first (the execution decided nothing); past it, the replica cannot
// know the common result and asks the other replicas for it (result
// relay) rather than guess.
func TestEngineTellsNeverProposedFromExpired(t *testing.T) {
	for _, tc := range []struct {
		now       uint64
		wantRelay bool
	}{{now: 100}, {now: 40 + 10 + DefaultParams(g3smr, 2, okValid).Retention, wantRelay: true}} {
		e := newEngine(t)
		var out core.Output
		_ = e.Step(core.Input{Instance: "order", Value: []byte("ok:a")}, &out)
		if err := e.Step(core.ServiceReply{Instance: "order", Service: ttcb.ServiceName, Tag: e.tag(0, 3) | tagDecide, Reply: ttcb.Refused{Err: ttcb.ErrExpired}}, &out); err != nil {
			t.Fatal(err)
		}
		if q := out.Requests[len(out.Requests)-1]; q.Request != (ttcb.GetTimestamp{}) || q.Tag != e.tag(0, 3)|tagTime {
			t.Fatalf("want a timestamp request, got %+v", q)
		}
		out.Reset()
		if err := e.Step(core.ServiceReply{Instance: "order", Service: ttcb.ServiceName, Tag: e.tag(0, 3) | tagTime, Reply: ttcb.Timestamp{Time: tc.now}}, &out); err != nil {
			t.Fatalf("now=%d: %v", tc.now, err)
		}
		asked := 0
		for _, snd := range out.Sends {
			if m, err := Decode(snd.Payload, e.lim); err == nil && m.Kind == KindResultQ && m.Owner == 3 {
				asked++
			}
		}
		if tc.wantRelay != (asked == 2) || tc.wantRelay != (e.cur.results[2] == nil) {
			t.Fatalf("now=%d: %d RESULT_QUERYs, result %+v", tc.now, asked, e.cur.results[2])
		}
		if !tc.wantRelay && (e.cur.results[2] == nil || e.cur.results[2].Decided) {
			t.Fatalf("now=%d: result %+v, want undecided", tc.now, e.cur.results[2])
		}
	}
}

// The engine is an smr.Resumer: the token at a delivered batch decodes
// to the next epoch, Resume skips ahead to it (joining late, proposing
// nothing of its own) and ignores tokens behind it.
func TestEngineResumeToken(t *testing.T) {
	e := newEngine(t)
	e.seq = 7
	var out core.Output
	e.start(12, 500, &out)
	tok, err := e.ResumeToken(7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ResumeToken(6); err == nil {
		t.Fatal("token for a batch not just delivered")
	}
	f := newEngine(t)
	if err := f.Resume(7, tok); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	_ = f.Step(core.TimerFired{Instance: "order", Timer: "x"}, &out)
	if f.Epoch() != 12 || !f.cur.recovering || f.seq != 7 || len(out.Sends) != 0 {
		t.Fatalf("epoch %d recovering %v seq %d sends %d", f.Epoch(), f.cur.recovering, f.seq, len(out.Sends))
	}
	if err := f.Resume(7, tok); err != nil || f.Epoch() != 12 || f.resume != nil {
		t.Fatalf("repeated resume: %v", err)
	}
	if err := f.Resume(8, tok); err == nil {
		t.Fatal("token for another batch accepted")
	}
	if err := f.Resume(7, tok[:5]); err == nil {
		t.Fatal("malformed token accepted")
	}
}
