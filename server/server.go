package server

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/maftia/maftia/abc"
	"github.com/maftia/maftia/apps/kv"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/keys"
	"github.com/maftia/maftia/crypto/sig"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/hybrid"
	"github.com/maftia/maftia/node"
	"github.com/maftia/maftia/smr"
	"github.com/maftia/maftia/storage"
	"github.com/maftia/maftia/transport"
	"github.com/maftia/maftia/ttcb"
	"github.com/maftia/maftia/wire"
)

// Config configures one replica of the replicated service.
type Config struct {
	Cluster *keys.Cluster
	Private *keys.Private // not owned: the caller zeroizes it after Run

	// FSM is the replicated application; nil: a fresh apps/kv store.
	FSM smr.FSM
	// DataDir is the Pebble directory; empty: in memory (a restart
	// forgets everything and the replica relies on its peers).
	DataDir string

	// PeerListener and ClientListener, if set, are used instead of
	// listening on the member's address and ClientAddress (tests, demo).
	PeerListener, ClientListener net.Listener
	// PeerAddrs, if set, overrides the address this replica dials to reach
	// member ID (NAT, split-horizon networks, test proxies on one link).
	// The member's own entry is ignored.
	PeerAddrs map[uint32]string
	// Admin is the admin HTTP address (/metrics, /healthz, /status);
	// empty: none. AdminListener, if set, is used instead.
	Admin         string
	AdminListener net.Listener

	// TTCB is how a replica of a hybrid cluster (configuration: hybrid)
	// reaches its host's TTCB module; unused for async clusters.
	TTCB *TTCBConfig
	// Retain is how many epochs of ordered batches the engine keeps to
	// answer a restarted replica's FETCH (default 1024).
	Retain uint64

	// Attack makes this replica Byzantine (demo and tests only).
	Attack Attack

	Tick       time.Duration // default 10 ms
	BatchSize  int           // requests per replica per epoch; default 256
	MaxRequest int           // default 64 KiB
	// CheckpointEvery is the number of batches between checkpoint
	// certificates (smr, Quorum key); default 64.
	CheckpointEvery uint64
	// IdleProbe: while this replica's position does not move for this
	// long, it asks its peers for their latest certified checkpoint again
	// (default 30 s; negative: only at start). A replica that fell behind
	// and then saw no traffic would otherwise learn of newer checkpoints
	// only from new checkpoint shares, i.e. only once clients write again.
	// A runtime timer for liveness only: the transfer itself is checked
	// against certificates and needs no timing.
	IdleProbe time.Duration
	Logger    *slog.Logger
}

// Server is one running replica. See the package documentation.
type Server struct {
	cfg      Config
	log      *slog.Logger
	self     core.NodeID
	digest   [32]byte
	clients  smr.Clients
	identity *sig.PrivateKey
	maxReq   int

	reg   *prometheus.Registry
	m     *metrics
	tr    transport.Transport
	tls   *transport.TLS
	cut   *cutTransport // fault injection (CutLinks), under the attack wrapper
	store node.Storage
	pdb   *storage.Store
	nd    *node.Node
	rep   *smr.Replica
	eng   core.Protocol // *abc.ABC (async) or *hybrid.Engine (hybrid)
	heng  *hybrid.Engine
	ttcb  *ttcbService

	verified verifiedCache
	verifyCh chan pendingReq
	replyCh  chan smr.Executed

	clientLn net.Listener
	adminLn  net.Listener

	mu      sync.Mutex
	waiters map[waitKey]*clientConn
	// certify marks waiting requests that asked for a certified reply
	// (wire.FrameRequestCertified): the reply carries this replica's share
	// of the service's signature (smr.SignReplyShare with replyShare).
	certify    map[waitKey]bool
	replyShare *tsig.SecretShare
	conns      map[*clientConn]bool
	stats      atomic.Pointer[smr.Stats]
	attack     atomic.Pointer[Attack]
	pos        atomic.Uint64
	repliesN   atomic.Uint64
	stable     atomic.Uint64 // latest certified checkpoint
	// transfers counts completed state transfers (xfer.go).
	transfers atomic.Uint64
	// verifyBatches and verifyReqs count ingress verification batches and
	// the signatures in them (VerifyStats).
	verifyBatches, verifyReqs atomic.Uint64
	// idleProbes counts probes sent because the position stayed put.
	idleProbes atomic.Uint64
	// collected counts engine records garbage-collected; gcNext is the
	// epoch of the next collection (stepping goroutine).
	collected atomic.Uint64
	gcNext    uint64
	// truncated is the first log shard not yet deleted (stepping goroutine).
	truncated uint64
}

