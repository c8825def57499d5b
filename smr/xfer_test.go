package smr

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/wire"
)

// blobApp is an application with a large state (about 40 KiB per
// request), so checkpoint states span several chunks.
type blobApp struct{ data []byte }

func (b *blobApp) Apply(client uint64, op []byte) []byte {
	for range (40 << 10) / max(1, len(op)) {
		b.data = append(b.data, op...)
	}
	return fmt.Appendf(nil, "%d", len(b.data))
}
func (b *blobApp) Snapshot() ([]byte, error) { return bytes.Clone(b.data), nil }
func (b *blobApp) Restore(s []byte) error    { b.data = bytes.Clone(s); return nil }

// resumeEngine is batchEngine plus the Resumer extension: its token for
// batch seq is "tok<seq>", and it records the resumes.
type resumeEngine struct {
	batchEngine
	resumed []string
}

func (e *resumeEngine) ResumeToken(seq uint64) ([]byte, error) {
	return fmt.Appendf(nil, "tok%d", seq), nil
}
func (e *resumeEngine) Resume(seq uint64, token []byte) error {
	e.resumed = append(e.resumed, fmt.Sprintf("%d:%s", seq, token))
	e.seq = seq
	return nil
}

// xferNet is four replicas (checkpoints every 2 batches) and a FIFO
// network between them; tamper, if set, rewrites (or drops, returning
// nil) the transfer messages a replica sends.
type xferNet struct {
	t       *testing.T
	pk      *tsig.PublicKey
	sks     []*tsig.SecretShare
	rs      []*Replica
	engines []*resumeEngine
	queue   []core.Send
	from    []core.NodeID
	outs    []core.Output // everything each replica output
	tamper  map[core.NodeID]func(m *wire.Transfer) *wire.Transfer
}

func newXferNet(t *testing.T, mod func(id core.NodeID, p *Params)) *xferNet {
	t.Helper()
	g := core.MustGroup(4, 1, core.Async)
	pk, sks, err := tsig.Deal(rand.Reader, 4, g.Quorum(), []byte("TEST_QUORUM_"))
	if err != nil {
		t.Fatal(err)
	}
	n := &xferNet{t: t, pk: pk, sks: sks, outs: make([]core.Output, 4), tamper: map[core.NodeID]func(*wire.Transfer) *wire.Transfer{}}
	for i := range 4 {
		p := DefaultParams(g, core.NodeID(i+1), verifyMAC)
		p.CheckpointEvery, p.Quorum, p.QuorumKey = 2, pk, sks[i]
		if mod != nil {
			mod(core.NodeID(i+1), &p)
		}
		eng := &resumeEngine{}
		r, err := NewReplica(p, eng, &blobApp{})
		if err != nil {
			t.Fatal(err)
		}
		n.rs, n.engines = append(n.rs, r), append(n.engines, eng)
	}
	return n
}

// execute runs batches 1..k at replica id.
func (n *xferNet) execute(id core.NodeID, k uint64) {
	r := n.rs[id-1]
	for s := r.Position() + 1; s <= k; s++ {
		r.scratch.Reset()
		r.scratch.Deliver(EngineInstance, &wire.Batch{Seq: s, Requests: [][]byte{EncodeRequest(req(s%3, s, fmt.Sprintf("op%d", s)))}})
		var out core.Output
		if err := r.absorb(&out); err != nil {
			n.t.Fatal(err)
		}
		n.collect(id, &out)
	}
}

func (n *xferNet) collect(id core.NodeID, out *core.Output) {
	for _, s := range out.Sends {
		if s.Instance == TransferInstance && n.tamper[id] != nil {
			m, err := DecodeTransfer(s.Payload)
			if err != nil {
				n.t.Fatal(err)
			}
			if m = n.tamper[id](m); m == nil {
				continue
			}
			s.Payload = encodeTransfer(m)
		}
		n.queue, n.from = append(n.queue, s), append(n.from, id)
	}
	o := &n.outs[id-1]
	o.Persist = append(o.Persist, out.Persist...)
	o.Deliveries = append(o.Deliveries, out.Deliveries...)
	o.Evidence = append(o.Evidence, out.Evidence...)
}

