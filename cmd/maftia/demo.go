package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/maftia/maftia/apps/kv"
	"github.com/maftia/maftia/client"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/keys"
	"github.com/maftia/maftia/server"
	"github.com/maftia/maftia/smr"
	"github.com/maftia/maftia/wire"
)

type demoOptions struct {
	config    string
	attack    string
	byzantine uint32
	clients   int
	phase     time.Duration
	payload   int
	keep      bool
	verbose   bool
}

// newDemoCmd is `maftia demo`: a 4-replica cluster in this process, a
// client workload, then one Byzantine replica, and a summary.
func newDemoCmd() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a local 4-replica cluster, a workload, then a Byzantine replica; print a summary",
		Long: `demo generates a key set in a temporary directory, starts a 4-replica
(f=1) cluster of the intrusion-tolerant key-value service on 127.0.0.1 (real
sockets, real TLS, one process), and runs a closed-loop client workload in
which every read is checked against the value the client last wrote.
It then turns one replica Byzantine (--attack) and runs the workload again:
the service keeps answering correctly, and the attack is detected:

  invalid-shares  the replica sends invalid threshold-signature shares; correct
                  replicas record InvalidProof evidence against it (/status)
  corrupt-state   the replica signs wrong results; clients accept only f+1
                  matching replies and keep its signed wrong replies as proof
  silent          the replica sends nothing; not provable, but the service
                  answers from the other three

With --config hybrid the same service runs on 3 replicas (f=1), ordered by
the hybrid engine on top of 3 TTCB modules (one per replica, on a loopback
control network); invalid-shares and equivocate then forge the Byzantine
replica's batch proposals, which correct replicas refuse and report.

It ends with a summary (operations, throughput, latency p50/p99, faults
detected) and exits 0 if every check passed.`,
		Example: "  go run ./cmd/maftia demo\n  go run ./cmd/maftia demo --attack silent\n  go run ./cmd/maftia demo --config hybrid",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.attack, "attack", "invalid-shares", "Byzantine behaviour of the faulty replica: invalid-shares, equivocate, corrupt-state or silent")
	f.StringVar(&o.config, "config", "async", "async (n=4: atomic broadcast with a threshold coin) or hybrid (n=3: TTCB block agreement, one TTCB module per replica)")
	f.Uint32Var(&o.byzantine, "byzantine", 0, "which replica turns Byzantine (default: the last)")
	f.IntVar(&o.clients, "clients", 16, "concurrent clients")
	f.DurationVar(&o.phase, "phase", 6*time.Second, "duration of each workload phase")
	f.IntVar(&o.payload, "payload", 64, "value size, bytes")
	f.BoolVar(&o.keep, "keep", false, "keep the temporary key directory")
	f.BoolVar(&o.verbose, "verbose", false, "replicas log warnings and errors to standard error")
	return cmd
}