type waitKey struct{ client, seq uint64 }

type pendingReq struct {
	req     *wire.ClientRequest
	conn    *clientConn
	certify bool
}

// New builds the replica: transport, storage (recovering the executed
// log), ordering engine, state machine and runtime. Nothing runs until Run.
func New(cfg Config) (*Server, error) {
	c, p := cfg.Cluster, cfg.Private
	if c == nil || p == nil {
		return nil, errors.New("server: Cluster and Private are required")
	}
	resilience := core.Async
	switch c.Configuration {
	case keys.Async:
	case keys.Hybrid:
		resilience = core.HybridSMR
		if c.Hybrid == nil {
			return nil, errors.New("server: a hybrid cluster file needs its hybrid: schedule section (maftia keygen --configuration hybrid writes one)")
		}
		if cfg.TTCB == nil {
			return nil, errors.New("server: a hybrid replica needs its TTCB module (socket, module key, entity key)")
		}
	default:
		return nil, fmt.Errorf("server: configuration %q is neither async nor hybrid", c.Configuration)
	}
	if cfg.FSM == nil {
		cfg.FSM = kv.New()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 10 * time.Millisecond
	}
	if cfg.MaxRequest <= 0 {
		cfg.MaxRequest = 64 << 10
	}
	if cfg.Retain == 0 {
		cfg.Retain = 1024
	}
	g, err := core.NewGroup(c.N, c.F, resilience)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, self: core.NodeID(p.ID), digest: c.Digest(), clients: smr.Clients{}, identity: p.Identity, replyShare: p.Reply, certify: map[waitKey]bool{},
		maxReq: cfg.MaxRequest, reg: prometheus.NewRegistry(),
		verifyCh: make(chan pendingReq, 4096), replyCh: make(chan smr.Executed, 8192),
		waiters: map[waitKey]*clientConn{}, conns: map[*clientConn]bool{},
	}
	s.log = cfg.Logger.With("replica", p.ID)
	s.verified.init(1 << 16)
	for _, cl := range c.Clients {
		s.clients[uint64(cl.ID)] = cl.Identity.Expand()
	}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s.m, err = newMetrics(s.reg, s); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.closeResources()
		}
	}()

	// Transport: the replicas' TLS mesh, keyed by the cluster digest.
	identity := ed25519.NewKeyFromSeed(p.Identity.Marshal())
	tcfg := transport.DefaultConfig()
	meshID := s.digest
	if c.Hybrid != nil {
		// Replicas with different epoch schedules would use different
		// TTCB executions: they must not talk at all.
		meshID = c.Hybrid.ScheduleDigest(s.digest)
	}
	tcfg.Self, tcfg.ClusterID, tcfg.Identity = s.self, hex.EncodeToString(meshID[:]), identity
	tcfg.Peers = make(map[core.NodeID]transport.Peer)
	for _, m := range c.Members {
		addr := m.Address
		if a, ok := cfg.PeerAddrs[m.ID]; ok && m.ID != p.ID {
			addr = a
		}
		tcfg.Peers[core.NodeID(m.ID)] = transport.Peer{Addr: addr, Identity: ed25519.PublicKey(m.Identity.Marshal())}
	}
	tcfg.MaxFrame = wire.DefaultMaxPayload + 64<<10
	tcfg.Logger, tcfg.Registerer = s.log, s.reg
	if cfg.PeerListener != nil {
		s.tls, err = transport.NewWithListener(tcfg, cfg.PeerListener)
	} else {
		s.tls, err = transport.New(tcfg)
	}
	if err != nil {
		return nil, err
	}
	s.attack.Store(&cfg.Attack)
	s.cut = &cutTransport{Transport: s.tls, members: g.Members()}
	s.tr = wrapTransport(s.cut, s.Attack, g, p, c.Configuration == keys.Hybrid)

	// Ordering engine and replication: the same replica and application
	// on either configuration.
	maxReq := cfg.MaxRequest + 256
	if c.Configuration == keys.Hybrid {
		if s.ttcb, err = newTTCBService(*cfg.TTCB, s.self, c.N, c.Hybrid.TBA, s.log); err != nil {
			return nil, err
		}
		if err := s.ttcb.register(s.reg); err != nil {
			return nil, err
		}
		hp := hybrid.DefaultParams(g, s.self, s.validRaw)
		hp.MaxRequest = maxReq
		if cfg.BatchSize > 0 {
			hp.BatchSize = cfg.BatchSize
		}
		hp.Start = uint64(c.Hybrid.Start.UnixNano())
		hp.TBA, hp.Window, hp.Retention = uint64(c.Hybrid.TBA), uint64(c.Hybrid.Window), uint64(c.Hybrid.Retention)
		hp.Retain = cfg.Retain
		hp.ModuleKeys = c.Hybrid.Modules
		if s.heng, err = hybrid.New(smr.EngineInstance, hp); err != nil {
			return nil, err
		}
		s.eng = s.heng
	} else {
		ap := abc.DefaultParams(g, s.self, c.Coin, p.Coin, c.Reply, p.Reply, s.validRaw)
		ap.MaxRequest = maxReq
		if cfg.BatchSize > 0 {
			ap.BatchSize = cfg.BatchSize
		}
		ap.Retain = cfg.Retain // epochs kept for FETCH: how far a restarted replica can catch up without state transfer
		if s.eng, err = abc.New(smr.EngineInstance, ap); err != nil {
			return nil, err
		}
	}
	rp := smr.DefaultParams(g, s.self, s.verifyReq)
	rp.MaxRequest = maxReq
	rp.CheckpointEvery, rp.Quorum, rp.QuorumKey = cfg.CheckpointEvery, c.Quorum, p.Quorum
	if rp.CheckpointEvery == 0 {
		rp.CheckpointEvery = 64
	}
	if s.rep, err = smr.NewReplica(rp, s.eng, cfg.FSM); err != nil {
		return nil, err
	}

	// Storage: recover the executed batches before anything runs.
	s.store = node.NewMemStorage()
	if cfg.DataDir != "" {
		if s.pdb, err = storage.Open(cfg.DataDir, storage.Options{Logger: s.log}); err != nil {
			return nil, err
		}
		s.store = s.pdb
		// The latest certified checkpoint first (its certificate and
		// digest are re-checked), then the log after it.
		cp, err := s.pdb.LatestCheckpoint()
		switch {
		case err == nil:
			var d [32]byte
			copy(d[:], cp.Digest)
			if err := s.rep.RestoreCheckpoint(smr.Checkpoint{Seq: cp.Seq, Digest: d, Signature: cp.Certificate}, cp.Snapshot); err != nil {
				return nil, fmt.Errorf("server: restore checkpoint from %s: %w", cfg.DataDir, err)
			}
			s.truncated = smr.LogShardOf(cp.Seq + 1)
			s.log.Info("restored certified checkpoint", "seq", cp.Seq)
		case !errors.Is(err, storage.ErrNotFound):
			return nil, fmt.Errorf("server: read checkpoint: %w", err)
		}
		if err := s.restoreTransferred(); err != nil {
			return nil, err
		}
		recs, err := s.pdb.Records(smr.LogInstance)
		if err != nil {
			return nil, fmt.Errorf("server: read executed log: %w", err)
		}
		erecs, err := s.pdb.Records(smr.EngineInstance)
		if err != nil {
			return nil, fmt.Errorf("server: read the engine's records: %w", err)
		}
		if s.heng != nil {
			if err := s.heng.Recover(erecs); err != nil {
				return nil, fmt.Errorf("server: recover the hybrid engine from %s: %w", cfg.DataDir, err)
			}
		} else if a, ok := s.eng.(*abc.ABC); ok {
			// The epochs it may have spoken in before it stopped are sat
			// out (docs/adr/0008).
			if err := a.Recover(erecs); err != nil {
				return nil, fmt.Errorf("server: recover the atomic broadcast from %s: %w", cfg.DataDir, err)
			}
			if mark, _ := a.Mark(); mark > 0 {
				s.log.Info("sitting out the epochs spoken in before the restart", "below", mark)
			}
		}
		if err := s.rep.Recover(recs); err != nil {
			return nil, fmt.Errorf("server: recover from %s: %w", cfg.DataDir, err)
		}
		if len(recs) > 0 {
			s.log.Info("recovered executed log", "batches", len(recs), "position", s.rep.Position())
		}
	}
	st := s.rep.Stats()
	s.stats.Store(&st)
	s.pos.Store(s.rep.Position())
	s.stable.Store(s.rep.StableCheckpoint().Seq)

	s.nd, err = node.New(node.Config{
		Self: s.self, Group: g, Protocol: s.rep, Transport: s.tr, Storage: s.store,
		Tick: cfg.Tick, MaxPayload: tcfg.MaxFrame, Logger: s.log, Registry: s.reg,
		Deliver: s.deliver, Services: s.services(),
	})
	if err != nil {
		return nil, err
	}

	// Client listener and admin endpoint.
	if s.clientLn = cfg.ClientListener; s.clientLn == nil {
		me, err := c.Member(p.ID)
		if err != nil {
			return nil, err
		}
		if s.clientLn, err = net.Listen("tcp", me.ClientAddress()); err != nil {
			return nil, fmt.Errorf("server: client listener: %w", err)
		}
	}
	if s.adminLn = cfg.AdminListener; s.adminLn == nil && cfg.Admin != "" {
		if s.adminLn, err = net.Listen("tcp", cfg.Admin); err != nil {
			return nil, fmt.Errorf("server: admin listener: %w", err)
		}
	}
	ok = true
	return s, nil
}

