package simtest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/suites"
)

// Script drives a cluster from a datadriven golden file, in the style of
// etcd-io/raft's interaction tests. Commands:
//
//	add-nodes n=4 f=1 [byz=(4:equivocate,3:silent)] [seed=1]
//	                                (behaviours: sim.ParseBehaviour's or the
//	                                suite's Attacks, by name)
//	input <id> v=<value>            hand the protocol's input to a replica
//	deliver [type=ECHO] [from=(1,2)] [to=(3)] [drop=(3)]
//	                                deliver (or drop, for drop's recipients)
//	                                the packets pending now that match
//	crash <id>
//	tick [n=K]                      advance abstract time K ticks (default 1),
//	                                firing due timers and service (TTCB) replies
//	stabilize                       deliver everything until quiescent
//	status                          deliveries and evidence per replica
//
// Each command prints the trace lines it caused.
type Script struct {
	Suite func() *sim.Suite
	// Input builds the input event for `input <id> v=...`.
	Input func(id core.NodeID, value string) core.Input

	c    *sim.Cluster
	mark int
}

// Run executes the golden file at path.
func (s *Script) Run(t *testing.T, path string) {
	datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
		out, err := s.exec(td)
		if err != nil {
			return "error: " + err.Error() + "\n"
		}
		return out
	})
}

func ids(td *datadriven.TestData, key string) (map[core.NodeID]bool, error) {
	set := map[core.NodeID]bool{}
	for _, a := range td.CmdArgs {
		if a.Key != key {
			continue
		}
		for _, v := range a.Vals {
			for _, part := range strings.Split(v, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(part))
				if err != nil {
					return nil, fmt.Errorf("%s: bad replica %q", key, part)
				}
				set[core.NodeID(n)] = true
			}
		}
	}
	return set, nil
}

func strArg(td *datadriven.TestData, key string) string {
	for _, a := range td.CmdArgs {
		if a.Key == key && len(a.Vals) > 0 {
			return strings.Join(a.Vals, ",")
		}
	}
	return ""
}

func intArg(td *datadriven.TestData, key string, def int) (int, error) {
	for _, a := range td.CmdArgs {
		if a.Key == key && len(a.Vals) == 1 {
			return strconv.Atoi(a.Vals[0])
		}
	}
	return def, nil
}