func runDemo(ctx context.Context, o demoOptions, w io.Writer) error {
	attack, err := server.ParseAttack(o.attack)
	if err != nil {
		return err
	}
	if attack == server.AttackNone {
		return errors.New("--attack: choose one of invalid-shares, equivocate, corrupt-state, silent")
	}
	cfg, n, err := demoConfiguration(o.config)
	if err != nil {
		return err
	}
	if o.byzantine == 0 {
		o.byzantine = uint32(n)
	}
	if o.byzantine < 1 || int(o.byzantine) > n {
		return fmt.Errorf("--byzantine %d: want 1..%d", o.byzantine, n)
	}
	if o.clients < 1 || o.clients > 64 {
		return fmt.Errorf("--clients %d: want 1..64", o.clients)
	}
	var log *slog.Logger
	if o.verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	dir := ""
	if o.keep {
		if dir, err = os.MkdirTemp("", "maftia-demo-"); err != nil {
			return err
		}
	}
	if cfg == keys.Hybrid {
		fmt.Fprintf(w, "maftia demo: intrusion-tolerant key-value store, n=3 replicas, f=1 (hybrid: TTCB wormhole block agreement, 3 TTCB modules)\n")
	} else {
		fmt.Fprintf(w, "maftia demo: intrusion-tolerant key-value store, n=4 replicas, f=1 (async: atomic broadcast + threshold coin)\n")
	}
	l, stop, err := localClusterConfig(dir, cfg, o.clients, log, nil)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(w, "• key set (trusted dealer) written to %s\n", l.Dir)
	printEndpoints(w, l, "  ")
	clients := make([]*client.Client, o.clients)
	for i := range clients {
		if clients[i], err = client.Dial(l.Cluster, l.Clients[i], client.Options{Retry: 300 * time.Millisecond}); err != nil {
			return err
		}
		defer clients[i].Close()
	}

	fmt.Fprintf(w, "\n[1/2] all replicas correct: %d clients, put/get with read-your-writes checks\n", o.clients)
	p1 := runLoad(ctx, clients, loadSpec{Duration: o.phase, MaxOps: 1_000_000, Payload: o.payload}, w, "healthy")
	report(w, p1)

	byz := l.Server(o.byzantine)
	before := replicaReplies(l)
	fmt.Fprintf(w, "\n[2/2] replica %d turns Byzantine: --attack %s\n", o.byzantine, attack)
	byz.SetAttack(attack)
	p2 := runLoad(ctx, clients, loadSpec{Duration: o.phase, MaxOps: 1_000_000, Payload: o.payload}, w, "replica "+fmt.Sprint(o.byzantine)+" "+string(attack))
	report(w, p2)
	time.Sleep(300 * time.Millisecond) // let evidence from the last epochs be counted
	after := replicaReplies(l)

	// The service as one trusted party: a certified read, still under
	// attack, checked with the cluster's public reply key alone.
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	cert, err := clients[0].SubmitCertified(cctx, kv.EncodeOp(&wire.KVOp{Kind: wire.KVOp_GET, Key: []byte("c0/k0")}))
	ccancel()
	if err != nil {
		return fmt.Errorf("demo: certified read: %w", err)
	}
	if err := smr.VerifyCertificate(l.Cluster.Reply, l.Cluster.Digest(), cert); err != nil {
		return fmt.Errorf("demo: certified read: %w", err)
	}
	fmt.Fprintf(w, "\ncertified read of c0/k0 (position %d): one %d-byte threshold signature by f+1 replicas, verified\n"+
		"  under the service's public key from the cluster file (maftia kv --certify, maftia verify-reply)\n", cert.Position, len(cert.Signature))

	// Detection.
	fmt.Fprintf(w, "\nfaults detected:\n")
	var evidence uint64
	for _, m := range l.Cluster.Members {
		if m.ID == o.byzantine {
			continue
		}
		st := l.Server(m.ID).Status()
		for kind, n := range st.Evidence[core.NodeID(o.byzantine)] {
			fmt.Fprintf(w, "  replica %d holds %d × %s evidence against replica %d\n", m.ID, n, kind, o.byzantine)
			evidence += n
		}
	}
	var clientProof uint64
	for _, c := range clients {
		for id, n := range c.Faults() {
			if id == o.byzantine {
				clientProof += n
			}
		}
	}
	if clientProof > 0 {
		fmt.Fprintf(w, "  clients hold %d signed wrong replies from replica %d (proof of misbehaviour)\n", clientProof, o.byzantine)
	}
	silentOK := false
	if attack == server.AttackSilent {
		got := after[o.byzantine-1] - before[o.byzantine-1]
		fmt.Fprintf(w, "  replica %d sent %d replies during the attack (others: %v); silence is not provable evidence, only absence\n",
			o.byzantine, got, othersDelta(before, after, o.byzantine))
		silentOK = got == 0
	}
	detected := evidence > 0 || clientProof > 0 || silentOK

	all := &loadResult{}
	all.merge(p1)
	all.merge(p2)
	all.Elapsed = p1.Elapsed + p2.Elapsed
	fmt.Fprintf(w, "\nsummary\n")
	fmt.Fprintf(w, "  operations     %d (%d healthy + %d under attack), %d wrong answers, %d errors\n", all.Ops, p1.Ops, p2.Ops, all.Wrong, all.Errors)
	fmt.Fprintf(w, "  throughput     %.0f ops/s\n", all.Throughput())
	fmt.Fprintf(w, "  latency        p50 %s  p99 %s\n", all.Percentile(50).Round(100*time.Microsecond), all.Percentile(99).Round(100*time.Microsecond))
	fmt.Fprintf(w, "  faults         %d replica evidence items, %d client-held proofs, attack detected: %v\n", evidence, clientProof, detected)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case all.Wrong > 0:
		return fmt.Errorf("demo: %d wrong answers", all.Wrong)
	case p2.Ops == 0:
		return errors.New("demo: no operation completed under attack")
	case !detected:
		return fmt.Errorf("demo: attack %s was not detected", attack)
	}
	fmt.Fprintf(w, "  result         OK: the service stayed correct and available with replica %d Byzantine\n", o.byzantine)
	return nil
}

// localCluster starts a 4-replica (f=1) cluster in this process with its
// keys in dir, or in a new temporary directory if dir is "" (removed by
// stop). tune, if non-nil, adjusts the cluster before it starts.
func localCluster(dir string, clients int, log *slog.Logger, tune func(*server.Local)) (l *server.Local, stop func(), err error) {
	return localClusterConfig(dir, keys.Async, clients, log, tune)
}

