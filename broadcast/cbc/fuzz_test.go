package cbc

import (
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/wire"
)

// FuzzDecode: arbitrary bytes never panic; accepted messages have fields
// of the exact sizes and re-encode to something that decodes again.
func FuzzDecode(f *testing.F) {
	f.Add(Encode(&wire.CBC{Kind: wire.CBC_SEND, Value: []byte("v")}))
	f.Add(shareMsg(2, []byte("v")).Payload)
	f.Add(Encode(&wire.CBC{Kind: wire.CBC_FINAL, Value: []byte("v"), Signature: make([]byte, tsig.SignatureSize)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b, 1024)
		if err != nil {
			return
		}
		if m.Kind == wire.CBC_SHARE && len(m.Share) != tsig.ShareSize || m.Kind == wire.CBC_FINAL && len(m.Signature) != tsig.SignatureSize {
			t.Fatalf("accepted wrong sizes: %v", m)
		}
		if _, err := Decode(Encode(m), 1024); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

// FuzzStep drives a sender and a receiver with arbitrary messages from
// arbitrary senders, each through Precheck when it passes and inline
// otherwise (ATTACKS rows 7 and 8): Step never panics or errors, the
// receiver signs at most one share, nobody delivers twice, and whatever
// is delivered carries a valid certificate.
func FuzzStep(f *testing.F) {
	f.Add([]byte{1, 2, 3}, Encode(&wire.CBC{Kind: wire.CBC_SEND, Value: []byte("v")}), []byte("v"), false)
	f.Add([]byte{2, 3, 4}, shareMsg(2, []byte("v")).Payload, []byte("v"), true)
	f.Add([]byte{4}, badShareMsg(4, []byte("v")).Payload, []byte("v"), false)
	f.Fuzz(func(t *testing.T, senders []byte, payload []byte, value []byte, pre bool) {
		s, r := newCBC(t, 1, 1), newCBC(t, 2, 1)
		var so, ro core.Output
		if err := s.Step(core.Input{Instance: inst, Value: value}, &so); err != nil {
			return // value over the bound
		}
		for _, x := range senders {
			m := core.Message{From: core.NodeID(x % 6), Instance: inst, Payload: payload}
			for _, c := range []*CBC{s, r} {
				mm := m
				if pre && g4.Contains(m.From) {
					ch, err := c.Precheck(m)
					if err != nil {
						continue
					}
					mm.Checked = ch
				}
				out := &so
				if c == r {
					out = &ro
				}
				if err := c.Step(mm, out); err != nil {
					t.Fatalf("Step returned %v on network input", err)
				}
			}
		}
		if n := len(ro.Sends); n > 1 {
			t.Fatalf("receiver sent %d shares", n)
		}
		for _, out := range []*core.Output{&so, &ro} {
			if len(out.Deliveries) > 1 {
				t.Fatalf("delivered %d times", len(out.Deliveries))
			}
			for _, d := range out.Deliveries {
				c := d.Value.(Certified)
				if err := VerifyCertificate(pub4, inst, c.Value, c.Signature); err != nil {
					t.Fatalf("delivered without a valid certificate: %v", err)
				}
			}
		}
	})
}