func (s *Script) exec(td *datadriven.TestData) (string, error) {
	if td.Cmd != "add-nodes" && s.c == nil {
		return "", fmt.Errorf("add-nodes first")
	}
	switch td.Cmd {
	case "add-nodes":
		n, err := intArg(td, "n", 4)
		if err != nil {
			return "", err
		}
		f, err := intArg(td, "f", (n-1)/3)
		if err != nil {
			return "", err
		}
		seed, err := intArg(td, "seed", 1)
		if err != nil {
			return "", err
		}
		suite := s.Suite()
		byz := map[core.NodeID]sim.Behaviour{}
		for _, a := range td.CmdArgs {
			if a.Key != "byz" {
				continue
			}
			for _, v := range a.Vals {
				for _, part := range strings.Split(v, ",") {
					id, name, ok := strings.Cut(part, ":")
					n, err := strconv.Atoi(id)
					if !ok || err != nil {
						return "", fmt.Errorf("byz: want id:behaviour, got %q", part)
					}
					if i := slices.IndexFunc(suite.Attacks, func(b sim.Behaviour) bool { return b.Name() == name }); i >= 0 {
						byz[core.NodeID(n)] = suite.Attacks[i]
						continue
					}
					b, err := sim.ParseBehaviour(name)
					if err != nil {
						return "", err
					}
					byz[core.NodeID(n)] = b
				}
			}
		}
		g, err := core.NewGroup(n, f, suite.Resilience)
		if err != nil {
			return "", err
		}
		if s.c, err = sim.NewCluster(suite, g, uint64(seed), byz, true); err != nil {
			return "", err
		}
		s.mark = 0
		return fmt.Sprintf("%s %s byz=%s\n", suite.Name, g, sim.BehaviourNames(byz)), nil
	case "input":
		if len(td.CmdArgs) < 1 {
			return "", fmt.Errorf("input <id> v=<value>")
		}
		id, err := strconv.Atoi(td.CmdArgs[0].Key)
		if err != nil || !s.c.Group.Contains(core.NodeID(id)) {
			return "", fmt.Errorf("input: bad replica %q", td.CmdArgs[0].Key)
		}
		v := strArg(td, "v")
		s.c.Input(core.NodeID(id), s.Input(core.NodeID(id), v))
	case "deliver":
		kind := strArg(td, "type")
		from, err := ids(td, "from")
		if err != nil {
			return "", err
		}
		to, err := ids(td, "to")
		if err != nil {
			return "", err
		}
		drop, err := ids(td, "drop")
		if err != nil {
			return "", err
		}
		var batch []uint64
		for _, p := range s.c.Pending() {
			if (len(from) == 0 || from[p.From]) && (len(to) == 0 || to[p.To]) &&
				(kind == "" || strings.HasPrefix(s.c.Suite.Describe(p.Instance, p.Payload), kind)) {
				batch = append(batch, p.ID)
			}
		}
		for _, pid := range batch {
			i := slices.IndexFunc(s.c.Pending(), func(p *sim.Packet) bool { return p.ID == pid })
			if drop[s.c.Pending()[i].To] {
				s.c.Drop(i)
			} else {
				s.c.Deliver(i)
			}
		}
	case "crash":
		if len(td.CmdArgs) != 1 {
			return "", fmt.Errorf("crash <id>")
		}
		id, err := strconv.Atoi(td.CmdArgs[0].Key)
		if err != nil || !s.c.Group.Contains(core.NodeID(id)) {
			return "", fmt.Errorf("crash: bad replica %q", td.CmdArgs[0].Key)
		}
		s.c.Crash(core.NodeID(id))
	case "tick":
		k, err := intArg(td, "n", 1)
		if err != nil || k < 0 {
			return "", fmt.Errorf("tick n=<ticks>")
		}
		for i := 0; i < k; i++ {
			s.c.Tick()
		}
	case "stabilize":
		for i := 0; len(s.c.Pending()) > 0; i++ {
			if i > 1_000_000 {
				return "", fmt.Errorf("stabilize: no quiescence")
			}
			s.c.Deliver(0)
		}
	case "status":
		var b strings.Builder
		for _, id := range s.c.Group.Members() {
			fmt.Fprintf(&b, "replica %d", id)
			if !s.c.IsCorrect(id) {
				b.WriteString(" (byzantine)")
			}
			if s.c.Crashed(id) {
				b.WriteString(" (crashed)")
			}
			b.WriteString(":")
			for _, d := range s.c.Deliveries(id) {
				fmt.Fprintf(&b, " %s=%v", d.Instance, render(d.Value))
			}
			b.WriteString("\n")
		}
		for _, e := range s.c.Evidence() {
			fmt.Fprintf(&b, "evidence by %d against %d: %s (%s)\n", e.By, e.Accused, e.Kind, e.Detail)
		}
		return b.String(), nil
	default:
		return "", fmt.Errorf("unknown command %q", td.Cmd)
	}
	return s.newTrace(), nil
}

func (s *Script) newTrace() string {
	tr := s.c.Trace()
	out := tr[s.mark:]
	s.mark = len(tr)
	if out == "" {
		return "ok\n"
	}
	return out
}

func render(v any) string {
	if b, ok := v.([]byte); ok {
		return strconv.Quote(string(b))
	}
	return sim.DescribeValue(v)
}

// RunBroadcastScripts runs every golden file under testdata against the
// registered broadcast suite proto, whose instance for sender s is
// "<proto>:<s>" and whose input is the value's bytes (rbc, avid, cbc).
func RunBroadcastScripts(t *testing.T, proto string) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := &Script{
			Suite: func() *sim.Suite {
				su, err := suites.Get(proto, suites.Options{})
				if err != nil {
					t.Fatal(err)
				}
				return su
			},
			Input: func(id core.NodeID, v string) core.Input {
				return core.Input{Instance: core.RootN(proto, uint64(id)), Value: []byte(v)}
			},
		}
		s.Run(t, path)
	})
}
