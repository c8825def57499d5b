package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/maftia/maftia/broadcast/rbc"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/keys"
	"github.com/maftia/maftia/node"
	"github.com/maftia/maftia/storage"
	"github.com/maftia/maftia/transport"
)

type nodeOptions struct {
	config, key, admin string
	data               string
	every              time.Duration
	stdin              bool
	tick               time.Duration
	maxPayload         int
	logLevel           string
	service            string
	attack             string
	// listen and clientListen override the addresses the kv replica binds
	// (default: its member address from the cluster file and that port
	// + 1000), for NAT, containers and test proxies between replicas.
	listen, clientListen string
	// peerAddrs are ID=HOST:PORT overrides of the addresses dialled.
	peerAddrs []string
	// The hybrid configuration: this host's TTCB module.
	ttcbSocket, ttcbModuleKey, ttcbEntityKey string
}

func newNodeCmd() *cobra.Command {
	var o nodeOptions
	cmd := &cobra.Command{
		Use:   "node --config cluster.yaml --key replica-N.key",
		Short: "Run one replica: the replicated key-value service (or reliable broadcast)",
		Long: `Run one replica of the cluster described by --config, with the identity in
--key (files written by maftia keygen). The replica joins the mutually authenticated TLS 1.3 mesh.

With --service kv (the default) it runs the intrusion-tolerant key-value
service: atomic broadcast (abc) orders signed client requests, replication
management (smr) executes them on apps/kv exactly once, and each result is
signed and sent back. Clients connect to the member's client address (its
mesh port + 1000; see maftia kv). With --data the executed batches are
durable and re-executed at restart; every 64 batches an n−f threshold-signed
checkpoint is stored with its snapshot and the log below it deleted. The admin endpoint serves /metrics
(maftia_smr_*), /healthz and /status (evidence against replicas).

With --service rbc it runs Bracha reliable broadcast instead: instance rbc:<sender>/s:<seq> is <sender>'s
broadcast number <seq>. Values to broadcast come from POST /broadcast on the
admin endpoint, from standard input (--stdin, one per line) or from a timer
(--every). Every delivery is printed to standard output as a JSON line
{"instance","sender","value"}; logs go to standard error.
The admin endpoint also serves /metrics, /healthz and /status.

A cluster file with configuration: hybrid (n ≥ 2f+1) runs the same service
ordered by the hybrid engine instead: agreement on each epoch's batches is
the TTCB's trusted block agreement, reached through this host's TTCB module
(--ttcb-socket, --ttcb-module-key, --ttcb-entity-key; see maftia ttcb).`,
		Example: "  maftia node --config cluster.yaml --key replica-1.key --admin 127.0.0.1:8001",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runNode(ctx, o, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "cluster file (YAML)")
	f.StringVar(&o.key, "key", "", "this replica's private key file (mode 0600)")
	f.StringVar(&o.admin, "admin", "", "admin HTTP address, e.g. 127.0.0.1:8001 (empty: no admin endpoint)")
	f.StringVar(&o.data, "data", "", "directory of the durable store (Pebble); empty: in memory, nothing survives a restart")
	f.DurationVar(&o.every, "every", 0, "broadcast a value this often (0: never)")
	f.BoolVar(&o.stdin, "stdin", false, "broadcast each line read from standard input")
	f.DurationVar(&o.tick, "tick", 10*time.Millisecond, "duration of one abstract timer tick")
	f.IntVar(&o.maxPayload, "max-payload", 1<<20, "largest broadcast value, bytes")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.service, "service", "kv", "kv (replicated key-value service) or rbc (reliable broadcast only)")
	f.StringVar(&o.attack, "attack", "", "make this replica Byzantine (testing only): silent, invalid-shares or corrupt-state")
	f.StringVar(&o.listen, "listen", "", "bind the mesh here instead of the member address in --config (kv service), e.g. 0.0.0.0:7000")
	f.StringArrayVar(&o.peerAddrs, "peer-addr", nil, "ID=HOST:PORT: dial member ID at this address instead of the cluster file's (NAT, split networks; repeatable; kv service)")
	f.StringVar(&o.clientListen, "client-listen", "", "bind the client endpoint here instead of the member address's port + 1000 (kv service)")
	f.StringVar(&o.ttcbSocket, "ttcb-socket", "", "hybrid clusters: Unix socket of this host's TTCB module (maftia ttcb)")
	f.StringVar(&o.ttcbModuleKey, "ttcb-module-key", "", "hybrid clusters: the module's Ed25519 public key, hex or a file holding it (pinned)")
	f.StringVar(&o.ttcbEntityKey, "ttcb-entity-key", "", "hybrid clusters: this replica's entity key file, registered at the module (maftia ttcb keygen)")
	cmd.MarkFlagRequired("config")
	cmd.MarkFlagRequired("key")
	return cmd
}

