package abc_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
	"github.com/maftia/maftia/wire"
)

// A correct replica that crashes at a random point and restarts from its
// records (ATTACKS.md row 1) never speaks again in an epoch it spoke in
// before the crash (so it cannot contradict itself there: docs/adr/0008),
// never delivers anything that disagrees with the others, is accused by
// nobody, and catches up with every request while clients keep writing.
// n = 4 with no other fault, and n = 7 with one Byzantine replica of a
// random behaviour besides the restarted one.
func TestRestartedReplicaSitsOutEpochsItSpokeIn(t *testing.T) {
	if v := restartCampaign(t, "", simtest.Seeds(30)); v != "" {
		t.Fatal(v)
	}
}

// The restart check has teeth: a replica that ignores its mark (rejoins
// the epochs in flight with fresh state, as abc did before ADR 0008) is
// caught speaking again in an epoch it spoke in before its crash.
func TestSimulatorCatchesRestartAmnesia(t *testing.T) {
	v := restartCampaign(t, "amnesia", 30)
	if !strings.Contains(v, "amnesia") {
		t.Fatalf("a replica restarting without its mark passed (%q)", v)
	}
	t.Logf("caught: %s", v)
}

// tapCore records the epochs a replica sends in, per incarnation.
type tapCore struct {
	inner core.Protocol
	sent  map[uint64]bool
}

func (t *tapCore) Step(ev core.Event, out *core.Output) error {
	from := len(out.Sends)
	err := t.inner.Step(ev, out)
	for _, s := range out.Sends[from:] {
		if name, e, ok := s.Instance.Prefix(suites.ABCRoot.Depth() + 1).Last(); ok && name == "e" && s.Instance != suites.ABCRoot {
			t.sent[e] = true
		}
	}
	return err
}

func restartCampaign(t *testing.T, broken string, seeds int) string {
	runs, spoke, satOut := 0, 0, 0
	for _, size := range []sim.Size{{N: 4, F: 1}, {N: 7, F: 2}} {
		g := core.MustGroup(size.N, size.F, core.Async)
		for seed := uint64(0); seed < uint64(seeds); seed++ {
			runs++
			v, before, mute := restartRun(g, broken, seed)
			if v != "" {
				return fmt.Sprintf("n=%d seed %d: %s", size.N, seed, v)
			}
			if before > 0 {
				spoke++
			}
			satOut += int(mute)
		}
	}
	t.Logf("%d schedules with a crash and restart (the replica had spoken in some epoch before its crash in %d; %d epochs below recovered marks in all), 0 violations", runs, spoke, satOut)
	return ""
}

// restartRun returns the verdict, how many epochs the victim spoke in
// before its crash, and its recovered mark.
func restartRun(g core.Group, broken string, seed uint64) (verdict string, spoke int, mute uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x72657374))
	victim := core.NodeID(1 + rng.IntN(g.N()))
	byz := map[core.NodeID]sim.Behaviour{}
	if g.F() > 1 {
		s := suites.ABC(suites.Options{})
		bs := append(sim.AllBehaviours(), s.Attacks...)
		other := core.NodeID(1 + (int(victim)+rng.IntN(g.N()-1))%g.N())
		byz[other] = bs[rng.IntN(len(bs))]
	}
	s := suites.ABC(suites.Options{Broken: broken})
	s.Requests = 2 * g.N()
	// Tap the victim's sends: before the crash and after the restart.
	var incarnations []*tapCore
	newReplica, recover := s.Suite.NewReplica, s.Suite.Recover
	s.Suite.NewReplica = func(id core.NodeID, g core.Group) (core.Protocol, error) {
		p, err := newReplica(id, g)
		if err != nil || id != victim {
			return p, err
		}
		tc := &tapCore{inner: p, sent: map[uint64]bool{}}
		incarnations = append(incarnations, tc)
		return tc, nil
	}
	s.Suite.Recover = func(id core.NodeID, g core.Group, recs []core.Record) (core.Protocol, error) {
		p, err := recover(id, g, recs)
		if err != nil {
			return nil, err
		}
		tc := &tapCore{inner: p, sent: map[uint64]bool{}}
		incarnations = append(incarnations, tc)
		return tc, nil
	}
	c, err := sim.NewCluster(s.Suite, g, seed, byz, false)
	if err != nil {
		return err.Error(), 0, 0
	}
	deliver := func(k int) {
		for i := 0; i < k && len(c.Pending()) > 0; i++ {
			c.Deliver(rng.IntN(len(c.Pending())))
		}
	}
	submit := func(tag string, k int) {
		for i := range k {
			req := suites.ClientRequestForTest(fmt.Sprintf("%s-%d-%d", tag, seed, i))
			for _, id := range c.Correct() {
				c.Input(id, core.Input{Instance: suites.ABCRoot, Value: req})
			}
		}
	}
	s.Start(c)
	deliver(rng.IntN(6000))
	c.Crash(victim)
	deliver(rng.IntN(3000))
	restartedAt := len(c.Deliveries(victim))
	if err := c.Restart(victim); err != nil {
		return err.Error(), 0, 0
	}
	submit("b", 1+rng.IntN(4))
	// Clients keep writing (one request per wave) until the restarted
	// replica has caught up: it learns the epochs it sat out by FETCH,
	// which needs the others to move on.
	for wave := 0; wave < 12; wave++ {
		deliver(400_000)
		if caughtUp(c, victim, restartedAt) {
			break
		}
		submit(fmt.Sprintf("w%d", wave), 1)
	}
	_, mute = s.Core(victim).Mark()
	return restartVerdict(c, victim, restartedAt, incarnations), len(incarnations[0].sent), mute
}