// run delivers messages in FIFO order until none are left.
func (n *xferNet) run() {
	for steps := 0; len(n.queue) > 0; steps++ {
		if steps > 100000 {
			n.t.Fatal("no quiescence")
		}
		s, from := n.queue[0], n.from[0]
		n.queue, n.from = n.queue[1:], n.from[1:]
		var to []core.NodeID
		if s.To == core.Everyone {
			to = []core.NodeID{1, 2, 3, 4}
		} else {
			to = []core.NodeID{s.To}
		}
		for _, id := range to {
			var out core.Output
			if err := n.rs[id-1].Step(core.Message{From: from, Instance: s.Instance, Payload: s.Payload}, &out); err != nil {
				n.t.Fatalf("replica %d: %v", id, err)
			}
			n.collect(id, &out)
		}
	}
}

// lagScenario: replicas 1..3 execute 20 batches (checkpoints certified up
// to 20, a state of about 800 KiB: 4 chunks); replica 4 executed none and
// catches up by state transfer.
func (n *xferNet) lagScenario() {
	for id := core.NodeID(1); id <= 3; id++ {
		n.execute(id, 20)
	}
	n.run()
}

func (n *xferNet) checkCaughtUp(lagger core.NodeID) {
	n.t.Helper()
	r := n.rs[lagger-1]
	want, _ := n.rs[0].StateDigest()
	got, _ := r.StateDigest()
	if r.Position() != 20 || got != want {
		n.t.Fatalf("replica %d at %d (digest %x), want 20 (%x)", lagger, r.Position(), got[:4], want[:4])
	}
	if cp := r.StableCheckpoint(); cp.Seq != 20 || VerifyCheckpoint(n.pk, cp) != nil {
		n.t.Fatalf("stable checkpoint %d after transfer", cp.Seq)
	}
	if e := n.engines[lagger-1].resumed; len(e) == 0 || e[len(e)-1] != "20:tok20" {
		n.t.Fatalf("engine resumes %v, want the last at 20 with the certified token", e)
	}
	var rec []byte
	for _, p := range n.outs[lagger-1].Persist {
		if p.Instance == TransferInstance && p.Key == TransferRecordKey {
			rec = p.Value
		}
	}
	cp, state, err := DecodeTransferRecord(rec)
	if err != nil || cp.Seq != 20 {
		n.t.Fatalf("transfer record: %v (seq %d)", err, cp.Seq)
	}
	// A second restart from the record alone works.
	g := core.MustGroup(4, 1, core.Async)
	p := DefaultParams(g, lagger, verifyMAC)
	p.CheckpointEvery, p.Quorum, p.QuorumKey = 2, n.pk, n.sks[lagger-1]
	again, err := NewReplica(p, &resumeEngine{}, &blobApp{})
	if err != nil {
		n.t.Fatal(err)
	}
	if err := again.RestoreCheckpoint(cp, state); err != nil {
		n.t.Fatalf("restore from the transfer record: %v", err)
	}
	if d, _ := again.StateDigest(); d != want {
		n.t.Fatal("state restored from the transfer record differs")
	}
	var transferred bool
	for _, d := range n.outs[lagger-1].Deliveries {
		if tr, ok := d.Value.(Transferred); ok && tr.Checkpoint.Seq == 20 {
			transferred = true
		}
	}
	if !transferred {
		n.t.Fatal("no Transferred delivery")
	}
}

func (n *xferNet) accused(by core.NodeID) map[core.NodeID]core.EvidenceKind {
	a := map[core.NodeID]core.EvidenceKind{}
	for _, e := range n.outs[by-1].Evidence {
		a[e.Accused] = e.Kind
	}
	return a
}

// A replica that executed nothing while the others certified checkpoints
// fetches the latest certified state, ends with the same state digest,
// resumes its engine after it and persists it for the next restart.
func TestTransferCatchesUpLaggingReplica(t *testing.T) {
	n := newXferNet(t, nil)
	n.lagScenario()
	n.checkCaughtUp(4)
	if a := n.accused(4); len(a) != 0 {
		t.Fatalf("evidence against correct replicas: %v", a)
	}
	st := n.rs[3].TransferStats()
	t.Logf("replica 4: %+v", st)
	if st.Transfers == 0 || st.ChunksFetched < 4 {
		t.Fatalf("stats %+v", st)
	}
}