// rbcStack is the replica's root core: a Mux of reliable-broadcast
// instances rbc:<sender>/s:<seq>, with a Precheck that decodes RBC
// messages on the runtime's worker pool.
type rbcStack struct {
	*core.Mux
	maxPayload int
}

// maxLivePerSender bounds the unfinished broadcasts of each other
// replica, so Byzantine senders cannot make a replica allocate without
// bound (ATTACKS.md row 2): messages that would start one more are
// dropped. Local broadcasts are not capped (they come from the operator).
const maxLivePerSender = 1024

// newRBCStack builds the stack; if recover is non-nil, each instance is
// recreated from the records it persisted before a restart, so a replica
// never echoes or readies two different values for one broadcast.
func newRBCStack(g core.Group, self core.NodeID, maxPayload int, recover func(core.InstanceID) ([]core.Record, error)) *rbcStack {
	s := &rbcStack{maxPayload: maxPayload}
	live := make(map[core.NodeID]int) // owned by the stepping goroutine, like the Mux
	s.Mux = core.NewMux(2, func(id core.InstanceID) (core.Protocol, error) {
		name, idx, ok := id.Prefix(1).Last()
		sender := core.NodeID(idx)
		if !ok || name != "rbc" || uint64(sender) != idx || !g.Contains(sender) {
			return nil, core.ErrNoInstance
		}
		if seg, _, ok := id.Last(); !ok || seg != "s" || id.Depth() != 2 {
			return nil, core.ErrNoInstance
		}
		if sender != self && live[sender] >= maxLivePerSender {
			return nil, core.ErrNoInstance
		}
		p := rbc.DefaultParams(g, self, sender)
		p.MaxPayload = maxPayload
		var inst *rbc.RBC
		var err error
		if recover != nil {
			var recs []core.Record
			if recs, err = recover(id); err == nil {
				inst, err = rbc.Recover(id, p, recs)
			}
		} else {
			inst, err = rbc.New(id, p)
		}
		if err != nil {
			return nil, err
		}
		live[sender]++
		return &countedRBC{RBC: inst, live: live, sender: sender}, nil
	}, 256, 4<<20)
	return s
}

// countedRBC releases its sender's live slot when it finishes.
type countedRBC struct {
	*rbc.RBC
	live     map[core.NodeID]int
	sender   core.NodeID
	released bool
}

// Finished implements core.Finisher.
func (c *countedRBC) Finished() bool {
	f := c.RBC.Finished()
	if f && !c.released {
		c.released = true
		c.live[c.sender]--
	}
	return f
}

// Precheck implements core.Prechecker: decoding is pure and per message;
// bytes that do not decode are provable misbehaviour of the sender.
func (s *rbcStack) Precheck(m core.Message) (any, error) {
	msg, err := rbc.Decode(m.Payload, s.maxPayload)
	if err != nil {
		return nil, &core.Evidence{Accused: m.From, Kind: core.Malformed, Instance: m.Instance, Detail: err.Error()}
	}
	return msg, nil
}

type delivery struct {
	Instance string      `json:"instance"`
	Sender   core.NodeID `json:"sender"`
	Value    string      `json:"value"`
}

