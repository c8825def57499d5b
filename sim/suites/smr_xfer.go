package suites

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/maftia/maftia/abc"
	"github.com/maftia/maftia/apps/kv"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/smr"
	"github.com/maftia/maftia/wire"
	"google.golang.org/protobuf/proto"
)

// XferSuite is state transfer in the simulator: apps/kv on smr.Replica
// with checkpoints, ordered by abc with a small FETCH retention, so a
// replica cut off for long can only catch up through a certified
// checkpoint fetched from its peers. RunXfer drives one schedule.
type XferSuite struct {
	*sim.Suite
	coin      *coinKeys
	proof     *tsig.PublicKey
	proofSKs  []*tsig.SecretShare
	quorum    *tsig.PublicKey
	quorumSKs []*tsig.SecretShare
	// Replicas is the current core of each replica (a restart builds a
	// new one).
	Replicas map[core.NodeID]*smr.Replica
	Engines  map[core.NodeID]*abc.ABC
	// Lagger is the replica that is crashed and restarted.
	Lagger core.NodeID
	// Unsafe builds the lagger with smr's transfer checks disabled (the
	// deliberately broken variant).
	Unsafe    bool
	emptyDisk bool
}

// ABCXfer builds the suite.
func ABCXfer() *XferSuite {
	s := &XferSuite{}
	s.Suite = &sim.Suite{
		Name:       "abc-xfer",
		Resilience: core.Async,
		Setup: func(g core.Group, seed uint64) error {
			ck, err := dealCoin(g.N(), g.F(), seed)
			if err != nil {
				return err
			}
			pk, sks, err := tsig.Deal(newSeededReader("xfer-proof", seed), g.N(), g.F()+1, []byte("MAFTIA-SIM-ABC-PROOF"))
			if err != nil {
				return err
			}
			qk, qsks, err := tsig.Deal(newSeededReader("xfer-quorum", seed), g.N(), g.Quorum(), []byte("MAFTIA-SIM-QUORUM"))
			if err != nil {
				return err
			}
			s.coin, s.proof, s.proofSKs, s.quorum, s.quorumSKs = ck, pk, sks, qk, qsks
			s.Replicas, s.Engines = map[core.NodeID]*smr.Replica{}, map[core.NodeID]*abc.ABC{}
			return nil
		},
		NewReplica: func(id core.NodeID, g core.Group) (core.Protocol, error) { return s.build(id, g) },
		Recover: func(id core.NodeID, g core.Group, recs []core.Record) (core.Protocol, error) {
			r, err := s.build(id, g)
			if err != nil || s.emptyDisk {
				return r, err
			}
			var log []core.Record
			for _, rec := range recs {
				if rec.Instance.Within(smr.LogInstance) {
					log = append(log, rec)
				}
			}
			return r, r.Recover(log)
		},
		Describe: func(inst core.InstanceID, p []byte) string {
			if inst == smr.TransferInstance {
				if m, err := smr.DecodeTransfer(p); err == nil {
					return fmt.Sprintf("XFER %s seq=%d i=%d", m.Kind, m.Seq, m.Index)
				}
			}
			return describeABC(inst, p)
		},
	}
	return s
}

// xferEvery is the checkpoint interval of the suite, in batches.
const xferEvery = 2

func (s *XferSuite) build(id core.NodeID, g core.Group) (*smr.Replica, error) {
	ap := abc.DefaultParams(g, id, s.coin.coin, s.coin.sks[id-1], s.proof, s.proofSKs[id-1], kvValid)
	// Window stays at its default: with Window 2 the engine stalled in
	// phase 1 of some schedules (seed 1), which is an abc question, not
	// a state-transfer one.
	ap.BatchSize, ap.Retain = 4, 2
	eng, err := abc.New(smr.EngineInstance, ap)
	if err != nil {
		return nil, err
	}
	rp := smr.DefaultParams(g, id, kvVerify)
	rp.CheckpointEvery, rp.Quorum, rp.QuorumKey = xferEvery, s.quorum, s.quorumSKs[id-1]
	rp.UnsafeSkipTransferChecks = s.Unsafe && id == s.Lagger
	r, err := smr.NewReplica(rp, eng, kv.New())
	if err != nil {
		return nil, err
	}
	s.Replicas[id], s.Engines[id] = r, eng
	return r, nil
}