func (s *Server) closeResources() {
	if s.tls != nil {
		s.tls.Close()
	}
	if s.pdb != nil {
		s.pdb.Close()
	}
	if s.clientLn != nil {
		s.clientLn.Close()
	}
	if s.adminLn != nil {
		s.adminLn.Close()
	}
}

// ClientAddr is the address the client listener is bound to.
func (s *Server) ClientAddr() net.Addr { return s.clientLn.Addr() }

// AdminAddr is the admin endpoint's address (nil without one).
func (s *Server) AdminAddr() net.Addr {
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// Attack is the replica's current attack ("" when correct).
func (s *Server) Attack() Attack { return *s.attack.Load() }

// SetAttack turns the replica Byzantine (or correct again) while it runs.
func (s *Server) SetAttack(a Attack) { s.attack.Store(&a) }

// Status is the runtime's /status document (evidence included).
func (s *Server) Status() node.Status { return s.nd.Status() }

// Stats are the replication counters (refreshed at every delivery).
func (s *Server) Stats() smr.Stats { return *s.stats.Load() }

// StableCheckpoint is the position of the latest certified checkpoint
// (refreshed at every delivery).
func (s *Server) StableCheckpoint() uint64 { return s.stable.Load() }

// Replies is the number of signed replies sent to clients.
func (s *Server) Replies() uint64 { return s.repliesN.Load() }

// Position is the last executed batch.
func (s *Server) Position() uint64 { return s.pos.Load() }

// VerifyStats reports how many ingress verification batches ran and how
// many request signatures they held (maftia bench prints the mean).
func (s *Server) VerifyStats() (batches, requests uint64) {
	return s.verifyBatches.Load(), s.verifyReqs.Load()
}

// Refused counts refused client requests by reason.
func (s *Server) Refused() map[string]uint64 { return s.m.refusedSnapshot() }

// Run serves until ctx is cancelled or the replica halts, then closes
// every listener, connection and the store. It returns only when every
// goroutine it started has ended.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer func() {
		cancel()
		s.clientLn.Close()
		if s.adminLn != nil {
			s.adminLn.Close()
		}
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		wg.Wait()
		s.tls.Close()
		if s.pdb != nil {
			s.pdb.Close()
		}
	}()
	// One gatherer hands batches to GOMAXPROCS verifiers (gatherLoop:
	// batches grow while the verifiers are busy or requests arrive fast).
	work := make(chan []pendingReq)
	wg.Add(1)
	go func() { defer wg.Done(); s.gatherLoop(ctx, work) }()
	for range max(1, min(8, runtimeProcs())) {
		wg.Add(1)
		go func() { defer wg.Done(); s.verifyLoop(ctx, work) }()
	}
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); s.replyLoop(ctx) }()
	}
	if s.ttcb != nil {
		s.ttcb.run(ctx, &wg)
	}
	wg.Add(1)
	go func() { defer wg.Done(); s.acceptLoop(ctx, &wg) }()
	s.probePeers(ctx, &wg)
	if s.cfg.IdleProbe >= 0 {
		s.probeWhileIdle(ctx, &wg, cmp.Or(s.cfg.IdleProbe, 30*time.Second))
	}
	if s.adminLn != nil {
		srv := &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 5 * time.Second}
		wg.Add(2)
		go func() { defer wg.Done(); srv.Serve(s.adminLn) }()
		go func() {
			defer wg.Done()
			<-ctx.Done()
			sctx, c := context.WithTimeout(context.Background(), time.Second)
			defer c()
			srv.Shutdown(sctx)
		}()
	}
	s.log.Info("replicated service running", "client_addr", s.clientLn.Addr().String(), "attack", string(s.Attack()))
	err := s.nd.Run(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (s *Server) adminHandler() http.Handler {
	mux := s.nd.AdminHandler()
	return mux
}

// deliver runs on the stepping goroutine after the step's records are
// durable: it queues each Executed for signing and sending.
func (s *Server) deliver(d core.Delivery) {
	e, ok := d.Value.(smr.Executed)
	if !ok {
		s.deliverControl(d)
		return
	}
	st := s.rep.Stats()
	s.stats.Store(&st)
	s.pos.Store(e.Position)
	s.stable.Store(s.rep.StableCheckpoint().Seq)
	s.saveCheckpoint()
	s.collectEngineRecords()
	s.replyCh <- e
}

// Records of finished abc epochs. abc persists only its mark (one record,
// docs/adr/0008); before that, its sub-protocols' records (AVID echo/ready,
// CBC signatures, ABA rounds: about 50 per epoch at n = 4) were persisted
// and never deleted. Records under an epoch are collected every
// engineGCEvery epochs, keeping the last engineKeep delivered epochs, in
// one unsynced batch; a collection lost in a crash is redone by the next
// one. This removes what an older version left behind, and keeps any
// future per-epoch record bounded.
const (
	engineGCEvery = 16
	engineKeep    = 2
)

// collectEngineRecords runs on the stepping goroutine after the step's
// records are durable (async configuration; the hybrid engine keeps one
// resume record).
func (s *Server) collectEngineRecords() {
	a, ok := s.eng.(*abc.ABC)
	if !ok {
		return
	}
	next := a.NextEpoch()
	if next < s.gcNext {
		return
	}
	s.gcNext = next + engineGCEvery
	del, ok := s.store.(interface{ DeleteRecordSet([]core.Record) error })
	if !ok {
		return
	}
	recs, err := s.store.Records(smr.EngineInstance)
	if err != nil {
		s.log.Error("collect engine records", "err", err)
		return
	}
	depth := smr.EngineInstance.Depth() + 1
	var dead []core.Record
	for _, r := range recs {
		if name, e, ok := r.Instance.Prefix(depth).Last(); ok && name == "e" && e+engineKeep < next {
			dead = append(dead, r)
		}
	}
	if len(dead) == 0 {
		return
	}
	if err := del.DeleteRecordSet(dead); err != nil {
		s.log.Error("collect engine records", "err", err)
		return
	}
	s.collected.Add(uint64(len(dead)))
}

// saveCheckpoint stores a newly certified checkpoint with its snapshot
// and then deletes the log shards wholly below it (log truncation). It
// runs on the stepping goroutine after the step's records are durable.
// A failure is logged, not fatal: the log is kept and the next
// checkpoint tries again.
func (s *Server) saveCheckpoint() {
	cp, snap, ok := s.rep.TakeCertified()
	if !ok || s.pdb == nil {
		return
	}
	if err := s.pdb.SaveCheckpoint(storage.Checkpoint{Seq: cp.Seq, Digest: cp.Digest[:], Snapshot: snap, Certificate: cp.Signature}); err != nil {
		s.log.Error("save checkpoint", "seq", cp.Seq, "err", err)
		return
	}
	// Shard i holds batches i·LogShard+1 … (i+1)·LogShard: deletable once
	// all of them are at or below the checkpoint.
	for ; (s.truncated+1)*smr.LogShard <= cp.Seq; s.truncated++ {
		if err := s.pdb.DeleteRecords(smr.LogShardInstance(s.truncated)); err != nil {
			s.log.Error("truncate log", "shard", s.truncated, "err", err)
			return
		}
	}
}

// replyLoop takes the executed requests queued so far (up to 256), signs
// their replies with one signature (smr.SignReplies, docs/adr/0009),
// queues each on the connection waiting for it and flushes those
// connections.
func (s *Server) replyLoop(ctx context.Context) {
	const maxBatch = 256 // replies under one signature: proofs of ≤ 8 hashes
	var batch []*wire.Reply
	var dest []*clientConn
	for {
		var e smr.Executed
		select {
		case <-ctx.Done():
			return
		case e = <-s.replyCh:
		}
		batch, dest = batch[:0], dest[:0]
		for {
			if r, c := s.reply(e); c != nil {
				batch, dest = append(batch, r), append(dest, c)
			}
			if len(batch) == maxBatch {
				break
			}
			select {
			case e = <-s.replyCh:
				continue
			default:
			}
			break
		}
		if len(batch) == 0 {
			continue
		}
		smr.SignReplies(s.identity, s.digest, batch)
		dirty := map[*clientConn]bool{}
		for i, r := range batch {
			b, err := marshal(r)
			if err != nil {
				continue
			}
			dest[i].queue(wire.FrameReply, b)
			dirty[dest[i]] = true
			s.m.replies.Inc()
			s.repliesN.Add(1)
		}
		for c := range dirty {
			c.flush()
		}
	}
}

// reply builds the reply to one executed request for the connection
// waiting for it (nil if none is waiting here: the client retries
// elsewhere); the caller signs a batch of them at once.
func (s *Server) reply(e smr.Executed) (*wire.Reply, *clientConn) {
	k := waitKey{e.Client, e.Seq}
	s.mu.Lock()
	c := s.waiters[k]
	delete(s.waiters, k)
	certify := s.certify[k]
	delete(s.certify, k)
	if c != nil {
		c.waiting--
	}
	s.mu.Unlock()
	if c == nil || s.Attack() == AttackSilent {
		return nil, nil
	}
	r := &wire.Reply{Client: e.Client, Seq: e.Seq, Replica: uint32(s.self), Result: e.Result, Position: e.Position}
	if s.Attack() == AttackCorruptState {
		r.Result = corrupt(r.Result)
	}
	if certify {
		smr.SignReplyShare(s.replyShare, s.digest, r)
		if s.Attack() == AttackInvalidShares {
			// A share on another statement: the client must find it
			// invalid and combine the others'.
			bogus := &wire.Reply{Client: r.Client, Seq: r.Seq, Position: r.Position + 1, Result: r.Result}
			smr.SignReplyShare(s.replyShare, s.digest, bogus)
			r.Share = bogus.Share
		}
	}
	return r, c
}

// maxVerifyBatch bounds one verification batch: past 64 signatures the
// per-signature cost of Ed25519 batch verification hardly falls, and a
// forged signature makes the whole batch fall back to single checks.
// minVerifyBatch is the size at which a batch goes to a verifier at once;
// a smaller one waits up to verifyLinger for company, but only while
// requests arrive fast enough that at least lingerGain of them are
// expected in that time (per signature, a batch of 4 costs about 60 % of
// a single check and a batch of 16 about 45 %: the crypto table of
// docs/PERFORMANCE.md). At low load nothing waits; under load the wait
// costs at most verifyLinger of latency on a path of tens of ms.
const (
	maxVerifyBatch = 64
	minVerifyBatch = 32
	verifyLinger   = 3 * time.Millisecond
	lingerGain     = 4
)

// gatherLoop collects arriving requests into batches and hands each to
// the first free verifier once it has minVerifyBatch requests, or at once
// if requests arrive slowly, or after verifyLinger; requests keep joining
// the pending batch while every verifier is busy.
func (s *Server) gatherLoop(ctx context.Context, work chan<- []pendingReq) {
	var batch []pendingReq
	linger := time.NewTimer(verifyLinger)
	linger.Stop()
	waiting := false    // batch is young and more requests are due
	gap := verifyLinger // moving average of the time between arrivals
	last := time.Now()
	arrived := func(p pendingReq) {
		now := time.Now()
		gap += (now.Sub(last) - gap) / 8
		last = now
		batch = append(batch, p)
	}
	for {
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case p := <-s.verifyCh:
				batch = make([]pendingReq, 0, maxVerifyBatch)
				arrived(p)
				if waiting = lingerGain*gap <= verifyLinger; waiting {
					linger.Reset(verifyLinger)
				}
			}
		}
		in, out := s.verifyCh, work
		if len(batch) >= maxVerifyBatch {
			in = nil // full: wait for a verifier only
		}
		if waiting && len(batch) < minVerifyBatch {
			out = nil // small and young: wait for more
		}
		select {
		case <-ctx.Done():
			return
		case out <- batch:
			batch = nil
		case p := <-in:
			arrived(p)
		case <-linger.C:
			waiting = false
		}
	}
}

