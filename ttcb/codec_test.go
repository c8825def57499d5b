package ttcb

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/maftia/maftia/wire"
)

func localSeeds() [][]byte {
	var out [][]byte
	add := func(m *wire.TTCBLocal) {
		b, _ := marshal.Marshal(m)
		out = append(out, b)
	}
	k := bytes.Repeat([]byte{7}, 32)
	add(&wire.TTCBLocal{Frame: &wire.TTCBLocal_ClientHello{ClientHello: &wire.TTCBClientHello{Entity: 1, Ephemeral: k, Nonce: k}}})
	add(&wire.TTCBLocal{Frame: &wire.TTCBLocal_ServerHello{ServerHello: &wire.TTCBServerHello{Module: 1, Ephemeral: k, Nonce: k, Signature: append(k, k...)}}})
	add(&wire.TTCBLocal{Frame: &wire.TTCBLocal_ClientAuth{ClientAuth: &wire.TTCBClientAuth{Signature: append(k, k...)}}})
	for _, r := range []any{TBAPropose{Elist: []EntityID{1, 2, 3}, TStart: 99, Decision: DecisionMajority, Value: val(1)},
		TBADecide{Tag: 5}, GetTimestamp{}, GetRandom{N: 3}, StartMeasure{Bound: 9}, StopMeasure{ID: 2}} {
		b, _ := encodeRequest(1, r)
		out = append(out, b)
		add(&wire.TTCBLocal{Frame: &wire.TTCBLocal_Sealed{Sealed: &wire.TTCBSealed{Seq: 1, Body: b, Mac: k}}})
	}
	for _, v := range []any{TBAProposed{Tag: 1, ReadyAt: 2}, TBAResult{Tag: 1, Decided: true, ProposedOK: 1, ProposedAny: 3},
		Timestamp{Time: 4}, Random{Bytes: []byte{1}}, MeasureStarted{ID: 1, Start: 2}, Measured{Duration: 3},
		Refused{Err: ErrTooLate}} {
		b, _ := encodeResponse(2, v)
		out = append(out, b)
	}
	return out
}

// FuzzDecodeLocal: any bytes given to the local-interface decoders (frame,
// request, response) either decode to a checked value or give an error
// wrapping ErrBadRequest; a decoded request re-encodes to the same value.
func FuzzDecodeLocal(f *testing.F) {
	for _, s := range localSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := decodeLocal(b); err != nil && !errors.Is(err, ErrBadRequest) {
			t.Fatalf("frame: %v", err)
		}
		id, req, err := decodeRequest(b)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("request: %v", err)
			}
		} else {
			b2, err := encodeRequest(id, req)
			if err != nil {
				t.Fatalf("re-encode %+v: %v", req, err)
			}
			id2, req2, err := decodeRequest(b2)
			if err != nil || id2 != id || !reflect.DeepEqual(req, req2) {
				t.Fatalf("round trip %+v → %+v (%v)", req, req2, err)
			}
		}
		if _, v, err := decodeResponse(b); err == nil {
			if r, ok := v.(TBAResult); ok && r.ProposedOK&^r.ProposedAny != 0 {
				t.Fatalf("inconsistent masks accepted: %+v", r)
			}
		} else if !errors.Is(err, ErrBadRequest) {
			t.Fatalf("response: %v", err)
		}
	})
}

func controlSeeds() [][]byte {
	var out [][]byte
	body := func(m *wire.TTCBControlBody) []byte { b, _ := marshal.Marshal(m); return b }
	fl := floodExec{elist: []EntityID{1, 2, 3}, tstart: 10, decision: DecisionMajority, round: 1, proposed: 0b101,
		props: []Value{val(1), {}, val(3)}}
	for _, bb := range [][]byte{
		body(&wire.TTCBControlBody{Kind: &wire.TTCBControlBody_Heartbeat{Heartbeat: &wire.TTCBEmpty{}}, Joined: true}),
		body(&wire.TTCBControlBody{Kind: &wire.TTCBControlBody_Ping{Ping: 5}}),
		body(&wire.TTCBControlBody{Kind: &wire.TTCBControlBody_Pong{Pong: &wire.TTCBPong{Ping: 5, Global: 6}}}),
		body(&wire.TTCBControlBody{Kind: &wire.TTCBControlBody_Stale{Stale: 3}}),
		body(&wire.TTCBControlBody{Kind: &wire.TTCBControlBody_Flood{Flood: &wire.TTCBFlood{Execs: []*wire.TTCBExec{floodToWire(fl)}}}}),
	} {
		out = append(out, bb)
		c := &wire.TTCBControl{From: 1, To: 2, Incarnation: 1, Boot: 9, Seq: 1, Body: bb, Mac: make([]byte, 32)}
		b, _ := marshal.Marshal(c)
		out = append(out, b)
	}
	return out
}

// FuzzDecodeControl: the control-network decoders (datagram envelope and
// body) never panic, return ErrBadRequest on bad input, and a decoded flood
// is internally consistent (mask within elist, one value per proposer).
func FuzzDecodeControl(f *testing.F) {
	for _, s := range controlSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := decodeControl(b, 4); err == nil {
			if c.From == c.To || c.From < 1 || c.From > 4 || len(c.Mac) != 32 {
				t.Fatalf("bad envelope accepted: %+v", c)
			}
		} else if !errors.Is(err, ErrBadRequest) {
			t.Fatalf("envelope: %v", err)
		}
		body, err := decodeControlBody(b, 2)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("body: %v", err)
			}
			return
		}
		for _, x := range body.flood {
			if checkElist(x.elist) != nil || x.round < 1 || x.round > 2 || len(x.props) != len(x.elist) {
				t.Fatalf("bad flood accepted: %+v", x)
			}
			// and the table accepts it without panicking
			tb := newTable(tableLimits{Horizon: 1, Retention: 1, MaxExecs: 10, MaxPerEntity: 1})
			tb.merge(x.elist, x.tstart, x.decision, x.tstart+1, x.props, x.proposed)
			tb.decideDue(x.tstart + 1)
		}
	})
}

func TestCodecRoundTrips(t *testing.T) {
	for _, v := range []any{TBAProposed{Tag: 1, ReadyAt: 2}, TBAResult{Tag: 1, Decided: true, Value: val(4), ProposedOK: 1, ProposedAny: 3},
		Timestamp{Time: 4}, Random{Bytes: []byte{1}}, MeasureStarted{ID: 1, Start: 2}, Measured{Duration: 3, TimingFailure: true}} {
		b, err := encodeResponse(7, v)
		if err != nil {
			t.Fatal(err)
		}
		id, got, err := decodeResponse(b)
		if err != nil || id != 7 || !reflect.DeepEqual(got, v) {
			t.Fatalf("%+v → %+v %v", v, got, err)
		}
	}
	b, _ := encodeResponse(1, Refused{Err: ErrConflict})
	if _, v, _ := decodeResponse(b); !errors.Is(v.(Refused).Err, ErrConflict) {
		t.Fatalf("refusal lost its sentinel: %+v", v)
	}
}
