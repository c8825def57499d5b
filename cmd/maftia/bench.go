package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/maftia/maftia/client"
	"github.com/maftia/maftia/crypto/keys"
	"github.com/maftia/maftia/server"
)

// newBenchCmd is `maftia bench`: a closed-loop load generator.
func newBenchCmd() *cobra.Command {
	var (
		clients, payload int
		duration         time.Duration
		maxOps           uint64
		config, keyDir   string
		batch            int
		cpuProfile       string
		verbose          bool
		configuration    string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Closed-loop load against the key-value service; prints throughput and latency",
		Long: `bench runs --clients closed-loop clients (each with its own identity, one
request outstanding; half puts of --payload bytes, half gets checked against
the client's last write) for --duration or --max-ops operations, against a
local 4-replica cluster it starts in this process, or against a running
cluster (--config cluster.yaml --keys DIR holding client-<id>.key files).`,
		Example: "  maftia bench --clients 64 --duration 20s --payload 256",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			w := cmd.OutOrStdout()
			if clients < 1 || clients > 4096 {
				return fmt.Errorf("--clients %d: want 1..4096", clients)
			}
			var cluster *keys.Cluster
			var cks []*keys.ClientPrivate
			where := "local 4-replica cluster in this process"
			var local *server.Local
			if config != "" {
				var err error
				if cluster, err = keys.LoadCluster(config); err != nil {
					return err
				}
				for _, cl := range cluster.Clients {
					if len(cks) == clients {
						break
					}
					k, err := keys.LoadClientPrivate(filepath.Join(keyDir, keys.ClientKeyFile(cl.ID)), cluster)
					if err != nil {
						continue
					}
					cks = append(cks, k)
				}
				if len(cks) < clients {
					return fmt.Errorf("found %d client key files in %s, need --clients %d", len(cks), keyDir, clients)
				}
				where = config
			} else {
				cfg, _, err := demoConfiguration(configuration)
				if err != nil {
					return err
				}
				l, stopCluster, err := localClusterConfig("", cfg, clients, benchLogger(verbose), func(l *server.Local) { l.BatchSize = batch })
				if err != nil {
					return err
				}
				defer stopCluster()
				cluster, cks, local = l.Cluster, l.Clients, l
				where = fmt.Sprintf("local %s cluster in this process", cfg)
				if cfg == keys.Hybrid {
					where += fmt.Sprintf(" (TTCB T_TBA %s, window %s)", l.Cluster.Hybrid.TBA, l.Cluster.Hybrid.Window)
					// Epoch 0 starts at the schedule's start.
					time.Sleep(time.Until(l.Cluster.Hybrid.Start))
				}
			}
			cs := make([]*client.Client, clients)
			for i := range cs {
				var err error
				if cs[i], err = client.Dial(cluster, cks[i], client.Options{Retry: time.Second}); err != nil {
					return err
				}
				defer cs[i].Close()
			}
			fmt.Fprintf(w, "maftia bench: n=%d f=%d, %s; %d clients, payload %d B, %s, GOMAXPROCS=%d\n",
				cluster.N, cluster.F, where, clients, payload, duration, runtime.GOMAXPROCS(0))
			if cpuProfile != "" {
				pf, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer pf.Close()
				if err := pprof.StartCPUProfile(pf); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			sent0, calls0 := localCounters(local)
			r := runLoad(ctx, cs, duration, maxOps, payload, w, "load")
			sent1, calls1 := localCounters(local)
			fmt.Fprintf(w, "ops %d  errors %d  wrong %d  elapsed %.1fs\n", r.Ops, r.Errors, r.Wrong, r.Elapsed.Seconds())
			fmt.Fprintf(w, "throughput %.0f req/s  latency p50 %s  p99 %s\n", r.Throughput(),
				r.Percentile(50).Round(100*time.Microsecond), r.Percentile(99).Round(100*time.Microsecond))
			if local != nil && r.Ops > 0 {
				fmt.Fprintf(w, "messages/request %.1f (replica to replica, all replicas)  TTCB calls/request %.1f\n",
					float64(sent1-sent0)/float64(r.Ops), float64(calls1-calls0)/float64(r.Ops))
			}
			if r.Wrong > 0 {
				return fmt.Errorf("bench: %d wrong answers", r.Wrong)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&clients, "clients", 32, "closed-loop clients (identities)")
	f.IntVar(&payload, "payload", 256, "value size of puts, bytes")
	f.DurationVar(&duration, "duration", 10*time.Second, "run time")
	f.Uint64Var(&maxOps, "max-ops", 10_000_000, "stop after this many operations")
	f.StringVar(&config, "config", "", "cluster file of a running cluster (default: start a local one)")
	f.StringVar(&keyDir, "keys", ".", "with --config: directory of the client-<id>.key files")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole process (replicas and clients) to this file")
	f.BoolVar(&verbose, "verbose", false, "local cluster: replicas log warnings and errors to standard error")
	f.IntVar(&batch, "batch", 0, "local cluster: requests per replica per epoch (0: default 256)")
	f.StringVar(&configuration, "configuration", "async", "local cluster: async (n=4) or hybrid (n=3 with 3 TTCB modules)")
	return cmd
}

func benchLogger(verbose bool) *slog.Logger {
	if !verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// localCounters sums the replicas' sent messages and service (TTCB) calls.
func localCounters(l *server.Local) (sent, calls uint64) {
	if l == nil {
		return 0, 0
	}
	for _, m := range l.Cluster.Members {
		if s := l.Server(m.ID); s != nil {
			c := s.Status().Counters
			sent += c.Sent
			calls += c.Requests
		}
	}
	return sent, calls
}
