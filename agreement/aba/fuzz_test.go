package aba

import (
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/coin"
	"github.com/maftia/maftia/wire"
)

// FuzzDecode: arbitrary bytes never panic; accepted messages re-encode to
// something that decodes again.
func FuzzDecode(f *testing.F) {
	f.Add(Encode(&wire.ABA{Kind: wire.ABA_BVAL, Round: 1, Value: 1}))
	f.Add(Encode(&wire.ABA{Kind: wire.ABA_CONF, Round: 2, Value: 3}))
	f.Add(Encode(&wire.ABA{Kind: wire.ABA_COIN, Round: 1, Share: make([]byte, 68)}))
	f.Add(Encode(&wire.ABA{Kind: wire.ABA_TERM, Value: 1}))
	f.Add([]byte{0x08, 0x04, 0x10, 0x01, 0x22, 0x00})
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

// FuzzStep drives one instance with an input and arbitrary messages from
// arbitrary senders (ATTACKS row 8): Step never panics or errors on network
// input, never decides twice, and keeps a bounded number of rounds.
func FuzzStep(f *testing.F) {
	_, sks := keys(f)
	share := coin.ShareFor(sks[1], CoinName(inst, 1)).Marshal()
	f.Add(true, []byte{1, 2, 3}, Encode(&wire.ABA{Kind: wire.ABA_BVAL, Round: 1, Value: 1}), uint64(1), uint8(2))
	f.Add(false, []byte{2}, Encode(&wire.ABA{Kind: wire.ABA_COIN, Round: 1, Share: share}), uint64(1), uint8(3))
	f.Add(true, []byte{4, 4}, Encode(&wire.ABA{Kind: wire.ABA_TERM, Value: 0}), uint64(7), uint8(1))
	f.Fuzz(func(t *testing.T, input bool, senders []byte, payload []byte, round uint64, set uint8) {
		a := newABA(t, 1)
		var out core.Output
		if err := a.Step(core.Input{Instance: inst, Value: input}, &out); err != nil {
			t.Fatal(err)
		}
		step := func(from byte, p []byte) {
			if err := a.Step(core.Message{From: core.NodeID(from % 6), Instance: inst, Payload: p}, &out); err != nil {
				t.Fatalf("Step returned %v on network input", err)
			}
		}
		// Each sender costs five steps and may cost pairings: a bounded
		// prefix keeps every input well under the fuzzer's 10 s per-call
		// limit (senders repeat modulo 6 anyway).
		if len(senders) > 32 {
			senders = senders[:32]
		}
		for _, s := range senders {
			step(s, payload)
			r := round%4 + 1
			step(s, Encode(&wire.ABA{Kind: wire.ABA_BVAL, Round: r, Value: uint32(s & 1)}))
			step(s, Encode(&wire.ABA{Kind: wire.ABA_AUX, Round: r, Value: uint32(s>>1) & 1}))
			step(s, Encode(&wire.ABA{Kind: wire.ABA_CONF, Round: r, Value: uint32(set%3) + 1}))
			step(s, Encode(&wire.ABA{Kind: wire.ABA_COIN, Round: r, Share: share}))
		}
		if len(out.Deliveries) > 1 {
			t.Fatalf("decided %d times", len(out.Deliveries))
		}
		if !a.Finished() && a.Retained() > int(a.p.MaxRoundsAhead)+1 {
			t.Fatalf("%d rounds retained", a.Retained())
		}
	})
}
