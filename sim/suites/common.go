package suites

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
)

// prechecked runs, for every message to a child that implements
// core.Prechecker, the child's pure Precheck before Step, as the runtime's
// crypto worker pool does (here inline). Suites wrap odd-numbered replicas
// in it so that every run exercises both paths: verified-before-Step and
// verify-inline. Prechecks counts the calls (for benchmarks).
type prechecked struct {
	mux       *core.Mux
	Prechecks int
}

func (p *prechecked) Step(ev core.Event, out *core.Output) error {
	m, ok := ev.(core.Message)
	if !ok || m.Checked != nil || m.Instance.Depth() < 1 {
		return p.mux.Step(ev, out)
	}
	child, ok := p.mux.Child(m.Instance.Prefix(1))
	pc, isPC := child.(core.Prechecker)
	if !ok || !isPC {
		return p.mux.Step(ev, out)
	}
	p.Prechecks++
	c, err := pc.Precheck(m)
	if err != nil {
		var ev *core.Evidence
		if errors.As(err, &ev) {
			out.Evidence = append(out.Evidence, *ev)
		}
		return nil
	}
	m.Checked = c
	return p.mux.Step(m, out)
}

// host wraps a replica's Mux in prechecked for odd replica IDs (unless
// inline is set).
func host(id core.NodeID, mux *core.Mux, inline bool) core.Protocol {
	if id%2 == 1 && !inline {
		return &prechecked{mux: mux}
	}
	return mux
}

// seededReader is a deterministic byte stream (SHA-256 in counter mode)
// standing in for crypto/rand in the simulator, so the trusted dealer's
// keys are a function of the run seed and a failing seed replays exactly.
type seededReader struct {
	seed  [32]byte
	ctr   uint64
	avail []byte
}

func newSeededReader(label string, seed uint64) *seededReader {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	return &seededReader{seed: sha256.Sum256(append([]byte("maftia/sim/"+label+"/"), b[:]...))}
}

func (r *seededReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.avail) == 0 {
			var blk [40]byte
			copy(blk[:], r.seed[:])
			binary.BigEndian.PutUint64(blk[32:], r.ctr)
			r.ctr++
			sum := sha256.Sum256(blk[:])
			r.avail = sum[:]
		}
		c := copy(p[n:], r.avail)
		r.avail = r.avail[c:]
		n += c
	}
	return n, nil
}

// broadcastPayload returns the payload generator of a broadcast suite:
// o.PayloadSize random bytes, or a short string naming the sender.
func broadcastPayload(o Options) func(*rand.Rand, core.NodeID) []byte {
	return func(rng *rand.Rand, s core.NodeID) []byte {
		if o.PayloadSize > 0 {
			b := make([]byte, o.PayloadSize)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			return b
		}
		return fmt.Appendf(nil, "v%d-%d", s, rng.IntN(1000))
	}
}

// startBroadcasts starts a broadcast suite's run: with short payloads, half
// the runs let every replica broadcast concurrently; otherwise one sender
// broadcasts, a Byzantine one half the time when there is any (so
// equivocating senders are well covered). With o.PayloadSize set there is
// always one sender, so a run costs one instance (benchmarks).
func startBroadcasts(c *sim.Cluster, o Options, instance func(core.NodeID) core.InstanceID) {
	payload := broadcastPayload(o)
	members := c.Group.Members()
	if o.PayloadSize == 0 && c.Rng.IntN(2) == 0 {
		for _, s := range members {
			c.Input(s, core.Input{Instance: instance(s), Value: payload(c.Rng, s)})
		}
		return
	}
	s := members[c.Rng.IntN(len(members))]
	if byz := byzantineIDs(c); len(byz) > 0 && c.Rng.IntN(2) == 0 {
		s = byz[c.Rng.IntN(len(byz))]
	}
	c.Input(s, core.Input{Instance: instance(s), Value: payload(c.Rng, s)})
}

// twinInput gives the second copy of a Twins sender another payload.
func twinInput(_ *rand.Rand, in core.Input) core.Input {
	v, _ := in.Value.([]byte)
	return core.Input{Instance: in.Instance, Value: append(bytes.Clone(v), "-twin"...)}
}

// checkBroadcast checks the safety properties every broadcast shares, on
// the deliveries of correct replicas: integrity (at most one delivery per
// instance; a correct sender's instance delivers its input) and agreement
// (one outcome per instance). outcome renders a delivered value so that
// equal outcomes render equally; label names the agreement property.
func checkBroadcast(c *sim.Cluster, label string, outcome func(any) string) []string {
	var v []string
	byInst := map[core.InstanceID]map[core.NodeID][]any{}
	for _, id := range c.Correct() {
		for _, d := range c.Deliveries(id) {
			if byInst[d.Instance] == nil {
				byInst[d.Instance] = map[core.NodeID][]any{}
			}
			byInst[d.Instance][id] = append(byInst[d.Instance][id], d.Value)
		}
	}
	insts := make([]core.InstanceID, 0, len(byInst))
	for inst := range byInst {
		insts = append(insts, inst)
	}
	slices.Sort(insts) // violations in a deterministic order
	for _, inst := range insts {
		byReplica := byInst[inst]
		_, s, _ := inst.Last()
		sender := core.NodeID(s)
		var first string
		var firstBy core.NodeID
		for _, id := range c.Correct() {
			vals, ok := byReplica[id]
			if !ok {
				continue
			}
			if len(vals) > 1 {
				v = append(v, fmt.Sprintf("integrity: replica %d delivered %s %d times", id, inst, len(vals)))
			}
			got := outcome(vals[0])
			if firstBy == 0 {
				first, firstBy = got, id
			} else if got != first {
				v = append(v, fmt.Sprintf("%s: %s delivered %.40q at %d but %.40q at %d", label, inst, first, firstBy, got, id))
			}
			if c.IsCorrect(sender) {
				in := c.Inputs(sender)
				if len(in) == 0 || got != outcome(in[0].Value) {
					v = append(v, fmt.Sprintf("integrity: %d delivered %.40q for %s, not the correct sender's input", id, got, inst))
				}
			}
		}
	}
	return v
}

// broadcastTerminated is validity (every correct sender's broadcast is
// delivered by every correct replica) and, if totality is required, that
// every instance one correct replica delivered is delivered by all.
func broadcastTerminated(c *sim.Cluster, instance func(core.NodeID) core.InstanceID, totality bool) bool {
	delivered := map[core.InstanceID]int{}
	for _, id := range c.Correct() {
		seen := map[core.InstanceID]bool{}
		for _, d := range c.Deliveries(id) {
			if !seen[d.Instance] {
				seen[d.Instance] = true
				delivered[d.Instance]++
			}
		}
	}
	for _, s := range c.Correct() {
		if len(c.Inputs(s)) > 0 && delivered[instance(s)] != len(c.Correct()) {
			return false
		}
	}
	if totality {
		for _, k := range delivered {
			if k != len(c.Correct()) {
				return false
			}
		}
	}
	return true
}

// bytesOutcome renders a delivered []byte payload for checkBroadcast.
func bytesOutcome(v any) string {
	if b, ok := v.([]byte); ok {
		return "payload:" + string(b)
	}
	return fmt.Sprintf("unexpected %T", v)
}
