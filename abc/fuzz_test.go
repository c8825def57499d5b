package abc_test

import (
	"testing"

	"github.com/maftia/maftia/abc"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/suites"
	"github.com/maftia/maftia/wire"
	"google.golang.org/protobuf/proto"
)

func FuzzDecode(f *testing.F) {
	for _, m := range []*wire.ABC{{Kind: wire.ABC_STORED, Sender: 1, Digest: make([]byte, 32)}, {Kind: wire.ABC_FETCH, Epoch: 3}, {Kind: wire.ABC_DECRYPT, Shares: [][]byte{{1}}}} {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := abc.Decode(b)
		if err != nil {
			return
		}
		again, _ := proto.Marshal(m)
		if _, err := abc.Decode(again); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzStep feeds arbitrary payloads, on arbitrary instances below the
// root, from arbitrary senders into a replica in the middle of a run:
// Step never panics and never returns an error on network input.
func FuzzStep(f *testing.F) {
	f.Add(uint8(2), "order", []byte{0x08, 0x02, 0x28, 0x01})
	f.Add(uint8(3), "order/e:0", []byte{0x08, 0x01, 0x10, 0x02})
	f.Add(uint8(1), "order/e:0/avid:2", []byte{0x08, 0x01})
	f.Add(uint8(4), "order/e:1/mvba/prop:2", []byte{0x0a, 0x00})
	s := suites.SCABC(suites.Options{})
	f.Fuzz(func(t *testing.T, from uint8, inst string, payload []byte) {
		id, err := core.ParseInstanceID(inst)
		if err != nil {
			return
		}
		g := core.MustGroup(4, 1, core.Async)
		c, err := sim.NewCluster(s.Suite, g, 1, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		c.Input(1, core.Input{Instance: suites.ABCRoot, Value: s.RequestForTest("x")})
		for i := 0; i < 30 && len(c.Pending()) > 0; i++ {
			c.Deliver(0)
		}
		var out core.Output
		if err := s.Core(2).Step(core.Message{From: core.NodeID(from%5 + 1), Instance: id, Payload: payload}, &out); err != nil {
			t.Fatalf("Step returned %v on network input", err)
		}
	})
}
