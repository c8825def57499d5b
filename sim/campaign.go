package sim

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/maftia/maftia/core"
)

// Size is a group size to simulate.
type Size struct{ N, F int }

// Campaign runs a suite over many seeds, group sizes and Byzantine
// behaviours. Seed s uses size Sizes[s mod len] and, for its f Byzantine
// replicas (chosen at random), either one behaviour from Behaviours for
// all of them or a random mix.
type Campaign struct {
	Suite       *Suite
	Sizes       []Size
	Behaviours  []Behaviour
	Seeds       int
	FirstSeed   uint64
	SafetySteps int
	// KeepFailures bounds how many failing results (with traces) are kept.
	KeepFailures int
	// NewSuite, if set, builds a fresh Suite value per worker so that
	// seeds run in parallel on Workers goroutines (suites that keep
	// per-run state in the Suite value must not share it). Results are
	// aggregated in seed order, so the summary does not depend on timing.
	NewSuite func() *Suite
	Workers  int
}

// Summary is the outcome of a campaign.
type Summary struct {
	Suite      string
	Schedules  int
	Violations int
	Failures   []*Result
	Steps      uint64
	Messages   uint64
	Bytes      uint64
	Deliveries uint64
	Units      uint64
	MaxPending int
	Holds      int
	Partitions int
	PerBehav   map[string]int
}

func (s *Summary) String() string {
	return fmt.Sprintf("%s: %d schedules, %d violations", s.Suite, s.Schedules, s.Violations)
}

// ConfigFor derives the run configuration of one seed.
func (cp *Campaign) ConfigFor(seed uint64) Config {
	size := cp.Sizes[int(seed%uint64(len(cp.Sizes)))]
	rng := rand.New(rand.NewPCG(seed, 0xb42))
	byz := map[core.NodeID]Behaviour{}
	ids := rng.Perm(size.N)
	mixed := len(cp.Behaviours) > 1 && rng.IntN(4) == 0
	pick := cp.Behaviours[int((seed/uint64(len(cp.Sizes)))%uint64(len(cp.Behaviours)))]
	for i := 0; i < size.F; i++ {
		b := pick
		if mixed {
			b = cp.Behaviours[rng.IntN(len(cp.Behaviours))]
		}
		byz[core.NodeID(ids[i]+1)] = b
	}
	return Config{N: size.N, F: size.F, Seed: seed, Byzantine: byz, SafetySteps: cp.SafetySteps}
}

// Run executes the campaign.
func (cp *Campaign) Run() *Summary {
	if cp.KeepFailures == 0 {
		cp.KeepFailures = 3
	}
	sum := &Summary{Suite: cp.Suite.Name, PerBehav: map[string]int{}}
	results := cp.runAll()
	for i := 0; i < cp.Seeds; i++ {
		cfg := cp.ConfigFor(cp.FirstSeed + uint64(i))
		res := results[i]
		sum.Schedules++
		sum.Steps += res.Stats.Steps
		sum.Messages += res.Stats.Messages
		sum.Bytes += res.Stats.Bytes
		sum.Deliveries += res.Stats.Deliveries
		sum.Units += uint64(res.Units)
		sum.Holds += res.Stats.Holds
		sum.Partitions += res.Stats.Partitions
		if res.Stats.MaxPending > sum.MaxPending {
			sum.MaxPending = res.Stats.MaxPending
		}
		for _, b := range cfg.Byzantine {
			sum.PerBehav[b.Name()]++
		}
		if !res.OK() {
			sum.Violations++
			if len(sum.Failures) < cp.KeepFailures {
				cfg.Trace = true
				sum.Failures = append(sum.Failures, Run(cp.Suite, cfg))
			}
		}
	}
	return sum
}

// runAll runs every seed, in parallel when the campaign can build one
// suite per worker. Only the summary fields of each result are kept.
func (cp *Campaign) runAll() []*Result {
	results := make([]*Result, cp.Seeds)
	slim := func(r *Result) *Result { r.Cluster, r.Trace = nil, ""; return r }
	workers := cp.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if cp.NewSuite == nil || workers == 1 {
		for i := range results {
			results[i] = slim(Run(cp.Suite, cp.ConfigFor(cp.FirstSeed+uint64(i))))
		}
		return results
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		suite := cp.NewSuite()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cp.Seeds {
					return
				}
				results[i] = slim(Run(suite, cp.ConfigFor(cp.FirstSeed+uint64(i))))
			}
		}()
	}
	wg.Wait()
	return results
}

// Report renders the summary with each failing seed and its trace tail.
func (s *Summary) Report(traceLines int) string {
	var b strings.Builder
	b.WriteString(s.String())
	names := make([]string, 0, len(s.PerBehav))
	for n := range s.PerBehav {
		names = append(names, n)
	}
	sort.Strings(names)
	b.WriteString("\n  Byzantine replicas simulated per behaviour:")
	for _, n := range names {
		fmt.Fprintf(&b, " %s=%d", n, s.PerBehav[n])
	}
	for _, f := range s.Failures {
		fmt.Fprintf(&b, "\n  FAILED %s", f)
		lines := strings.Split(strings.TrimRight(f.Trace, "\n"), "\n")
		if traceLines > 0 && len(lines) > traceLines {
			fmt.Fprintf(&b, "\n  … trace: last %d of %d lines", traceLines, len(lines))
			lines = lines[len(lines)-traceLines:]
		}
		for _, l := range lines {
			b.WriteString("\n    " + l)
		}
	}
	return b.String()
}
