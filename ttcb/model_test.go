package ttcb

import (
	"errors"
	"testing"

	"pgregory.net/rapid"

	"github.com/maftia/maftia/core"
)

func val(b byte) Value { var v Value; v[0] = b; return v }

func req(tag uint64, r any) core.ServiceRequest {
	return core.ServiceRequest{Instance: "hyb:1", Service: ServiceName, Tag: tag, Request: r}
}

func mustModel(t interface{ Fatal(...any) }, p ModelParams) *Model {
	m, err := NewModel(p)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Agreement: every caller that asks gets the same result, including both
// proposer masks, whatever the payload scheduling — checked over random
// schedules with Byzantine entities proposing conflicting values, trying to
// propose twice, proposing late, and callers whose hosts crash.
func TestModelTBAAgreementUnderByzantineCallers(t *testing.T) {
	runs := 0
	rapid.Check(t, func(rt *rapid.T) {
		runs++
		n := rapid.IntRange(2, 7).Draw(rt, "n")
		p := DefaultModelParams()
		m := mustModel(rt, p)
		elist := make([]EntityID, n)
		for i := range elist {
			elist[i] = EntityID(i + 1)
		}
		dec := rapid.SampledFrom([]Decision{DecisionMajority, DecisionRMulticast, DecisionPlurality}).Draw(rt, "dec")
		tstart := uint64(50)
		tag := ExecutionTag(elist, tstart, dec)
		byz := make(map[EntityID]bool)
		for _, e := range elist {
			byz[e] = rapid.Bool().Draw(rt, "byz")
		}
		type ev struct {
			at   uint64
			from EntityID
			r    any
		}
		var evs []ev
		for _, e := range elist {
			v := val(byte(rapid.IntRange(0, 2).Draw(rt, "v")))
			at := uint64(rapid.IntRange(0, 49).Draw(rt, "at")) // correct: before tstart
			if byz[e] {
				at = uint64(rapid.IntRange(0, 70).Draw(rt, "byzat"))
			}
			evs = append(evs, ev{at, e, TBAPropose{Elist: elist, TStart: tstart, Decision: dec, Value: v}})
			if byz[e] { // conflicting second proposal and a different execution
				evs = append(evs, ev{at + 1, e, TBAPropose{Elist: elist, TStart: tstart, Decision: dec, Value: val(99)}})
				evs = append(evs, ev{at, e, TBAPropose{Elist: elist, TStart: tstart, Decision: DecisionPlurality + 100, Value: val(98)}})
			}
			evs = append(evs, ev{at + 1 + uint64(rapid.IntRange(0, 80).Draw(rt, "dat")), e, TBADecide{Tag: tag}})
		}
		crashAt := map[EntityID]uint64{}
		for _, e := range elist {
			if rapid.IntRange(0, 4).Draw(rt, "crash") == 0 {
				crashAt[e] = uint64(rapid.IntRange(0, 100).Draw(rt, "cat"))
			}
		}
		results := map[EntityID]TBAResult{}
		for now := uint64(0); now <= 200; now++ {
			for e, c := range crashAt {
				if c == now {
					m.Crash(e)
				}
			}
			for _, x := range evs {
				if x.at == now {
					m.Submit(now, x.from, req(uint64(now), x.r))
				}
			}
			for _, r := range m.Advance(now) {
				if res, ok := r.Reply.Reply.(TBAResult); ok {
					if r.At < tstart+p.TBA {
						rt.Fatalf("result at %d before tstart+T_TBA=%d", r.At, tstart+p.TBA)
					}
					results[r.To] = res
				}
			}
		}
		var first *TBAResult
		for e, r := range results {
			if first == nil {
				first = &r
				continue
			}
			if r != *first {
				rt.Fatalf("entity %d got %+v, another got %+v", e, r, *first)
			}
		}
		// every correct, never-crashed entity got a result
		for _, e := range elist {
			if _, c := crashAt[e]; !c && len(results) > 0 {
				if _, ok := results[e]; !ok {
					rt.Fatalf("correct entity %d got no result", e)
				}
			}
		}
	})
	t.Logf("%d schedules, 0 violations", runs)
}

func TestModelTBASemantics(t *testing.T) {
	m := mustModel(t, DefaultModelParams())
	elist := []EntityID{3, 1, 2, 4}
	ts := uint64(20)
	prop := func(now uint64, e EntityID, v byte) any {
		m.Submit(now, e, req(1, TBAPropose{Elist: elist, TStart: ts, Decision: DecisionMajority, Value: val(v)}))
		out := m.Advance(now)
		return out[len(out)-1].Reply.Reply
	}
	if r := prop(1, 3, 7); r.(TBAProposed).ReadyAt != 30 {
		t.Fatalf("propose: %+v", r)
	}
	if r := prop(2, 3, 7); r.(TBAProposed).Tag != ExecutionTag(elist, ts, DecisionMajority) {
		t.Fatalf("idempotent repeat: %+v", r)
	}
	if r := prop(3, 3, 8); !errors.Is(r.(Refused).Err, ErrConflict) {
		t.Fatalf("conflicting repeat: %+v", r)
	}
	if r := prop(4, 9, 8); !errors.Is(r.(Refused).Err, ErrNotInElist) {
		t.Fatalf("outsider: %+v", r)
	}
	prop(5, 1, 7)
	prop(6, 2, 7)
	if r := prop(20, 4, 5); !errors.Is(r.(Refused).Err, ErrTooLate) {
		t.Fatalf("late: %+v", r)
	}
	m.Submit(21, 4, req(2, TBADecide{Tag: ExecutionTag(elist, ts, DecisionMajority)}))
	if out := m.Advance(29); len(out) != 0 {
		t.Fatalf("result before deadline: %+v", out)
	}
	out := m.Advance(30)
	r := out[0].Reply.Reply.(TBAResult)
	if !r.Decided || r.Value != val(7) || r.ProposedOK != 0b0111 || r.ProposedAny != 0b0111 {
		t.Fatalf("result %+v", r)
	}
	if out[0].Reply.Tag != 2 || out[0].Reply.Instance != "hyb:1" {
		t.Fatalf("reply routing %+v", out[0].Reply)
	}
}

func TestDecisionFunctions(t *testing.T) {
	el := []EntityID{1, 2, 3, 4, 5}
	props := []Value{val(1), val(2), val(2), val(3), val(2)}
	r := Apply(DecisionMajority, el, props, 0b11111)
	if !r.Decided || r.Value != val(2) || r.ProposedOK != 0b10110 {
		t.Fatalf("majority %+v", r)
	}
	if r := Apply(DecisionMajority, el, props, 0b01111); r.Decided || r.ProposedAny != 0b01111 {
		t.Fatalf("majority needs > n/2: %+v", r)
	}
	if r := Apply(DecisionRMulticast, el, props, 0b11110); r.Decided {
		t.Fatalf("rmulticast without sender: %+v", r)
	}
	if r := Apply(DecisionRMulticast, el, props, 0b11111); !r.Decided || r.Value != val(1) || r.ProposedOK != 1 {
		t.Fatalf("rmulticast %+v", r)
	}
	if r := Apply(DecisionPlurality, el, []Value{val(4), val(3), {}, {}, {}}, 0b11); r.Value != val(3) {
		t.Fatalf("plurality tie → smallest: %+v", r)
	}
	if err := RegisterDecision(DecisionMajority, majority); err == nil {
		t.Fatal("re-registering majority accepted")
	}
}

func TestModelAdmissionControl(t *testing.T) {
	p := DefaultModelParams()
	p.RateEvery, p.RateBurst = 10, 5
	m := mustModel(t, p)
	refused := 0
	for i := range 100 {
		m.Submit(0, 1, req(uint64(i), GetTimestamp{}))
		m.Submit(0, 2, req(uint64(i), GetTimestamp{}))
	}
	got := map[core.NodeID]int{}
	for _, r := range m.Advance(0) {
		if _, ok := r.Reply.Reply.(Refused); ok {
			refused++
		} else {
			got[r.To]++
		}
	}
	if got[1] != 5 || got[2] != 5 || refused != 190 {
		t.Fatalf("got %v refused %d", got, refused)
	}
}

func TestModelOtherServices(t *testing.T) {
	m := mustModel(t, DefaultModelParams())
	m.Submit(5, 1, req(1, GetRandom{N: 16}))
	m.Submit(5, 1, req(2, GetRandom{N: 0}))
	m.Submit(5, 1, req(3, StartMeasure{Bound: 3}))
	m.Submit(5, 1, req(4, "garbage"))
	m.Submit(5, 1, core.ServiceRequest{Service: "other"})
	out := m.Advance(5)
	if len(out[0].Reply.Reply.(Random).Bytes) != 16 {
		t.Fatal("random")
	}
	for _, i := range []int{1, 3, 4} {
		if !errors.Is(out[i].Reply.Reply.(Refused).Err, ErrBadRequest) {
			t.Fatalf("reply %d: %+v", i, out[i])
		}
	}
	id := out[2].Reply.Reply.(MeasureStarted).ID
	m.Submit(10, 1, req(5, StopMeasure{ID: id}))
	if r := m.Advance(10)[0].Reply.Reply.(Measured); r.Duration != 5 || !r.TimingFailure {
		t.Fatalf("measure %+v", r)
	}
	m.Submit(11, 1, req(6, GetTimestamp{}))
	if r := m.Advance(11)[0].Reply.Reply.(Timestamp); r.Time != 11 {
		t.Fatalf("timestamp %+v", r)
	}
}
