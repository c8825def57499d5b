package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/maftia/maftia/abc"
	"github.com/maftia/maftia/apps/kv"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/keys"
	"github.com/maftia/maftia/smr"
	"github.com/maftia/maftia/storage"
)

// TestEmptyDiskCatchesUpByStateTransfer (issue 7; ATTACKS rows 1, 9): the
// replicas certify checkpoints and truncate their logs; replica 4 is
// stopped, its data directory deleted, and restarted empty. It fetches the
// latest certified state from its peers — replica 1 serving forged
// certificates and tampered chunks (bad-state) — resumes ordering after
// it, ends with the same state digest as the others, and a second restart
// starts from the transferred checkpoint it stored.
func TestEmptyDiskCatchesUpByStateTransfer(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	l, write := startTuned(t, keys.Async, 4, 1, 50, func(l *Local) {
		l.Durable, l.CheckpointEvery, l.Attacks = true, 16, map[uint32]Attack{1: AttackBadState}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	put := func(i int) { t.Helper(); write(ctx, i) }
	i := 0
	for ; l.Server(1).StableCheckpoint() < smr.LogShard+16; i++ {
		if i > 600 {
			t.Fatalf("no checkpoint above %d after %d writes", smr.LogShard+16, i)
		}
		put(i)
	}
	if recs, _ := l.Server(1).pdb.Records(smr.LogShardInstance(0)); len(recs) != 0 {
		t.Fatalf("replica 1 kept log shard 0 below checkpoint %d", l.Server(1).StableCheckpoint())
	}
	if err := l.Stop(4); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(l.Dir, "data-4")); err != nil {
		t.Fatal(err)
	}
	for range 20 { // the others move on
		put(i)
		i++
	}
	if err := l.Start(4); err != nil {
		t.Fatal(err)
	}
	s4 := l.Server(4)
	for ; s4.Transfers() == 0 || s4.Position() < l.Server(1).Position(); i++ {
		if ctx.Err() != nil {
			t.Fatalf("replica 4 at batch %d after %d transfers, replica 1 at %d", s4.Position(), s4.Transfers(), l.Server(1).Position())
		}
		put(i) // liveness needs traffic
	}
	t.Logf("replica 4 caught up by %d state transfer(s) to checkpoint %d, at batch %d; evidence against replica 1 (bad-state): %v",
		s4.Transfers(), s4.StableCheckpoint(), s4.Position(), s4.Status().Evidence[1])
	transferred := s4.StableCheckpoint()
	sameStates(ctx, t, l)
	// A second restart starts from the checkpoint the transfer stored.
	if err := l.Start(4); err != nil {
		t.Fatalf("second restart: %v", err)
	}
	if s := l.Server(4); s.StableCheckpoint() < transferred || s.Position() < transferred {
		t.Fatalf("second restart at checkpoint %d, batch %d; transferred %d", s.StableCheckpoint(), s.Position(), transferred)
	}
	t.Logf("second restart from stored checkpoint %d at batch %d", l.Server(4).StableCheckpoint(), l.Server(4).Position())
}

// A replica cut off from the others (not restarted) while they certify
// checkpoints far ahead, then healed with no client traffic at all: with
// the idle probe it learns of the latest certified checkpoint by itself
// and catches up by state transfer. The teeth: with the probe disabled
// (IdleProbe < 0) it stays where it was, since nothing else tells it that
// it is behind.
func TestCutOffReplicaCatchesUpWithoutTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	for _, probe := range []time.Duration{300 * time.Millisecond, -1} {
		t.Run(fmt.Sprintf("idle-probe=%v", probe), func(t *testing.T) {
			// Retain 8: more than 8 epochs behind, FETCH cannot help, so
			// only a certified checkpoint can.
			l, write := startTuned(t, keys.Async, 4, 1, 50, func(l *Local) { l.CheckpointEvery, l.IdleProbe, l.Retain = 16, probe, 8 })
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			put := func(i int) { t.Helper(); write(ctx, i) }
			s1, s4 := l.Server(1), l.Server(4)
			for id := uint32(1); id <= 3; id++ {
				l.Server(id).CutLinks(4)
			}
			s4.CutLinks(1, 2, 3)
			i := 0
			for ; s1.StableCheckpoint() < 48; i++ {
				if i > 600 {
					t.Fatalf("no checkpoint at 48 after %d writes", i)
				}
				put(i)
			}
			behind := s4.Position()
			for id := uint32(1); id <= 4; id++ {
				l.Server(id).CutLinks() // heal; no more writes from here on
			}
			target := s1.StableCheckpoint()
			deadline := time.Now().Add(10 * time.Second)
			if probe < 0 {
				deadline = time.Now().Add(3 * time.Second)
			}
			for s4.Position() < target && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			got := s4.Position()
			t.Logf("replica 4 at batch %d before the heal, %d after (transfers %d, idle probes %d); certified checkpoint %d",
				behind, got, s4.Transfers(), s4.idleProbes.Load(), target)
			switch {
			case probe > 0 && (got < target || s4.Transfers() == 0):
				t.Fatalf("replica 4 did not catch up without traffic: batch %d, checkpoint %d", got, target)
			case probe < 0 && got >= target:
				t.Fatalf("replica 4 caught up without the idle probe (batch %d): the test has no teeth", got)
			}
		})
	}
}

