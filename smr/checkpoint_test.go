package smr

import (
	"crypto/rand"
	"encoding/binary"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/wire"
)

// checkpointCluster is four replicas with checkpoints every 2 batches,
// fed identical batches by hand.
func checkpointCluster(t *testing.T) ([]*Replica, *tsig.PublicKey, []*tsig.SecretShare) {
	t.Helper()
	g := core.MustGroup(4, 1, core.Async)
	pk, sks, err := tsig.Deal(rand.Reader, 4, g.Quorum(), []byte("TEST_QUORUM_"))
	if err != nil {
		t.Fatal(err)
	}
	var rs []*Replica
	for i := range 4 {
		p := DefaultParams(g, core.NodeID(i+1), verifyMAC)
		p.CheckpointEvery, p.Quorum, p.QuorumKey = 2, pk, sks[i]
		r, err := NewReplica(p, &batchEngine{}, newCounter())
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return rs, pk, sks
}

// executeBatches runs batches 1..k at every replica and returns each
// replica's CHECKPOINT payloads.
func executeBatches(t *testing.T, rs []*Replica, k uint64) [][]byte {
	t.Helper()
	sent := make([][]byte, len(rs))
	for i, r := range rs {
		for s := uint64(1); s <= k; s++ {
			var out core.Output
			r.scratch.Reset()
			r.scratch.Deliver(EngineInstance, &wire.Batch{Seq: s, Requests: [][]byte{EncodeRequest(req(1, s, "x"))}})
			if err := r.absorb(&out); err != nil {
				t.Fatal(err)
			}
			for _, snd := range out.Sends {
				if snd.Instance == CheckpointInstance {
					sent[i] = snd.Payload
				}
			}
		}
	}
	return sent
}

// Checkpoints become stable with n−f matching shares; the certificate
// verifies against the Quorum key and is persisted (issue 7, item 6).
func TestCheckpointCertifiedByQuorum(t *testing.T) {
	rs, pk, _ := checkpointCluster(t)
	sent := executeBatches(t, rs, 2)
	for i, r := range rs {
		var out core.Output
		for j := range 3 { // only n−f = 3 shares reach each replica
			if err := r.Step(core.Message{From: core.NodeID(j + 1), Instance: CheckpointInstance, Payload: sent[j]}, &out); err != nil {
				t.Fatal(err)
			}
		}
		cp := r.StableCheckpoint()
		if cp.Seq != 2 || VerifyCheckpoint(pk, cp) != nil {
			t.Fatalf("replica %d: stable checkpoint %d, verifies: %v", i+1, cp.Seq, VerifyCheckpoint(pk, cp))
		}
		if len(out.Persist) != 1 || out.Persist[0].Instance != CheckpointInstance {
			t.Fatalf("replica %d: certificate not persisted: %v", i+1, out.Persist)
		}
	}
	bad := rs[0].StableCheckpoint()
	bad.Digest[0] ^= 1
	if VerifyCheckpoint(pk, bad) == nil {
		t.Fatal("a certificate verified for another digest")
	}
}

// A share over other bytes is evidence and does not block the
// certificate (ATTACKS row 7); a share for another digest is a vote that
// never reaches n−f.
func TestCheckpointInvalidShareIsEvidence(t *testing.T) {
	rs, pk, sks := checkpointCluster(t)
	sent := executeBatches(t, rs, 2)
	forged := append(binary.BigEndian.AppendUint64(nil, 2), sent[3][8:40]...)
	forged = append(forged, tsig.SignShare(sks[3], []byte("other bytes")).Marshal()...)
	r := rs[0]
	var out core.Output
	for _, m := range []core.Message{
		{From: 4, Instance: CheckpointInstance, Payload: forged},
		{From: 1, Instance: CheckpointInstance, Payload: sent[0]},
		{From: 2, Instance: CheckpointInstance, Payload: sent[1]},
		{From: 3, Instance: CheckpointInstance, Payload: sent[2]},
	} {
		if err := r.Step(m, &out); err != nil {
			t.Fatal(err)
		}
	}
	if len(out.Evidence) != 1 || out.Evidence[0].Accused != 4 || out.Evidence[0].Kind != core.InvalidProof {
		t.Fatalf("evidence %v, want one invalid-proof against 4", out.Evidence)
	}
	if cp := r.StableCheckpoint(); cp.Seq != 2 || VerifyCheckpoint(pk, cp) != nil {
		t.Fatalf("no certificate from the three valid shares: %+v", cp)
	}
}

// A replica whose state differs from the one n−f replicas certified has a
// broken local invariant: it halts instead of serving a diverged state.
func TestCheckpointDivergedReplicaHalts(t *testing.T) {
	rs, _, _ := checkpointCluster(t)
	sent := executeBatches(t, rs[1:], 2)
	diverged := rs[0]
	var out core.Output
	diverged.scratch.Reset()
	diverged.scratch.Deliver(EngineInstance, &wire.Batch{Seq: 1, Requests: [][]byte{EncodeRequest(req(1, 1, "DIFFERENT"))}})
	diverged.scratch.Deliver(EngineInstance, &wire.Batch{Seq: 2})
	if err := diverged.absorb(&out); err != nil {
		t.Fatal(err)
	}
	var err error
	for j := range 3 {
		if err = diverged.Step(core.Message{From: core.NodeID(j + 2), Instance: CheckpointInstance, Payload: sent[j]}, &out); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("a replica with a diverged state accepted another state's certificate")
	}
}
