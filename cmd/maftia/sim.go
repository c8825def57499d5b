package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/suites"
)

func newSimCmd() *cobra.Command {
	var (
		n, f, seeds, payload, traceLines int
		first                            uint64
		byz, broken                      string
		trace                            bool
	)
	cmd := &cobra.Command{
		Use:   "sim PROTOCOL",
		Short: "Run a protocol in the deterministic simulator against Byzantine replicas",
		Long: `Run a protocol in the deterministic simulator: n replicas in one process, f of
them Byzantine, an adversarial scheduler, invariant checks after every run.
Protocols: ` + strings.Join(suites.Names(), ", ") + `.
Byzantine behaviours: silent, crash:K, equivocate, wrong, replay, garbage, twins,
and each protocol's own attacks (avid: inconsistent-fragments; cbc: double-certify).
Every run is determined by its seed: --seed S --seeds 1 --trace replays one.`,
		Example: "  maftia sim rbc --n 7 --f 2 --byzantine equivocate,silent --seeds 500",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			suite, err := suites.Get(args[0], suites.Options{Broken: broken, PayloadSize: payload})
			if err != nil {
				return err
			}
			var behaviours []sim.Behaviour
			for _, name := range strings.Split(byz, ",") {
				if name = strings.TrimSpace(name); name == "" {
					continue
				}
				if i := slices.IndexFunc(suite.Attacks, func(a sim.Behaviour) bool { return a.Name() == name }); i >= 0 {
					behaviours = append(behaviours, suite.Attacks[i])
					continue
				}
				b, err := sim.ParseBehaviour(name)
				if err != nil {
					return err
				}
				behaviours = append(behaviours, b)
			}
			if len(behaviours) == 0 {
				behaviours = append(sim.AllBehaviours(), suite.Attacks...)
			}
			if seeds < 1 {
				return fmt.Errorf("--seeds must be at least 1")
			}
			cp := &sim.Campaign{Suite: suite, Sizes: []sim.Size{{N: n, F: f}}, Behaviours: behaviours,
				Seeds: seeds, FirstSeed: first}
			start := time.Now()
			sum := cp.Run()
			out := cmd.OutOrStdout()
			printSimSummary(out, cp, sum, time.Since(start))
			if trace {
				cfg := cp.ConfigFor(first)
				cfg.Trace = true
				res := sim.Run(suite, cfg)
				fmt.Fprintf(out, "\ntrace of seed %d:\n%s%s\n", first, res.Trace, res)
			}
			if sum.Violations > 0 {
				fmt.Fprintln(out, sum.Report(traceLines))
				return fmt.Errorf("%d of %d schedules violated %s's properties", sum.Violations, sum.Schedules, suite.Name)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&n, "n", 4, "number of replicas")
	fl.IntVar(&f, "f", 1, "number of Byzantine replicas")
	fl.IntVar(&seeds, "seeds", 100, "number of schedules (seeds) to run")
	fl.Uint64Var(&first, "seed", 0, "first seed")
	fl.StringVar(&byz, "byzantine", "", "comma-separated Byzantine behaviours (default: all)")
	fl.StringVar(&broken, "broken", "", "run a deliberately broken variant (rbc: deliver-on-first-echo; avid: skip-reencode; cbc: certify-with-f)")
	fl.IntVar(&payload, "payload", 0, "payload size in bytes (0: short strings)")
	fl.BoolVar(&trace, "trace", false, "print the full trace of the first seed")
	fl.IntVar(&traceLines, "trace-lines", 40, "trace lines shown per failing seed")
	return cmd
}

func printSimSummary(w io.Writer, cp *sim.Campaign, s *sim.Summary, took time.Duration) {
	size := cp.Sizes[0]
	var names []string
	for _, b := range cp.Behaviours {
		names = append(names, b.Name())
	}
	per := func(x uint64) float64 { return float64(x) / float64(max(s.Schedules, 1)) }
	fmt.Fprintf(w, "protocol      %s (n=%d, f=%d)\n", s.Suite, size.N, size.F)
	fmt.Fprintf(w, "byzantine     f=%d replicas per run, behaviours: %s\n", size.F, strings.Join(names, ", "))
	fmt.Fprintf(w, "schedules     %d (seeds %d..%d) in %s\n", s.Schedules, cp.FirstSeed, cp.FirstSeed+uint64(s.Schedules)-1, took.Round(time.Millisecond))
	fmt.Fprintf(w, "deliveries    %d (%.1f per run)\n", s.Deliveries, per(s.Deliveries))
	fmt.Fprintf(w, "messages      %d (%.1f per run, %.0f bytes per run)\n", s.Messages, per(s.Messages), per(s.Bytes))
	fmt.Fprintf(w, "steps         %d (%.1f per run), at most %d messages in flight\n", s.Steps, per(s.Steps), s.MaxPending)
	if s.Units > 0 {
		fmt.Fprintf(w, "throughput    %d requests delivered: %.3f requests per simulated step, %.1f messages and %.0f bytes per request\n",
			s.Units, float64(s.Units)/float64(max(s.Steps, 1)), float64(s.Messages)/float64(s.Units), float64(s.Bytes)/float64(s.Units))
	}
	fmt.Fprintf(w, "violations    %d\n", s.Violations)
	fmt.Fprintf(w, "%d schedules, %d violations\n", s.Schedules, s.Violations)
}
