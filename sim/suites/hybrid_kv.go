package suites

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"

	"github.com/maftia/maftia/apps/kv"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/hybrid"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/smr"
	"github.com/maftia/maftia/wire"
)

func init() { register("hybrid-kv", HybridKV) }

// kvMAC stands in for a client's Ed25519 signature in the hybrid-kv suite:
// a keyed hash only the suite's clients compute (Byzantine replicas do not
// know the key, as they do not know client private keys).
func kvMAC(client, seq uint64, op []byte) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "kv-client-key/%d/%d/%x", client, seq, op))
	return h[:8]
}

func kvVerify(r *wire.ClientRequest) bool {
	return bytes.Equal(r.Signature, kvMAC(r.Client, r.Seq, r.Op))
}

func kvValid(b []byte) bool {
	r, err := smr.DecodeRequest(b, 64<<10)
	return err == nil && kvVerify(r)
}

// kvState is the hybrid-kv suite's per-run state: the correct replicas'
// smr.Replica objects, to compare their application states.
type kvState struct{ replicas map[core.NodeID]*smr.Replica }

// HybridKV runs the reference application (apps/kv) unchanged on
// smr.Replica with the hybrid ordering engine (configuration "hybrid",
// n ≥ 2f+1) and the TTCB model: clients' signed PUT/CAS requests are
// submitted to the replicas; checked are the smr guarantees (executions
// in the same order with the same results everywhere; at the end every
// request executed exactly once and equal state digests).
func HybridKV(o Options) *sim.Suite {
	st := &kvState{}
	return &sim.Suite{
		Name:       "hybrid-kv",
		Resilience: core.HybridSMR,
		State:      st,
		Setup:      func(core.Group, uint64) error { st.replicas = map[core.NodeID]*smr.Replica{}; return nil },
		NewReplica: func(id core.NodeID, g core.Group) (core.Protocol, error) {
			eng, err := hybrid.New(smr.EngineInstance, hybrid.DefaultParams(g, id, kvValid))
			if err != nil {
				return nil, err
			}
			r, err := smr.NewReplica(smr.DefaultParams(g, id, kvVerify), eng, kv.New())
			if err != nil {
				return nil, err
			}
			if _, dup := st.replicas[id]; !dup {
				st.replicas[id] = r // the first copy (a Twins replica builds two)
			}
			return r, nil
		},
		Services: ttcbServices(nil),
		Start: func(c *sim.Cluster) {
			seqs := map[uint64]uint64{}
			for i := 0; i < 1+c.Rng.IntN(4); i++ {
				client := uint64(1 + c.Rng.IntN(2))
				seqs[client]++
				seq := seqs[client]
				op := kv.EncodeOp(&wire.KVOp{Kind: wire.KVOp_PUT, Key: fmt.Appendf(nil, "k%d", c.Rng.IntN(3)), Value: fmt.Appendf(nil, "v%d", i)})
				req := &wire.ClientRequest{Client: client, Seq: seq, Op: op, Signature: kvMAC(client, seq, op)}
				for _, id := range c.Group.Members() {
					c.Input(id, core.Input{Instance: smr.Instance, Value: req})
				}
			}
		},
		Describe: func(_ core.InstanceID, p []byte) string { return hybrid.Describe(p) },
		Mutate:   mutateHybrid,
		AltInput: func(_ *rand.Rand, in core.Input) core.Input { return in },
		Attacks:  hybridAttacks(),
		Check: func(c *sim.Cluster) []string {
			var v []string
			var ref []string
			var refBy core.NodeID
			for _, id := range c.Correct() {
				var got []string
				for _, d := range c.Deliveries(id) {
					if e, ok := d.Value.(smr.Executed); ok && !e.Cached {
						got = append(got, fmt.Sprintf("%d/%d@%d=%x", e.Client, e.Seq, e.Position, e.Result))
					}
				}
				for i := 0; i < len(got) && i < len(ref); i++ {
					if got[i] != ref[i] {
						v = append(v, fmt.Sprintf("smr: execution %d is %s at %d but %s at %d", i, ref[i], refBy, got[i], id))
						break
					}
				}
				if len(got) > len(ref) {
					ref, refBy = got, id
				}
			}
			return v
		},
		Terminated: func(c *sim.Cluster) bool {
			var digest [32]byte
			for i, id := range c.Correct() {
				r := st.replicas[id]
				if r.Stats().Executed != uint64(countRequests(c)) {
					return false
				}
				d, err := r.StateDigest()
				if err != nil || (i > 0 && d != digest) {
					return false
				}
				digest = d
			}
			return true
		},
	}
}

// countRequests is the number of distinct client requests of the run.
func countRequests(c *sim.Cluster) int {
	seen := map[[2]uint64]bool{}
	for _, id := range c.Group.Members() {
		for _, in := range c.Inputs(id) {
			if r, ok := in.Value.(*wire.ClientRequest); ok {
				seen[[2]uint64{r.Client, r.Seq}] = true
			}
		}
	}
	return len(seen)
}