// XferTamper is a Byzantine behaviour that runs the correct replica but
// rewrites its state-transfer messages: "chunk" flips a byte of every
// CHUNK, "cert" a byte of every STATUS certificate, "size" claims a huge
// state, "silent" drops them all.
type XferTamper struct{ Mode string }

func (x XferTamper) Name() string { return "xfer-" + x.Mode }

func (x XferTamper) Wrap(_ core.NodeID, inner core.Protocol, _ *sim.ByzContext) core.Protocol {
	return &xferTamperCore{mode: x.Mode, inner: inner}
}

type xferTamperCore struct {
	mode  string
	inner core.Protocol
}

func (t *xferTamperCore) Step(ev core.Event, out *core.Output) error {
	from := len(out.Sends)
	if err := t.inner.Step(ev, out); err != nil {
		return err
	}
	kept := out.Sends[:from]
	for _, snd := range out.Sends[from:] {
		if snd.Instance == smr.TransferInstance {
			m, err := smr.DecodeTransfer(snd.Payload)
			if err != nil {
				continue
			}
			switch {
			case t.mode == "silent":
				continue
			case t.mode == "chunk" && m.Kind == wire.Transfer_CHUNK && len(m.Data) > 0:
				m.Data = bytes.Clone(m.Data)
				m.Data[len(m.Data)/2] ^= 0x20
			case t.mode == "cert" && m.Kind == wire.Transfer_STATUS && len(m.Certificate) > 0:
				m.Certificate = bytes.Clone(m.Certificate)
				m.Certificate[len(m.Certificate)-1] ^= 1
			case t.mode == "size" && m.Kind == wire.Transfer_STATUS:
				m.Size = 1 << 40
			}
			b, err := proto.Marshal(m)
			if err != nil {
				continue
			}
			snd.Payload = b
		}
		kept = append(kept, snd)
	}
	out.Sends = kept
	return nil
}

// XferResult is one schedule's outcome.
type XferResult struct {
	Seed       uint64
	Violations []string
	Transfers  uint64
	Position   uint64 // final common position
	Steps      int
}