// Byzantine sources (ATTACKS rows 7–9): a forged certificate, chunks that
// do not match, oversized chunks, silence, a lie about progress. The
// lagging replica refuses each, accuses where the misbehaviour is
// provable, and still catches up from the correct replicas.
func TestTransferSurvivesByzantineSources(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(m *wire.Transfer) *wire.Transfer
		accuse core.EvidenceKind // "" none
	}{
		{"forged-certificate", func(m *wire.Transfer) *wire.Transfer {
			if m.Kind == wire.Transfer_STATUS {
				m.Certificate = bytes.Clone(m.Certificate)
				m.Certificate[len(m.Certificate)-1] ^= 1
			}
			return m
		}, core.InvalidProof},
		{"wrong-chunk", func(m *wire.Transfer) *wire.Transfer {
			if m.Kind == wire.Transfer_CHUNK {
				m.Data = bytes.Clone(m.Data)
				m.Data[len(m.Data)-1] ^= 1
			}
			return m
		}, core.InvalidProof},
		{"wrong-hashes", func(m *wire.Transfer) *wire.Transfer {
			if m.Kind == wire.Transfer_STATUS {
				m.Hashes[0] = make([]byte, 32)
			}
			return m
		}, core.InvalidProof},
		{"huge-chunk", func(m *wire.Transfer) *wire.Transfer {
			if m.Kind == wire.Transfer_CHUNK {
				m.Data = make([]byte, SnapshotChunk+1)
			}
			return m
		}, core.Malformed},
		{"huge-state", func(m *wire.Transfer) *wire.Transfer {
			if m.Kind == wire.Transfer_STATUS {
				m.Size = 1 << 40
			}
			return m
		}, core.Malformed},
		{"silent", func(m *wire.Transfer) *wire.Transfer { return nil }, ""},
		{"silent-chunks", func(m *wire.Transfer) *wire.Transfer {
			if m.Kind == wire.Transfer_CHUNK {
				return nil
			}
			return m
		}, ""},
		{"lies-behind", func(m *wire.Transfer) *wire.Transfer {
			if m.Kind == wire.Transfer_STATUS {
				m.Seq = 2 // a real-looking but stale claim: ignored unverified
			}
			return m
		}, ""},
		{"lies-ahead", func(m *wire.Transfer) *wire.Transfer {
			if m.Kind == wire.Transfer_STATUS {
				m.Seq = 1 << 40 // the certificate cannot follow
			}
			return m
		}, core.InvalidProof},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for byz := core.NodeID(1); byz <= 3; byz++ { // each position in the source order
				n := newXferNet(t, nil)
				n.tamper[byz] = tc.tamper
				n.lagScenario()
				n.checkCaughtUp(4)
				a := n.accused(4)
				for k, kind := range a {
					if k != byz || (tc.accuse != "" && kind != tc.accuse) {
						t.Fatalf("byzantine %d: evidence %v", byz, a)
					}
				}
				if tc.accuse != "" && a[byz] == "" && n.rs[3].TransferStats().Refused > 0 {
					t.Fatalf("byzantine %d: refused without evidence", byz)
				}
			}
		})
	}
}

// Unsolicited STATUS messages are never verified (CPU bound, ATTACKS row
// 9), PROBEs are answered a few times per checkpoint and FETCHes at most about
// twice per chunk (no amplification).
func TestTransferBoundsWorkForByzantinePeers(t *testing.T) {
	n := newXferNet(t, nil)
	n.lagScenario()
	r := n.rs[0]
	var out core.Output
	st := wire.Transfer{Kind: wire.Transfer_STATUS, Seq: 1 << 30, Digest: make([]byte, 32), Certificate: []byte("x"), Size: 1}
	st.Hashes = [][]byte{make([]byte, 32)}
	for range 100 {
		if err := r.Step(core.Message{From: 4, Instance: TransferInstance, Payload: encodeTransfer(&st)}, &out); err != nil {
			t.Fatal(err)
		}
	}
	if v := r.TransferStats().Verified; v != 0 || len(out.Evidence) != 0 {
		t.Fatalf("unsolicited STATUS: %d verifications, evidence %v", v, out.Evidence)
	}
	out.Reset()
	for range 100 {
		_ = r.Step(core.Message{From: 4, Instance: TransferInstance, Payload: encodeTransfer(&wire.Transfer{Kind: wire.Transfer_PROBE})}, &out)
		_ = r.Step(core.Message{From: 4, Instance: TransferInstance, Payload: encodeTransfer(&wire.Transfer{Kind: wire.Transfer_FETCH, Seq: 20, Index: 0})}, &out)
	}
	var status, chunks int
	for _, s := range out.Sends {
		m, _ := DecodeTransfer(s.Payload)
		switch m.Kind {
		case wire.Transfer_STATUS:
			status++
		case wire.Transfer_CHUNK:
			chunks++
		}
	}
	// Replica 4 already got replica 1's STATUS for 20 during the scenario.
	if status > statusBudget-1 || chunks > 2*4+4 {
		t.Fatalf("100 PROBEs and FETCHes answered with %d STATUS and %d CHUNKs", status, chunks)
	}
}