// sameStates waits until every replica of l sits at one position, stops
// them all and compares their state digests.
func sameStates(ctx context.Context, t *testing.T, l *Local) {
	t.Helper()
	var ss []*Server
	for _, m := range l.Cluster.Members {
		ss = append(ss, l.Server(m.ID))
	}
	for settled := 0; settled < 10; {
		p := ss[0].Position()
		same := true
		for _, s := range ss {
			same = same && s.Position() == p
		}
		if same {
			settled++
		} else {
			settled = 0
		}
		if ctx.Err() != nil {
			t.Fatal("replicas did not settle at one position")
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.StopAll()
	want, _ := ss[0].rep.StateDigest()
	for id, s := range ss {
		if d, _ := s.rep.StateDigest(); d != want || s.Position() != ss[0].Position() {
			t.Fatalf("replica %d: state %x at %d, replica 1: %x at %d", id+1, d[:6], s.Position(), want[:6], ss[0].Position())
		}
	}
}

// State transfer on the hybrid configuration (n = 3 with TTCB modules):
// replica 3 is stopped, its data directory deleted, and restarted empty
// while the others have certified checkpoints; it fetches the latest
// certified state, the hybrid engine resumes after it (hybrid.Engine
// implements smr.Resumer), and it ends with the others' state digest.
func TestHybridEmptyDiskCatchesUpByStateTransfer(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	l, _ := startTuned(t, keys.Hybrid, 3, 1, 20, func(l *Local) { l.Durable, l.CheckpointEvery = true, 8 })
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	kvc := kv.Client{S: dial(t, l, 0)}
	put := func(i int) {
		t.Helper()
		pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
		defer pcancel()
		if _, err := kvc.Put(pctx, []byte(fmt.Sprintf("k%d", i%20)), []byte(fmt.Sprint(i))); err != nil {
			// While replica 3 is down, a stall that makes both live
			// modules withhold one execution stops the service until
			// replica 3 is back (the known limit of docs/adr/0006):
			// say so if that is what happened.
			t.Fatalf("put %d: %v (replica 3 running: %v; replica 1's engine: %s; replica 2's: %s)", i, err,
				l.Server(3) != nil, l.Server(1).heng.Progress(), l.Server(2).heng.Progress())
		}
	}
	i := 0
	for ; l.Server(1).StableCheckpoint() < 8; i++ {
		if i > 200 {
			t.Fatalf("no checkpoint after %d writes", i)
		}
		put(i)
	}
	if err := l.Stop(3); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(l.Dir, "data-3")); err != nil {
		t.Fatal(err)
	}
	for ; l.Server(1).StableCheckpoint() < 16; i++ { // the others move on
		if i > 400 {
			t.Fatalf("no second checkpoint after %d writes", i)
		}
		put(i)
	}
	if err := l.Start(3); err != nil {
		t.Fatal(err)
	}
	s3 := l.Server(3)
	for ; s3.Transfers() == 0 || s3.Position() < l.Server(1).Position(); i++ {
		if ctx.Err() != nil {
			t.Fatalf("replica 3 at batch %d after %d transfers, replica 1 at %d (%s)", s3.Position(), s3.Transfers(),
				l.Server(1).Position(), s3.heng.Progress())
		}
		put(i)
	}
	t.Logf("replica 3 caught up by %d state transfer(s) to checkpoint %d, at batch %d (replica 1 at %d)",
		s3.Transfers(), s3.StableCheckpoint(), s3.Position(), l.Server(1).Position())
	sameStates(ctx, t, l)
}

// startTuned creates a local cluster (one client identity), lets tune
// adjust it, starts it and returns it with a KV client on replica 1's
// identity and a writer of key i%keys.
func startTuned(t *testing.T, cfg keys.Configuration, n, f, keyCount int, tune func(*Local)) (*Local, func(context.Context, int)) {
	t.Helper()
	l, err := NewLocalConfig(t.TempDir(), cfg, n, f, 1, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	tune(l)
	if err := l.StartAll(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.StopAll)
	c := kv.Client{S: dial(t, l, 0)}
	return l, func(ctx context.Context, i int) {
		t.Helper()
		if _, err := c.Put(ctx, []byte(fmt.Sprintf("k%d", i%keyCount)), []byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
}

// abc keeps one engine record, its mark (docs/adr/0008): its
// sub-protocols' records (about 50 per epoch, 10,506 after 200 writes
// before) are no longer persisted, and records an older version left
// behind are collected once their epoch is delivered — on disk (Pebble)
// as in memory.
func TestEngineRecordsCollected(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			var left int
			l, write := startTuned(t, keys.Async, 4, 1, 20, func(l *Local) {
				l.Durable = durable
				if !durable {
					return
				}
				// Records of epochs 0–2 as the previous version wrote them.
				st, err := storage.Open(filepath.Join(l.Dir, "data-1"), storage.Options{})
				if err != nil {
					t.Fatal(err)
				}
				var old []core.Record
				for e := range uint64(3) {
					for j := range uint64(4) {
						old = append(old, core.Record{Instance: smr.EngineInstance.ChildN("e", e).ChildN("avid", j+1), Key: "echo", Value: []byte{1}})
					}
				}
				if err := st.SaveRecords(old); err != nil {
					t.Fatal(err)
				}
				left = len(old)
				st.Close()
			})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for i := range 200 {
				write(ctx, i)
			}
			s := l.Server(1)
			recs, err := s.store.Records(smr.EngineInstance) // both stores are safe to read concurrently
			if err != nil {
				t.Fatal(err)
			}
			a := s.eng.(*abc.ABC)
			mark, _ := a.Mark()
			t.Logf("epoch %d, mark %d: %d engine records held, %d collected", a.NextEpoch(), mark, len(recs), s.collected.Load())
			if len(recs) != 1 || recs[0].Instance != smr.EngineInstance || recs[0].Key != "mark" {
				t.Fatalf("engine records held: %v", recs)
			}
			if s.collected.Load() != uint64(left) {
				t.Fatalf("%d of the %d records left by an older version collected", s.collected.Load(), left)
			}
		})
	}
}