// logs returns each correct replica's request sequence per incarnation
// (the victim's deliveries are split at its restart).
func logs(c *sim.Cluster, victim core.NodeID, restartedAt int) (map[string][][]byte, []string) {
	var v []string
	out := map[string][][]byte{}
	for _, id := range c.Correct() {
		ds := c.Deliveries(id)
		parts := map[string][]sim.Delivered{fmt.Sprint(id): ds}
		if id == victim {
			parts = map[string][]sim.Delivered{fmt.Sprintf("%d before its crash", id): ds[:restartedAt], fmt.Sprintf("%d after its restart", id): ds[restartedAt:]}
		}
		for name, part := range parts {
			var log [][]byte
			var last uint64
			seen := map[string]bool{}
			for _, d := range part {
				b, ok := d.Value.(*wire.Batch)
				if !ok {
					continue
				}
				if b.Seq != last+1 {
					v = append(v, fmt.Sprintf("total order: replica %s delivered batch %d after %d", name, b.Seq, last))
				}
				last = b.Seq
				for _, r := range b.Requests {
					if seen[string(r)] {
						v = append(v, fmt.Sprintf("integrity: replica %s delivered %q twice", name, r))
					}
					seen[string(r)] = true
				}
				log = append(log, b.Requests...)
			}
			out[name] = log
		}
	}
	return out, v
}

// caughtUp: every correct replica (the victim in its new incarnation)
// delivered the same requests, including every request the others hold.
func caughtUp(c *sim.Cluster, victim core.NodeID, restartedAt int) bool {
	ls, _ := logs(c, victim, restartedAt)
	ref := ls[fmt.Sprintf("%d after its restart", victim)]
	for name, l := range ls {
		if strings.Contains(name, "before") {
			continue
		}
		if len(l) != len(ref) {
			return false
		}
	}
	holders := map[string]int{}
	for _, id := range c.Correct() {
		if id == victim {
			continue
		}
		for _, in := range c.Inputs(id) {
			if r, ok := in.Value.([]byte); ok {
				holders[string(r)]++
			}
		}
	}
	have := map[string]bool{}
	for _, r := range ref {
		have[string(r)] = true
	}
	for r, h := range holders {
		if h > c.Group.F() && !have[r] {
			return false
		}
	}
	return true
}

func restartVerdict(c *sim.Cluster, victim core.NodeID, restartedAt int, inc []*tapCore) string {
	if err := c.Err(); err != nil {
		return err.Error()
	}
	if len(inc) != 2 {
		return fmt.Sprintf("%d incarnations of the victim", len(inc))
	}
	var spoke []uint64
	for e := range inc[1].sent {
		if inc[0].sent[e] {
			spoke = append(spoke, e)
		}
	}
	if len(spoke) > 0 {
		slices.Sort(spoke)
		return fmt.Sprintf("amnesia: replica %d spoke again in epochs %v after restarting", victim, spoke)
	}
	ls, v := logs(c, victim, restartedAt)
	var longest [][]byte
	for _, l := range ls { // the longest log: every other one must be a prefix of it
		if len(l) > len(longest) {
			longest = l
		}
	}
	for name, l := range ls {
		for i := range l {
			if !bytes.Equal(l[i], longest[i]) {
				v = append(v, fmt.Sprintf("agreement: position %d differs at replica %s", i, name))
				break
			}
		}
	}
	if len(v) > 0 {
		return strings.Join(v, "; ")
	}
	for _, e := range c.Evidence() {
		if c.IsCorrect(e.Evidence.Accused) {
			return fmt.Sprintf("correct replica accused: %+v", e)
		}
	}
	if !caughtUp(c, victim, restartedAt) {
		return fmt.Sprintf("replica %d did not catch up after its restart", victim)
	}
	return ""
}
