package ttcb

import (
	"encoding/binary"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/wire"
)

// Checked decoders for both TTCB interfaces. Every function here accepts
// arbitrary bytes and returns either a well-formed value or an error
// wrapping ErrBadRequest; none panics (fuzzed in codec_test.go).

const (
	maxLocalFrame   = 64 << 10 // one frame on the local socket
	maxControlFrame = 60 << 10 // one control datagram
	maxFloodExecs   = 4096     // executions in one flood datagram
)

var marshal = proto.MarshalOptions{Deterministic: true}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: malformed: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// writeFrame writes a 4-byte big-endian length and the encoded message.
func writeFrame(w io.Writer, m proto.Message) error {
	b, err := marshal.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > maxLocalFrame {
		return fmt.Errorf("%w: frame of %d bytes", ErrBadRequest, len(b))
	}
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err = w.Write(buf)
	return err
}

// readFrame reads one length-prefixed frame, refusing oversized lengths
// before allocating.
func readFrame(r io.Reader) (*wire.TTCBLocal, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxLocalFrame {
		return nil, malformed("frame length %d > %d", n, maxLocalFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return decodeLocal(b)
}

// decodeLocal decodes one local frame and checks the handshake fields.
func decodeLocal(b []byte) (*wire.TTCBLocal, error) {
	if len(b) > maxLocalFrame {
		return nil, malformed("frame of %d bytes", len(b))
	}
	var f wire.TTCBLocal
	if err := proto.Unmarshal(b, &f); err != nil {
		return nil, malformed("%v", err)
	}
	switch x := f.Frame.(type) {
	case *wire.TTCBLocal_ClientHello:
		h := x.ClientHello
		if h == nil || h.Entity == 0 || len(h.Ephemeral) != 32 || len(h.Nonce) != 32 {
			return nil, malformed("client hello")
		}
	case *wire.TTCBLocal_ServerHello:
		h := x.ServerHello
		if h == nil || h.Module == 0 || len(h.Ephemeral) != 32 || len(h.Nonce) != 32 || len(h.Signature) != 64 {
			return nil, malformed("server hello")
		}
	case *wire.TTCBLocal_ClientAuth:
		if x.ClientAuth == nil || len(x.ClientAuth.Signature) != 64 {
			return nil, malformed("client auth")
		}
	case *wire.TTCBLocal_Sealed:
		if x.Sealed == nil || x.Sealed.Seq == 0 || len(x.Sealed.Mac) != 32 {
			return nil, malformed("sealed frame")
		}
	default:
		return nil, malformed("empty frame")
	}
	return &f, nil
}

func toValue(b []byte) (Value, bool) {
	var v Value
	if len(b) != len(v) {
		return v, false
	}
	copy(v[:], b)
	return v, true
}

func toElist(xs []uint32) ([]EntityID, error) {
	el := make([]EntityID, len(xs))
	for i, x := range xs {
		el[i] = EntityID(x)
	}
	return el, checkElist(el)
}

func fromElist(el []EntityID) []uint32 {
	xs := make([]uint32, len(el))
	for i, e := range el {
		xs[i] = uint32(e)
	}
	return xs
}

// encodeRequest encodes a local request (one of the request types).
func encodeRequest(id uint64, r any) ([]byte, error) {
	m := &wire.TTCBRequest{Id: id}
	switch r := r.(type) {
	case TBAPropose:
		m.Op = &wire.TTCBRequest_Propose{Propose: &wire.TTCBPropose{Elist: fromElist(r.Elist),
			Tstart: r.TStart, Decision: uint32(r.Decision), Value: r.Value[:]}}
	case TBADecide:
		m.Op = &wire.TTCBRequest_Decide{Decide: &wire.TTCBDecide{Tag: uint64(r.Tag)}}
	case GetTimestamp:
		m.Op = &wire.TTCBRequest_Timestamp{Timestamp: &wire.TTCBEmpty{}}
	case GetRandom:
		m.Op = &wire.TTCBRequest_Random{Random: uint32(max(r.N, 0))}
	case StartMeasure:
		m.Op = &wire.TTCBRequest_StartMeasure{StartMeasure: r.Bound}
	case StopMeasure:
		m.Op = &wire.TTCBRequest_StopMeasure{StopMeasure: r.ID}
	default:
		return nil, fmt.Errorf("%w: request type %T", ErrBadRequest, r)
	}
	return marshal.Marshal(m)
}

// decodeRequest decodes a local request body into one of the request types.
func decodeRequest(b []byte) (uint64, any, error) {
	var m wire.TTCBRequest
	if err := proto.Unmarshal(b, &m); err != nil {
		return 0, nil, malformed("request: %v", err)
	}
	switch op := m.Op.(type) {
	case *wire.TTCBRequest_Propose:
		p := op.Propose
		if p == nil {
			return m.Id, nil, malformed("propose")
		}
		el, err := toElist(p.Elist)
		if err != nil {
			return m.Id, nil, err
		}
		v, ok := toValue(p.Value)
		if !ok {
			return m.Id, nil, malformed("value of %d bytes", len(p.Value))
		}
		return m.Id, TBAPropose{Elist: el, TStart: p.Tstart, Decision: Decision(p.Decision), Value: v}, nil
	case *wire.TTCBRequest_Decide:
		if op.Decide == nil {
			return m.Id, nil, malformed("decide")
		}
		return m.Id, TBADecide{Tag: Tag(op.Decide.Tag)}, nil
	case *wire.TTCBRequest_Timestamp:
		return m.Id, GetTimestamp{}, nil
	case *wire.TTCBRequest_Random:
		if op.Random < 1 || op.Random > MaxRandom {
			return m.Id, nil, malformed("random of %d bytes", op.Random)
		}
		return m.Id, GetRandom{N: int(op.Random)}, nil
	case *wire.TTCBRequest_StartMeasure:
		return m.Id, StartMeasure{Bound: op.StartMeasure}, nil
	case *wire.TTCBRequest_StopMeasure:
		return m.Id, StopMeasure{ID: op.StopMeasure}, nil
	}
	return m.Id, nil, malformed("empty request")
}

func resultToWire(r TBAResult) *wire.TTCBResult {
	w := &wire.TTCBResult{Tag: uint64(r.Tag), Decided: r.Decided, Value: r.Value[:],
		ProposedOk: uint64(r.ProposedOK), ProposedAny: uint64(r.ProposedAny), Module: r.Module, Withheld: r.Withheld}
	if r.Module != 0 {
		w.Signature = r.Signature[:]
	}
	return w
}

func resultFromWire(w *wire.TTCBResult) (TBAResult, error) {
	if w == nil {
		return TBAResult{}, malformed("result")
	}
	v, ok := toValue(w.Value)
	if !ok {
		return TBAResult{}, malformed("result value of %d bytes", len(w.Value))
	}
	if w.ProposedOk&^w.ProposedAny != 0 {
		return TBAResult{}, malformed("proposed-ok %x not within proposed-any %x", w.ProposedOk, w.ProposedAny)
	}
	r := TBAResult{Tag: Tag(w.Tag), Decided: w.Decided, Value: v,
		ProposedOK: Mask(w.ProposedOk), ProposedAny: Mask(w.ProposedAny), Module: w.Module, Withheld: w.Withheld}
	switch {
	case w.Withheld && (w.Decided || w.ProposedOk != 0 || w.ProposedAny != 0 || w.Module == 0):
		return TBAResult{}, malformed("withheld result with result fields or without attestation")
	case w.Module == 0 && len(w.Signature) != 0, w.Module != 0 && len(w.Signature) != 64:
		return TBAResult{}, malformed("result attestation of %d bytes by module %d", len(w.Signature), w.Module)
	}
	copy(r.Signature[:], w.Signature)
	return r, nil
}

// encodeResponse encodes a reply value (one of the reply types or Refused).
func encodeResponse(id uint64, v any) ([]byte, error) {
	m := &wire.TTCBResponse{Id: id}
	switch v := v.(type) {
	case Refused:
		m.Code, m.Detail = errCode(v.Err), v.Err.Error()
	case TBAProposed:
		m.Out = &wire.TTCBResponse_Proposed{Proposed: &wire.TTCBProposed{Tag: uint64(v.Tag), ReadyAt: v.ReadyAt}}
	case TBAResult:
		m.Out = &wire.TTCBResponse_Result{Result: resultToWire(v)}
	case Timestamp:
		m.Out = &wire.TTCBResponse_Timestamp{Timestamp: v.Time}
	case Random:
		m.Out = &wire.TTCBResponse_Random{Random: v.Bytes}
	case MeasureStarted:
		m.Out = &wire.TTCBResponse_Measure{Measure: &wire.TTCBMeasure{Id: v.ID, Start: v.Start}}
	case Measured:
		m.Out = &wire.TTCBResponse_Measure{Measure: &wire.TTCBMeasure{Duration: v.Duration, TimingFailure: v.TimingFailure}}
	default:
		return nil, fmt.Errorf("%w: reply type %T", ErrBadRequest, v)
	}
	return marshal.Marshal(m)
}

// decodeResponse decodes a reply; a refusal is returned as Refused. The
// caller knows which request it made, so a measurement reply is returned
// as MeasureStarted when it carries an ID and as Measured otherwise.
func decodeResponse(b []byte) (uint64, any, error) {
	var m wire.TTCBResponse
	if err := proto.Unmarshal(b, &m); err != nil {
		return 0, nil, malformed("response: %v", err)
	}
	if m.Code != 0 {
		if len(m.Detail) > 1024 {
			m.Detail = m.Detail[:1024]
		}
		return m.Id, Refused{Err: codeErr(m.Code, m.Detail)}, nil
	}
	switch o := m.Out.(type) {
	case *wire.TTCBResponse_Proposed:
		if o.Proposed == nil {
			return m.Id, nil, malformed("proposed")
		}
		return m.Id, TBAProposed{Tag: Tag(o.Proposed.Tag), ReadyAt: o.Proposed.ReadyAt}, nil
	case *wire.TTCBResponse_Result:
		r, err := resultFromWire(o.Result)
		return m.Id, r, err
	case *wire.TTCBResponse_Timestamp:
		return m.Id, Timestamp{Time: o.Timestamp}, nil
	case *wire.TTCBResponse_Random:
		if len(o.Random) < 1 || len(o.Random) > MaxRandom {
			return m.Id, nil, malformed("random of %d bytes", len(o.Random))
		}
		return m.Id, Random{Bytes: o.Random}, nil
	case *wire.TTCBResponse_Measure:
		if o.Measure == nil {
			return m.Id, nil, malformed("measure")
		}
		if o.Measure.Id != 0 {
			return m.Id, MeasureStarted{ID: o.Measure.Id, Start: o.Measure.Start}, nil
		}
		return m.Id, Measured{Duration: o.Measure.Duration, TimingFailure: o.Measure.TimingFailure}, nil
	}
	return m.Id, nil, malformed("empty response")
}

// floodExec is one execution's proposal set in a flood message.
type floodExec struct {
	elist    []EntityID
	tstart   uint64
	decision Decision
	round    uint32
	proposed Mask
	props    []Value // aligned with elist
}

// ctrlBody is a decoded, checked control-message body.
type ctrlBody struct {
	sentAt     uint64
	joined     bool
	errorBound uint64
	kind       int // ctrlHeartbeat...
	ping       uint64
	pongGlobal uint64
	stale      uint64
	flood      []floodExec
}

const (
	ctrlHeartbeat = iota + 1
	ctrlPing
	ctrlPong
	ctrlFlood
	ctrlStale
)

// decodeControl decodes a control datagram's envelope and checks its
// fields against a configuration of modules 1..n (MAC not yet checked).
func decodeControl(b []byte, n int) (*wire.TTCBControl, error) {
	if len(b) > maxControlFrame {
		return nil, malformed("datagram of %d bytes", len(b))
	}
	var c wire.TTCBControl
	if err := proto.Unmarshal(b, &c); err != nil {
		return nil, malformed("control: %v", err)
	}
	if c.From < 1 || int(c.From) > n || c.To < 1 || int(c.To) > n || c.From == c.To {
		return nil, malformed("control from %d to %d (n=%d)", c.From, c.To, n)
	}
	if len(c.Mac) != 32 || c.Seq == 0 || c.Incarnation == 0 {
		return nil, malformed("control header")
	}
	return &c, nil
}

// decodeControlBody decodes an authenticated control body; maxRound is
// f+1.
func decodeControlBody(b []byte, maxRound uint32) (*ctrlBody, error) {
	var m wire.TTCBControlBody
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, malformed("control body: %v", err)
	}
	out := &ctrlBody{sentAt: m.SentAt, joined: m.Joined, errorBound: m.ErrorBound}
	switch k := m.Kind.(type) {
	case *wire.TTCBControlBody_Heartbeat:
		out.kind = ctrlHeartbeat
	case *wire.TTCBControlBody_Ping:
		out.kind, out.ping = ctrlPing, k.Ping
	case *wire.TTCBControlBody_Pong:
		if k.Pong == nil {
			return nil, malformed("pong")
		}
		out.kind, out.ping, out.pongGlobal = ctrlPong, k.Pong.Ping, k.Pong.Global
	case *wire.TTCBControlBody_Stale:
		out.kind, out.stale = ctrlStale, k.Stale
	case *wire.TTCBControlBody_Flood:
		if k.Flood == nil || len(k.Flood.Execs) > maxFloodExecs {
			return nil, malformed("flood")
		}
		out.kind = ctrlFlood
		for _, x := range k.Flood.Execs {
			el, err := toElist(x.Elist)
			if err != nil {
				return nil, err
			}
			if x.Round < 1 || x.Round > maxRound {
				return nil, malformed("round %d not in 1..%d", x.Round, maxRound)
			}
			pm := Mask(x.Proposed)
			if len(el) < 64 && pm>>uint(len(el)) != 0 {
				return nil, malformed("proposed mask %x beyond elist of %d", x.Proposed, len(el))
			}
			if pm.Count() != len(x.Values) {
				return nil, malformed("%d values for %d proposers", len(x.Values), pm.Count())
			}
			fe := floodExec{elist: el, tstart: x.Tstart, decision: Decision(x.Decision), round: x.Round,
				proposed: pm, props: make([]Value, len(el))}
			j := 0
			for i := range el {
				if pm.Has(i) {
					v, ok := toValue(x.Values[j])
					if !ok {
						return nil, malformed("value of %d bytes", len(x.Values[j]))
					}
					fe.props[i] = v
					j++
				}
			}
			out.flood = append(out.flood, fe)
		}
	default:
		return nil, malformed("empty control body")
	}
	return out, nil
}

func floodToWire(f floodExec) *wire.TTCBExec {
	x := &wire.TTCBExec{Elist: fromElist(f.elist), Tstart: f.tstart, Decision: uint32(f.decision),
		Round: f.round, Proposed: uint64(f.proposed)}
	for i := range f.elist {
		if f.proposed.Has(i) {
			x.Values = append(x.Values, f.props[i][:])
		}
	}
	return x
}