// RunXfer runs one schedule: n replicas, s.Lagger crashed after a random
// number of deliveries while clients keep writing to the others, until
// the others' abc retention and logs are far beyond it; then it restarts
// with an empty disk (even seeds) or its own log (odd seeds) and must
// catch up through state transfer, with byz replicas Byzantine. Checked:
// no correct replica halts, executions at each position are the same
// everywhere, every correct replica ends at one position with one state
// digest, the lagger did transfer, and no correct replica is accused.
func (s *XferSuite) RunXfer(n, f int, seed uint64, byz map[core.NodeID]sim.Behaviour) XferResult {
	res := XferResult{Seed: seed}
	fail := func(format string, args ...any) {
		res.Violations = append(res.Violations, fmt.Sprintf(format, args...))
	}
	g, err := core.NewGroup(n, f, core.Async)
	if err != nil {
		fail("%v", err)
		return res
	}
	if s.Lagger == 0 {
		s.Lagger = core.NodeID(n)
	}
	c, err := sim.NewCluster(s.Suite, g, seed, byz, false)
	if err != nil {
		fail("%v", err)
		return res
	}
	rng := rand.New(rand.NewPCG(seed, 0x78666572))
	client := uint64(0)
	wave := func(to []core.NodeID) {
		for range 2 {
			client++
			op := kv.EncodeOp(&wire.KVOp{Kind: wire.KVOp_PUT, Key: fmt.Appendf(nil, "k%d", rng.IntN(5)), Value: fmt.Appendf(nil, "v%d", client)})
			req := &wire.ClientRequest{Client: client, Seq: 1, Op: op, Signature: kvMAC(client, 1, op)}
			for _, id := range to {
				c.Input(id, core.Input{Instance: smr.Instance, Value: req})
			}
		}
	}
	deliver := func() bool {
		if len(c.Pending()) == 0 {
			c.Tick()
			return false
		}
		c.Deliver(rng.IntN(len(c.Pending())))
		res.Steps++
		return true
	}
	others := slices.DeleteFunc(g.Members(), func(id core.NodeID) bool { return id == s.Lagger })
	ref := others[0]
	for ref != 0 && !c.IsCorrect(ref) {
		others = others[1:]
		ref = others[0]
	}
	// Phase 1: everyone runs a little, then the lagger crashes and the
	// others go 16 checkpoints beyond it.
	crashAt := rng.IntN(400)
	wave(g.Members())
	for i := 0; i < crashAt && c.Err() == nil; i++ {
		deliver()
	}
	c.Crash(s.Lagger)
	base := s.Replicas[s.Lagger].Position()
	for i := 0; s.Replicas[ref].Position() < base+16*xferEvery && c.Err() == nil; i++ {
		if i > 200000 {
			var ps []string
			for _, id := range g.Members() {
				ps = append(ps, fmt.Sprintf("%d:%d e%d p%d m%+v", id, s.Replicas[id].Position(), s.Engines[id].NextEpoch(), s.Engines[id].Pending(), s.Engines[id].Memory()))
			}
			fail("phase 1: replica %d stuck at %d (positions %v, %d pending, crashAt %d)", ref, s.Replicas[ref].Position(), ps, len(c.Pending()), crashAt)
			return res
		}
		if i%200 == 0 {
			wave(others)
		}
		deliver()
	}
	// Phase 2: restart (empty disk or own log), probe, catch up.
	s.emptyDisk = seed%2 == 0
	if err := c.Restart(s.Lagger); err != nil {
		fail("restart: %v", err)
		return res
	}
	c.Input(s.Lagger, core.Input{Instance: smr.TransferInstance})
	lag := s.Replicas[s.Lagger]
	for i := 0; c.Err() == nil; i++ {
		if i > 200000 {
			fail("phase 2: replica %d stuck at %d, replica %d at %d", s.Lagger, lag.Position(), ref, s.Replicas[ref].Position())
			break
		}
		if i%200 == 0 {
			if lag.Position() >= s.Replicas[ref].Position() && lag.TransferStats().Transfers > 0 {
				break
			}
			wave(g.Members())
		}
		deliver()
	}
	// Drain: no more requests; every message is delivered.
	for i := 0; len(c.Pending()) > 0 && c.Err() == nil && i < 500000; i++ {
		deliver()
	}
	if err := c.Err(); err != nil {
		fail("halt: %v", err)
	}
	res.Transfers = lag.TransferStats().Transfers
	if res.Transfers == 0 {
		fail("replica %d caught up without a state transfer", s.Lagger)
	}
	// Same state at one position everywhere.
	res.Position = s.Replicas[ref].Position()
	want, _ := s.Replicas[ref].StateDigest()
	for _, id := range c.Correct() {
		r := s.Replicas[id]
		if d, _ := r.StateDigest(); r.Position() != res.Position || d != want {
			fail("replica %d at batch %d with state %x; replica %d at %d with %x", id, r.Position(), d[:4], ref, res.Position, want[:4])
		}
	}
	// The same executions at each position (agreement across the jump).
	at := map[uint64][]string{}
	for _, id := range c.Correct() {
		byPos := map[uint64][]string{}
		for _, d := range c.Deliveries(id) {
			if e, ok := d.Value.(smr.Executed); ok && !e.Cached {
				byPos[e.Position] = append(byPos[e.Position], fmt.Sprintf("%d/%d=%x", e.Client, e.Seq, e.Result))
			}
		}
		for p, ex := range byPos {
			if prev, ok := at[p]; ok && !slices.Equal(prev, ex) {
				fail("batch %d executed differently at replica %d: %v vs %v", p, id, ex, prev)
			}
			at[p] = ex
		}
	}
	for _, a := range c.Evidence() {
		if c.IsCorrect(a.By) && c.IsCorrect(a.Accused) {
			fail("replica %d accused correct replica %d: %s %s", a.By, a.Accused, a.Kind, a.Detail)
		}
	}
	return res
}