// The checks have teeth: with certificate and chunk checks skipped, a
// Byzantine source that serves a tampered state gets it installed (the
// lagging replica's digest differs), which the checked replica refuses.
func TestTransferChecksHaveTeeth(t *testing.T) {
	corrupt := func(m *wire.Transfer) *wire.Transfer {
		if m.Kind == wire.Transfer_CHUNK {
			m.Data = bytes.Clone(m.Data)
			m.Data[len(m.Data)-1] ^= 1
		}
		return m
	}
	for _, unsafe := range []bool{false, true} {
		n := newXferNet(t, func(id core.NodeID, p *Params) { p.UnsafeSkipTransferChecks = unsafe && id == 4 })
		n.tamper[1] = corrupt // replica 1 is the first source
		n.tamper[2] = func(*wire.Transfer) *wire.Transfer { return nil }
		n.tamper[3] = func(*wire.Transfer) *wire.Transfer { return nil }
		n.lagScenario()
		want, _ := n.rs[0].StateDigest()
		got, _ := n.rs[3].StateDigest()
		switch {
		case !unsafe && (n.rs[3].Position() != 0 || n.accused(4)[1] != core.InvalidProof):
			t.Fatalf("checked replica at %d, evidence %v", n.rs[3].Position(), n.accused(4))
		case unsafe && (n.rs[3].Position() != 20 || got == want):
			t.Fatalf("broken variant not caught: position %d, digest equal %v", n.rs[3].Position(), got == want)
		}
	}
	t.Log("unchecked transfer installs a tampered state; the checked one refuses it and accuses the source")
}

// An engine that overtakes a download makes the replica abandon it.
func TestTransferAbandonedWhenEngineCatchesUp(t *testing.T) {
	n := newXferNet(t, nil)
	n.tamper[1] = func(m *wire.Transfer) *wire.Transfer {
		if m.Kind == wire.Transfer_CHUNK {
			return nil
		}
		return m
	}
	n.tamper[2], n.tamper[3] = n.tamper[1], n.tamper[1]
	n.lagScenario()
	if seq, ok := n.rs[3].Transferring(); !ok || seq != 20 {
		t.Fatalf("no download of 20 in progress (%d, %v)", seq, ok)
	}
	n.execute(4, 20)
	if _, ok := n.rs[3].Transferring(); ok {
		t.Fatal("download kept after the engine caught up")
	}
}

// Records of transferred states round-trip; damaged ones are refused.
func TestTransferRecord(t *testing.T) {
	cp := Checkpoint{Seq: 7, Digest: [32]byte{1}, Signature: []byte("sig")}
	c, st, err := DecodeTransferRecord(EncodeTransferRecord(cp, []byte("state")))
	if err != nil || c.Seq != 7 || c.Digest != cp.Digest || string(c.Signature) != "sig" || string(st) != "state" {
		t.Fatalf("round trip: %+v %q %v", c, st, err)
	}
	bad := binary.BigEndian.AppendUint64(make([]byte, 40), 1<<40)
	if _, _, err := DecodeTransferRecord(bad); err == nil {
		t.Fatal("a record with an impossible certificate length decoded")
	}
}