func runNode(ctx context.Context, o nodeOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	switch o.service {
	case "kv":
		return runKVNode(ctx, o, log)
	case "rbc":
	default:
		return fmt.Errorf("--service %q: want kv or rbc", o.service)
	}
	cluster, priv, err := loadReplica(o.config, o.key)
	if err != nil {
		return err
	}
	defer priv.Zeroize()
	if cluster.Configuration != keys.Async {
		return fmt.Errorf("%s: configuration %q: --service rbc runs on async clusters only", o.config, cluster.Configuration)
	}
	g, err := core.NewGroup(cluster.N, cluster.F, core.Async)
	if err != nil {
		return err
	}
	selfID := core.NodeID(priv.ID)
	identity := ed25519.NewKeyFromSeed(priv.Identity.Marshal())
	defer clear(identity)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	tcfg := transport.DefaultConfig()
	// The cluster identifier in the hello is the digest of the key set, so
	// replicas of two clusters (or two key sets) never talk to each other.
	digest := cluster.Digest()
	tcfg.Self, tcfg.ClusterID, tcfg.Identity = selfID, hex.EncodeToString(digest[:]), identity
	tcfg.Peers = make(map[core.NodeID]transport.Peer)
	for _, m := range cluster.Members {
		tcfg.Peers[core.NodeID(m.ID)] = transport.Peer{Addr: m.Address, Identity: ed25519.PublicKey(m.Identity.Marshal())}
	}
	tcfg.MaxFrame = o.maxPayload + 64<<10
	tcfg.Logger, tcfg.Registerer = log, reg
	tr, err := transport.New(tcfg)
	if err != nil {
		return err
	}
	defer tr.Close()

	var outMu sync.Mutex
	enc := json.NewEncoder(stdout)
	var store node.Storage = node.NewMemStorage()
	var recover func(core.InstanceID) ([]core.Record, error)
	if o.data != "" {
		st, err := storage.Open(o.data, storage.Options{Logger: log})
		if err != nil {
			return err
		}
		defer st.Close()
		store, recover = st, st.Records
	}
	stack := newRBCStack(g, selfID, o.maxPayload, recover)
	nd, err := node.New(node.Config{
		Self: selfID, Group: g, Protocol: stack, Transport: tr, Storage: store,
		Tick: o.tick, MaxPayload: tcfg.MaxFrame, Logger: log, Registry: reg,
		Deliver: func(d core.Delivery) {
			_, sender, _ := d.Instance.Prefix(1).Last()
			v, _ := d.Value.([]byte)
			outMu.Lock()
			enc.Encode(delivery{Instance: string(d.Instance), Sender: core.NodeID(sender), Value: string(v)})
			outMu.Unlock()
		},
	})
	if err != nil {
		return err
	}

	// Sequence numbers start at the boot time in microseconds, so a
	// restarted replica (whose in-memory storage forgot its counter) never
	// reuses an instance ID its peers consider finished.
	var seqMu sync.Mutex
	seq := uint64(time.Now().UnixMicro())
	broadcast := func(ctx context.Context, v []byte) (core.InstanceID, error) {
		if len(v) > o.maxPayload {
			return "", fmt.Errorf("value of %d bytes > --max-payload %d", len(v), o.maxPayload)
		}
		seqMu.Lock()
		seq++
		inst := core.RootN("rbc", uint64(selfID)).ChildN("s", seq)
		seqMu.Unlock()
		return inst, nd.Submit(ctx, core.Input{Instance: inst, Value: v})
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	if adminAddr := o.admin; adminAddr != "" {
		mux := nd.AdminHandler()
		mux.HandleFunc("POST /broadcast", func(w http.ResponseWriter, r *http.Request) {
			v, err := io.ReadAll(io.LimitReader(r.Body, int64(o.maxPayload)+1))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			inst, err := broadcast(r.Context(), v)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]string{"instance": string(inst)})
		})
		ln, err := net.Listen("tcp", adminAddr)
		if err != nil {
			return fmt.Errorf("admin: %w", err)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		wg.Add(2)
		go func() { defer wg.Done(); srv.Serve(ln) }()
		go func() {
			defer wg.Done()
			<-ctx.Done()
			sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
			defer c()
			srv.Shutdown(sctx)
		}()
		log.Info("admin endpoint", "replica", uint32(selfID), "addr", ln.Addr().String())
	}
	if o.every > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(o.every)
			defer t.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					broadcast(ctx, []byte(fmt.Sprintf("tick %d from %d at %s", i, selfID, now.Format(time.RFC3339Nano))))
				}
			}
		}()
	}
	if o.stdin {
		go func() { // not joined: a blocked read of stdin cannot be interrupted
			sc := bufio.NewScanner(stdin)
			sc.Buffer(make([]byte, 64<<10), o.maxPayload)
			for sc.Scan() {
				if _, err := broadcast(ctx, append([]byte(nil), sc.Bytes()...)); err != nil {
					return
				}
			}
		}()
	}
	err = nd.Run(ctx)
	cancel()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
