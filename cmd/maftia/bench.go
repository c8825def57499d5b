package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/maftia/maftia/client"
	"github.com/maftia/maftia/crypto/keys"
	"github.com/maftia/maftia/server"
)

// newBenchCmd is `maftia bench`: a closed- or open-loop load generator.
func newBenchCmd() *cobra.Command {
	var (
		clients, payload, replicas int
		duration, killAfter        time.Duration
		maxOps                     uint64
		rate                       float64
		config, keyDir             string
		batch                      int
		cpuProfile, csvPath, plot  string
		verbose, certify           bool
		configuration              string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load the key-value service (closed or open loop); prints throughput and latency",
		Long: `bench runs --clients clients (each with its own identity; half puts of
--payload bytes, half gets checked against the client's last write) for
--duration or --max-ops operations, against a local cluster it starts in
this process (--replicas, --configuration), or against a running cluster
(--config cluster.yaml --keys DIR holding client-<id>.key files).

Closed loop (default): every client keeps one request outstanding.
Open loop (--rate R): requests arrive at R per second whatever the service
does and are served by the next free client; latency counts from the
arrival, so queueing shows; arrivals that find all clients busy and the
queue full are shed and counted.

--kill-after D stops the local cluster's highest-numbered replica after D
and reports throughput and latency before and after. --csv and --plot write
per-second throughput and p50/p99 latency (CSV; PNG via gonum/plot).`,
		Example: `  maftia bench --clients 64 --duration 20s --payload 256
  maftia bench --replicas 7 --clients 128 --payload 1024
  maftia bench --rate 500 --clients 256 --kill-after 10s --duration 25s --plot bench.png`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			w := cmd.OutOrStdout()
			if clients < 1 || clients > 4096 {
				return fmt.Errorf("--clients %d: want 1..4096", clients)
			}
			if rate < 0 || payload < 0 || payload > 1<<20 {
				return fmt.Errorf("--rate %v, --payload %d: want rate ≥ 0 and payload ≤ 1 MiB", rate, payload)
			}
			if killAfter < 0 || (killAfter > 0 && killAfter >= duration) {
				return fmt.Errorf("--kill-after %s: want 0 < kill-after < duration (%s)", killAfter, duration)
			}
			if config != "" && (killAfter > 0 || replicas != 0) {
				return fmt.Errorf("--kill-after and --replicas apply to the local cluster only (not with --config)")
			}
			var cluster *keys.Cluster
			var cks []*keys.ClientPrivate
			var where string
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
				l, stopCluster, err := localClusterN("", cfg, replicas, clients, benchLogger(verbose), func(l *server.Local) { l.BatchSize = batch })
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
			loop := "closed loop"
			if rate > 0 {
				loop = fmt.Sprintf("open loop at %.0f req/s", rate)
			}
			if certify {
				loop += ", certified replies"
			}
			fmt.Fprintf(w, "maftia bench: n=%d f=%d, %s; %d clients, %s, payload %d B, %s, GOMAXPROCS=%d\n",
				cluster.N, cluster.F, where, clients, loop, payload, duration, runtime.GOMAXPROCS(0))
			if cpuProfile != "" {
				connectAll(ctx, cs) // handshakes before the profile, as before the timed run
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
			var killed uint32
			if killAfter > 0 {
				killed = cluster.Members[len(cluster.Members)-1].ID
				t := time.AfterFunc(killAfter, func() {
					if err := local.Stop(killed); err != nil {
						fmt.Fprintf(w, "\nbench: stopping replica %d: %v\n", killed, err)
					}
				})
				defer t.Stop()
			}
			c0 := localCounters(local)
			r := runLoad(ctx, cs, loadSpec{Duration: duration, MaxOps: maxOps, Payload: payload, Rate: rate, Certify: certify}, w, "load")
			c1 := localCounters(local)
			fmt.Fprintf(w, "ops %d  errors %d  wrong %d  shed %d  elapsed %.1fs\n", r.Ops, r.Errors, r.Wrong, r.Shed, r.Elapsed.Seconds())
			fmt.Fprintf(w, "throughput %.0f req/s  latency p50 %s  p99 %s\n", r.Throughput(),
				r.Percentile(50).Round(100*time.Microsecond), r.Percentile(99).Round(100*time.Microsecond))
			if local != nil && r.Ops > 0 && killAfter == 0 {
				fmt.Fprintf(w, "messages/request %.1f (replica to replica, all replicas)  TTCB calls/request %.1f\n",
					float64(c1.sent-c0.sent)/float64(r.Ops), float64(c1.calls-c0.calls)/float64(r.Ops))
				if b := c1.batches - c0.batches; b > 0 {
					fmt.Fprintf(w, "ordered batches %d (%.1f/s, %.0f requests each)", b, float64(b)/r.Elapsed.Seconds(), float64(r.Ops)/float64(b))
					if vb := c1.verifyBatches - c0.verifyBatches; vb > 0 {
						fmt.Fprintf(w, "; ingress signature checks in batches of %.1f on average", float64(c1.verifyReqs-c0.verifyReqs)/float64(vb))
					}
					fmt.Fprintln(w)
				}
			}
			if killAfter > 0 {
				reportKill(w, r, killAfter, killed)
			}
			if csvPath != "" {
				if err := writeBenchCSV(csvPath, r.PerSecond()); err != nil {
					return err
				}
				fmt.Fprintf(w, "per-second figures written to %s\n", csvPath)
			}
			if plot != "" {
				title := fmt.Sprintf("maftia bench: n=%d f=%d, %d clients, %s, %d B", cluster.N, cluster.F, clients, loop, payload)
				if err := writeBenchPlot(plot, title, r.PerSecond(), killAfter); err != nil {
					return err
				}
				fmt.Fprintf(w, "plot written to %s\n", plot)
			}
			if r.Wrong > 0 {
				return fmt.Errorf("bench: %d wrong answers", r.Wrong)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&clients, "clients", 32, "clients (identities); in a closed loop each keeps one request outstanding")
	f.IntVar(&payload, "payload", 256, "value size of puts, bytes")
	f.DurationVar(&duration, "duration", 10*time.Second, "run time")
	f.Uint64Var(&maxOps, "max-ops", 10_000_000, "stop after this many operations")
	f.Float64Var(&rate, "rate", 0, "open loop: requests per second offered (0: closed loop)")
	f.StringVar(&config, "config", "", "cluster file of a running cluster (default: start a local one)")
	f.StringVar(&keyDir, "keys", ".", "with --config: directory of the client-<id>.key files")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole process (replicas and clients) to this file")
	f.StringVar(&csvPath, "csv", "", "write per-second throughput and latency to this CSV file")
	f.StringVar(&plot, "plot", "", "write per-second throughput and latency to this PNG file")
	f.BoolVar(&certify, "certify", false, "ask for certified replies (the service's threshold signature on every result, combined and verified by the client)")
	f.BoolVar(&verbose, "verbose", false, "local cluster: replicas log warnings and errors to standard error")
	f.IntVar(&batch, "batch", 0, "local cluster: requests per replica per epoch (0: default 256)")
	f.IntVar(&replicas, "replicas", 0, "local cluster: number of replicas n (0: 4 for async, 3 for hybrid); f is the largest n tolerates")
	f.DurationVar(&killAfter, "kill-after", 0, "local cluster: stop the highest-numbered replica after this long (0: never)")
	f.StringVar(&configuration, "configuration", "async", "local cluster: async (n ≥ 3f+1) or hybrid (n ≥ 2f+1, one TTCB module per replica)")
	return cmd
}

// reportKill prints the run before and after the replica was stopped: the
// throughput ratio, and the worst per-second p99 right after the kill (a
// latency cliff would show there).
func reportKill(w io.Writer, r *loadResult, at time.Duration, id uint32) {
	before := r.Window(0, at)
	after := r.Window(at, r.Elapsed)
	line := func(name string, x *loadResult) {
		fmt.Fprintf(w, "  %-22s %7d ops  %7.0f req/s  p50 %-9s p99 %-9s errors %d\n", name, x.Ops, x.Throughput(),
			x.Percentile(50).Round(100*time.Microsecond), x.Percentile(99).Round(100*time.Microsecond), x.Errors)
	}
	fmt.Fprintf(w, "replica %d stopped at %s:\n", id, at)
	line("before", before)
	line("after", after)
	var worst time.Duration
	for _, s := range r.PerSecond() {
		if sec := time.Duration(s.Second) * time.Second; sec >= at-time.Second && sec < at+3*time.Second {
			worst = max(worst, s.P99)
		}
	}
	if before.Throughput() > 0 {
		fmt.Fprintf(w, "  after/before throughput %.0f%%  worst per-second p99 around the kill %s\n",
			100*after.Throughput()/before.Throughput(), worst.Round(100*time.Microsecond))
	}
}

func writeBenchCSV(path string, secs []secondStats) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	cw := csv.NewWriter(f)
	_ = cw.Write([]string{"second", "ops", "errors", "throughput_per_s", "p50_ms", "p99_ms"})
	for _, s := range secs {
		_ = cw.Write([]string{strconv.Itoa(s.Second), strconv.FormatUint(s.Ops, 10), strconv.FormatUint(s.Errors, 10),
			strconv.FormatFloat(s.ThroughputPerSec, 'f', 1, 64),
			strconv.FormatFloat(float64(s.P50)/1e6, 'f', 3, 64), strconv.FormatFloat(float64(s.P99)/1e6, 'f', 3, 64)})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func benchLogger(verbose bool) *slog.Logger {
	if !verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// localCounters sums the replicas' sent messages, service (TTCB) calls and
// ingress verification batches, and takes the highest position.
func localCounters(l *server.Local) (c benchCounters) {
	if l == nil {
		return c
	}
	for _, m := range l.Cluster.Members {
		if s := l.Server(m.ID); s != nil {
			st := s.Status().Counters
			c.sent += st.Sent
			c.calls += st.Requests
			c.batches = max(c.batches, s.Position())
			vb, vr := s.VerifyStats()
			c.verifyBatches += vb
			c.verifyReqs += vr
		}
	}
	return c
}

// benchCounters are the local cluster's counters bench reports on.
type benchCounters struct {
	sent, calls, batches, verifyBatches, verifyReqs uint64
}