// verifyLoop batch-verifies client signatures off the stepping goroutine
// and submits the valid requests for ordering.
func (s *Server) verifyLoop(ctx context.Context, work <-chan []pendingReq) {
	reqs := make([]*wire.ClientRequest, 0, maxVerifyBatch)
	for {
		var batch []pendingReq
		select {
		case <-ctx.Done():
			return
		case batch = <-work:
		}
		reqs = reqs[:0]
		live := batch[:0]
		for _, p := range batch {
			<-p.conn.slots
			if p.conn.bad.Load() {
				s.m.refused(ReasonBadSignature) // dropped unverified: its connection forged one
				continue
			}
			live = append(live, p)
			reqs = append(reqs, p.req)
		}
		batch = live
		if len(reqs) > 0 {
			s.m.verifyBatch.Observe(float64(len(reqs)))
			s.verifyBatches.Add(1)
			s.verifyReqs.Add(uint64(len(reqs)))
		}
		ok := s.clients.VerifyBatch(s.digest, reqs, rand.Reader)
		for i, p := range batch {
			if !ok[i] {
				s.refuse(p.conn, p.req.Client, p.req.Seq, ReasonBadSignature)
				if !p.conn.bad.Swap(true) {
					p.conn.nc.Close()
				}
				continue
			}
			s.verified.add(sha256.Sum256(smr.EncodeRequest(p.req)))
			s.m.accepted.Inc()
			k := waitKey{p.req.Client, p.req.Seq}
			s.mu.Lock()
			if s.conns[p.conn] {
				if old := s.waiters[k]; old != p.conn {
					if old != nil {
						old.waiting--
					}
					s.waiters[k] = p.conn
					p.conn.waiting++
				}
				if p.certify {
					s.certify[k] = true
				}
			}
			s.mu.Unlock()
			if err := s.nd.Submit(ctx, core.Input{Instance: smr.Instance, Value: p.req}); err != nil {
				return
			}
		}
	}
}

