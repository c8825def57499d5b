package avid

import (
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/wire"
)

// FuzzDecode: arbitrary bytes never panic; accepted messages re-encode to
// something that decodes again, within the bounds.
func FuzzDecode(f *testing.F) {
	frags, root, proofs := dispersal(f, []byte("seed"))
	f.Add(Encode(&wire.AVID{Kind: wire.AVID_SEND, Root: root[:], Fragment: frags[0], Proof: proofs[0]}))
	f.Add(Encode(&wire.AVID{Kind: wire.AVID_READY, Root: root[:]}))
	f.Add([]byte{0x08, 0x03, 0x12, 0x20})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b, g4, 1024)
		if err != nil {
			return
		}
		if len(m.Fragment) > ShardSize(4, 1, 1024) || len(m.Root) != 32 {
			t.Fatalf("accepted out-of-bounds message: fragment %d root %d", len(m.Fragment), len(m.Root))
		}
		if _, err := Decode(Encode(m), g4, 1024); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

// FuzzStep drives one instance with arbitrary messages from arbitrary
// senders, then with well-formed ECHOs and READYs for fragments of the
// fuzzed payload (ATTACKS row 8: replay through the handler): Step never
// panics or errors, never delivers twice, and delivers only the payload
// or ⊥.
func FuzzStep(f *testing.F) {
	frags, root, proofs := dispersal(f, []byte("v"))
	f.Add([]byte{1}, Encode(&wire.AVID{Kind: wire.AVID_SEND, Root: root[:], Fragment: frags[1], Proof: proofs[1]}), []byte("v"), []byte{1, 3, 4})
	f.Add([]byte{4}, Encode(&wire.AVID{Kind: wire.AVID_READY, Root: root[:]}), []byte("xy"), []byte{1})
	f.Fuzz(func(t *testing.T, senders []byte, payload []byte, value []byte, more []byte) {
		a := newAVID(t, 2, 1)
		var out core.Output
		step := func(from byte, p []byte) {
			if err := a.Step(core.Message{From: core.NodeID(from % 6), Instance: inst, Payload: p}, &out); err != nil {
				t.Fatalf("Step returned %v on network input", err)
			}
		}
		for _, s := range senders {
			step(s, payload)
		}
		if len(value) > 1<<12 {
			value = value[:1<<12]
		}
		frags, root, proofs := dispersal(t, value)
		if len(more) > 0 && more[0]%2 == 0 { // sometimes an inconsistent dispersal
			frags[int(more[0]/2)%4] = append([]byte{more[0]}, frags[int(more[0]/2)%4][1:]...)
			root, proofs = Commit(inst, frags)
		}
		for _, s := range more {
			from := core.NodeID(s%4) + 1
			step(byte(from), Encode(&wire.AVID{Kind: wire.AVID_ECHO, Root: root[:], Fragment: frags[from-1], Proof: proofs[from-1]}))
			step(byte(from), Encode(&wire.AVID{Kind: wire.AVID_READY, Root: root[:]}))
		}
		if len(out.Deliveries) > 1 {
			t.Fatalf("delivered %d times", len(out.Deliveries))
		}
		for _, d := range out.Deliveries {
			switch v := d.Value.(type) {
			case Invalid:
			case []byte:
				if string(v) != string(value) {
					t.Fatalf("delivered %q, dispersed %q", v, value)
				}
			default:
				t.Fatalf("delivered %T", d.Value)
			}
		}
	})
}