func FuzzDecodeTransfer(f *testing.F) {
	f.Add(encodeTransfer(&wire.Transfer{Kind: wire.Transfer_PROBE}))
	f.Add(encodeTransfer(&wire.Transfer{Kind: wire.Transfer_STATUS, Seq: 64, Digest: make([]byte, 32), Certificate: []byte{1, 2}, Size: 9, Hashes: [][]byte{make([]byte, 32)}}))
	f.Add(encodeTransfer(&wire.Transfer{Kind: wire.Transfer_FETCH, Seq: 64, Index: 3}))
	f.Add(encodeTransfer(&wire.Transfer{Kind: wire.Transfer_CHUNK, Seq: 64, Index: 3, Data: []byte("chunk")}))
	f.Add([]byte{0xff, 0x01})
	g := core.MustGroup(4, 1, core.Async)
	pk, sks, err := tsig.Deal(rand.Reader, 4, g.Quorum(), []byte("TEST_QUORUM_"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeTransfer(b)
		if err != nil {
			return
		}
		if m.Kind == wire.Transfer_CHUNK && len(m.Data) > SnapshotChunk {
			t.Fatal("oversized chunk accepted")
		}
		// Replay it through the handler of a replica (ATTACKS row 8).
		p := DefaultParams(g, 1, verifyMAC)
		p.CheckpointEvery, p.Quorum, p.QuorumKey = 2, pk, sks[0]
		r, err := NewReplica(p, &resumeEngine{}, &blobApp{})
		if err != nil {
			t.Fatal(err)
		}
		var out core.Output
		if err := r.Step(core.Message{From: 2, Instance: TransferInstance, Payload: b}, &out); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzDecodeTransferRecord(f *testing.F) {
	f.Add(EncodeTransferRecord(Checkpoint{Seq: 2, Signature: []byte("s")}, []byte("state")))
	f.Add(make([]byte, 48))
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, st, err := DecodeTransferRecord(b)
		if err == nil && 48+len(cp.Signature)+len(st) != len(b) {
			t.Fatal("record lengths do not add up")
		}
	})
}

// A source that moved on to a newer checkpoint answers FETCHes for the
// old one with its STATUS: the lagging replica drops it as a source for
// the old target and switches to the newer checkpoint.
func TestTransferFollowsSourceToNewerCheckpoint(t *testing.T) {
	n := newXferNet(t, nil)
	// Replicas 1..3 certify up to 20; replica 4 starts fetching 20 from
	// replica 1 only (2 and 3 do not answer its probes).
	n.tamper[2] = func(m *wire.Transfer) *wire.Transfer {
		if m.Kind == wire.Transfer_STATUS || m.Kind == wire.Transfer_CHUNK {
			return nil
		}
		return m
	}
	n.tamper[3] = n.tamper[2]
	hold := func(m *wire.Transfer) *wire.Transfer {
		if m.Kind == wire.Transfer_CHUNK {
			return nil // replica 1 is slow: its chunks are lost
		}
		return m
	}
	n.tamper[1] = hold
	n.lagScenario()
	if seq, ok := n.rs[3].Transferring(); !ok || seq != 20 {
		t.Fatalf("download %d %v", seq, ok)
	}
	// The others move on to 24 without telling replica 4 (no shares).
	for id := core.NodeID(1); id <= 3; id++ {
		n.execute(id, 24)
	}
	var shares []core.Send
	var senders []core.NodeID
	for i, s := range n.queue {
		if s.Instance == CheckpointInstance {
			shares, senders = append(shares, s), append(senders, n.from[i])
		}
	}
	n.queue, n.from = nil, nil
	for i, s := range shares { // certify 22 and 24 at 1..3 only
		for id := core.NodeID(1); id <= 3; id++ {
			var out core.Output
			if err := n.rs[id-1].Step(core.Message{From: senders[i], Instance: s.Instance, Payload: s.Payload}, &out); err != nil {
				t.Fatal(err)
			}
			n.collect(id, &out)
		}
	}
	n.queue, n.from = nil, nil
	delete(n.tamper, 1)
	// Replica 4 asks replica 1 again for a chunk of 20 (endgame).
	var out core.Output
	n.rs[3].pump(&out)
	n.rs[3].cp.x.dl.asked = map[int][]core.NodeID{}
	n.rs[3].cp.x.dl.inflight = map[core.NodeID]int{}
	n.rs[3].pump(&out)
	n.collect(4, &out)
	n.run()
	r := n.rs[3]
	want, _ := n.rs[0].StateDigest()
	if got, _ := r.StateDigest(); r.Position() != 24 || got != want {
		t.Fatalf("replica 4 at %d, want 24 with the others' state", r.Position())
	}
}