// validRaw is the engine's predicate on request bytes (deterministic: a
// cached verdict is one that verification returned for the same bytes).
func (s *Server) validRaw(b []byte) bool {
	if s.verified.has(sha256.Sum256(b)) {
		return true
	}
	req, err := smr.DecodeRequest(b, s.maxReq+256)
	if err != nil {
		return false
	}
	return s.verifyOne(req)
}

// verifyReq is smr's predicate (same verdicts as validRaw).
func (s *Server) verifyReq(req *wire.ClientRequest) bool {
	if s.verified.has(sha256.Sum256(smr.EncodeRequest(req))) {
		return true
	}
	return s.verifyOne(req)
}

func (s *Server) verifyOne(req *wire.ClientRequest) bool {
	pk, ok := s.clients[req.Client]
	if !ok {
		return false
	}
	if pk.VerifyDomain(req.Signature, smr.RequestDomain, s.digest[:], u64(req.Client), u64(req.Seq), req.Op) != nil {
		return false
	}
	s.verified.add(sha256.Sum256(smr.EncodeRequest(req)))
	return true
}

// verifiedCache remembers digests of requests whose signature verified,
// so the stepping goroutine does not verify again what the worker pool
// already did. Bounded: it is emptied when full.
type verifiedCache struct {
	mu  sync.Mutex
	max int
	m   map[[32]byte]struct{}
}

func (v *verifiedCache) init(max int) { v.max, v.m = max, make(map[[32]byte]struct{}, max) }

func (v *verifiedCache) add(d [32]byte) {
	v.mu.Lock()
	if len(v.m) >= v.max {
		clear(v.m)
	}
	v.m[d] = struct{}{}
	v.mu.Unlock()
}

func (v *verifiedCache) has(d [32]byte) bool {
	v.mu.Lock()
	_, ok := v.m[d]
	v.mu.Unlock()
	return ok
}

// services are the local services the cores call: the TTCB for a hybrid
// replica, none for an async one.
func (s *Server) services() map[string]node.Service {
	if s.ttcb == nil {
		return nil
	}
	return map[string]node.Service{ttcb.ServiceName: s.ttcb}
}