// demoConfiguration maps --config to the configuration and its n (f = 1).
func demoConfiguration(s string) (keys.Configuration, int, error) {
	switch keys.Configuration(s) {
	case keys.Async, "":
		return keys.Async, 4, nil
	case keys.Hybrid:
		return keys.Hybrid, 3, nil
	}
	return "", 0, fmt.Errorf("--config %q: want async or hybrid", s)
}

// localClusterConfig is localCluster for either configuration: 4
// replicas for async, 3 replicas and 3 TTCB modules for hybrid (f = 1).
func localClusterConfig(dir string, cfg keys.Configuration, clients int, log *slog.Logger, tune func(*server.Local)) (l *server.Local, stop func(), err error) {
	return localClusterN(dir, cfg, 0, clients, log, tune)
}

// localClusterN is localClusterConfig with n replicas (0: the default for
// the configuration) and the largest f they tolerate: n ≥ 3f+1 for async,
// n ≥ 2f+1 for hybrid.
func localClusterN(dir string, cfg keys.Configuration, n, clients int, log *slog.Logger, tune func(*server.Local)) (l *server.Local, stop func(), err error) {
	_, def, err := demoConfiguration(string(cfg))
	if err != nil {
		return nil, nil, err
	}
	if n == 0 {
		n = def
	}
	f := (n - 1) / 3
	if cfg == keys.Hybrid {
		f = (n - 1) / 2
	}
	if f < 1 || n > 16 {
		return nil, nil, fmt.Errorf("%d replicas: want %d..16 for %s (f ≥ 1)", n, def, cfg)
	}
	tmp := ""
	if dir == "" {
		if tmp, err = os.MkdirTemp("", "maftia-"); err != nil {
			return nil, nil, err
		}
		dir = tmp
	}
	cleanup := func() {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}
	if l, err = server.NewLocalConfig(dir, cfg, n, f, clients, log); err != nil {
		cleanup()
		return nil, nil, err
	}
	if tune != nil {
		tune(l)
	}
	if err := l.StartAll(); err != nil {
		cleanup()
		return nil, nil, err
	}
	return l, func() { l.StopAll(); cleanup() }, nil
}

func printEndpoints(w io.Writer, l *server.Local, indent string) {
	for _, m := range l.Cluster.Members {
		s := l.Server(m.ID)
		fmt.Fprintf(w, "%sreplica %d  mesh %s  clients %s  admin http://%s/status\n", indent, m.ID, m.Address, s.ClientAddr(), s.AdminAddr())
	}
}

func report(w io.Writer, r *loadResult) {
	fmt.Fprintf(w, "  %d ops in %.1fs = %.0f ops/s, p50 %s, p99 %s, %d wrong answers, %d errors\n", r.Ops, r.Elapsed.Seconds(), r.Throughput(),
		r.Percentile(50).Round(100*time.Microsecond), r.Percentile(99).Round(100*time.Microsecond), r.Wrong, r.Errors)
}

func replicaReplies(l *server.Local) []uint64 {
	var out []uint64
	for _, m := range l.Cluster.Members {
		out = append(out, l.Server(m.ID).Replies())
	}
	return out
}

func othersDelta(before, after []uint64, skip uint32) []uint64 {
	var d []uint64
	for i := range before {
		if uint32(i+1) != skip {
			d = append(d, after[i]-before[i])
		}
	}
	return slices.Clip(d)
}

// newUpCmd is `maftia up`: the demo's local cluster, until interrupted.
func newUpCmd() *cobra.Command {
	var dir string
	var clients int
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a local 4-replica key-value cluster until interrupted",
		Long: `up generates a key set (in --dir, or a temporary directory) and runs a
4-replica cluster on 127.0.0.1 in this process until interrupted, printing
the endpoints and the maftia kv command line to use it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			w := cmd.OutOrStdout()
			l, stopCluster, err := localCluster(dir, clients, nil, func(l *server.Local) { l.Durable = true })
			if err != nil {
				return err
			}
			defer stopCluster()
			dir = l.Dir
			printEndpoints(w, l, "")
			fmt.Fprintf(w, "\ntry:  maftia kv --config %s --key %s/client-1.key put hello world\n", l.ClusterFile(), dir)
			fmt.Fprintf(w, "      maftia kv --config %s --key %s/client-1.key get hello\n", l.ClusterFile(), dir)
			fmt.Fprintln(w, "\nrunning; interrupt (Ctrl-C) to stop")
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory for keys and data (must not contain key files); default: temporary, removed at exit")
	cmd.Flags().IntVar(&clients, "clients", 4, "client identities to generate")
	return cmd
}
