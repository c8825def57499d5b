package abc_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/maftia/maftia/abc"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/tenc"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/suites"
	"github.com/maftia/maftia/wire"
)

// spy is a Byzantine replica (colluding with a Byzantine client) that
// watches every decryption share it receives, tries to open the target
// request with its own share plus the others', and as soon as it can,
// submits a request that depends on the target's content (front-running).
type spy struct {
	inner     core.Protocol
	s         *suites.ABCSuite
	target    *tenc.CheckedCiphertext
	marker    []byte
	shares    []tenc.Share
	from      map[uint32]bool
	learned   []byte
	dependent []byte
	sawText   bool // plaintext seen on the wire before learning it
}

func (x *spy) Step(ev core.Event, out *core.Output) error {
	pk, sks, _ := x.s.CausalKeysForTest()
	if x.from == nil {
		x.from = map[uint32]bool{}
		own, _ := tenc.DecryptShare(nil, sks[3], x.target)
		x.shares, x.from[4] = []tenc.Share{own}, true
	}
	if m, ok := ev.(core.Message); ok {
		if x.learned == nil && bytes.Contains(m.Payload, x.marker) {
			x.sawText = true
		}
		if msg, err := abc.Decode(m.Payload); err == nil && msg.Kind == wire.ABC_DECRYPT && x.learned == nil {
			for _, raw := range msg.Shares {
				sh, err := tenc.UnmarshalShare(raw)
				if err != nil || x.from[sh.Index] || tenc.VerifyShare(pk, x.target, sh) != nil {
					continue
				}
				x.from[sh.Index] = true
				x.shares = append(x.shares, sh)
			}
			if len(x.shares) >= pk.Threshold() {
				if p, _, err := tenc.Combine(pk, x.target, x.shares); err == nil {
					x.learned = p
					// Front-run: a request that depends on the target's content.
					dep := x.s.RequestForTest(fmt.Sprintf("frontrun-%x", p[len(p)-6:]))
					x.dependent = dep
					_ = x.inner.Step(core.Input{Instance: suites.ABCRoot, Value: dep}, out)
				}
			}
		}
	}
	return x.inner.Step(ev, out)
}

type spyBehaviour struct{ spy *spy }

func (b spyBehaviour) Name() string { return "spy" }
func (b spyBehaviour) Wrap(_ core.NodeID, inner core.Protocol, _ *sim.ByzContext) core.Protocol {
	b.spy.inner = inner
	return b.spy
}

// Secure causal order: an adversary controlling f replicas cannot see a
// request's content before its position is fixed, so a request that
// depends on that content is always ordered after it, in a later batch.
func TestCausalOrderAdversaryCannotFrontRun(t *testing.T) {
	learnedRuns := 0
	for seed := uint64(0); seed < 12; seed++ {
		s := suites.SCABC(suites.Options{})
		sp := &spy{s: s}
		g := core.MustGroup(4, 1, core.Async)
		c, err := sim.NewCluster(s.Suite, g, seed, map[core.NodeID]sim.Behaviour{4: spyBehaviour{sp}}, false)
		if err != nil {
			t.Fatal(err)
		}
		pk, _, label := s.CausalKeysForTest()
		body := fmt.Sprintf("transfer-%d", seed)
		sp.marker = []byte(body)
		target := s.RequestForTest(body)
		ct, _ := tenc.UnmarshalCiphertext(target)
		if sp.target, err = pk.Check(ct, label); err != nil {
			t.Fatal(err)
		}
		for _, id := range []core.NodeID{1, 2, 3} {
			c.Input(id, core.Input{Instance: suites.ABCRoot, Value: target})
		}
		injected := false
		for i := 0; len(c.Pending()) > 0; i++ {
			if i > 500000 {
				t.Fatal("no quiescence")
			}
			c.Deliver(c.Rng.IntN(len(c.Pending())))
			if sp.learned != nil && !injected {
				// The colluding client also sends the dependent request to
				// every correct replica the moment the spy learns the content.
				injected = true
				for _, id := range []core.NodeID{1, 2, 3} {
					c.Input(id, core.Input{Instance: suites.ABCRoot, Value: sp.dependent})
				}
			}
		}
		if sp.sawText {
			t.Fatalf("seed %d: the plaintext crossed the wire before it was delivered", seed)
		}
		if sp.learned == nil {
			continue
		}
		learnedRuns++
		for _, id := range []core.NodeID{1, 2, 3} {
			tb, db := batchOf(c, id, []byte(body)), batchOf(c, id, []byte("frontrun-"))
			if tb == 0 {
				t.Fatalf("seed %d: replica %d never delivered the target", seed, id)
			}
			if db == 0 || db <= tb {
				t.Fatalf("seed %d: replica %d ordered the dependent request in batch %d, target in %d", seed, id, db, tb)
			}
		}
	}
	if learnedRuns == 0 {
		t.Fatal("the spy never decrypted the target, even after delivery: the test checks nothing")
	}
	t.Logf("%d runs: the spy learned the content only after its position was fixed; every dependent request came later", learnedRuns)
}

// batchOf is the sequence number of the first delivered batch at id with a
// request containing needle (0 if none).
func batchOf(c *sim.Cluster, id core.NodeID, needle []byte) uint64 {
	for _, d := range c.Deliveries(id) {
		b := d.Value.(*wire.Batch)
		for _, r := range b.Requests {
			if bytes.Contains(r, needle) {
				return b.Seq
			}
		}
	}
	return 0
}
