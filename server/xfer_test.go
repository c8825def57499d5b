package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/maftia/maftia/apps/kv"
	"github.com/maftia/maftia/smr"
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
	l, err := NewLocal(t.TempDir(), 4, 1, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Durable, l.CheckpointEvery, l.Attacks = true, 16, map[uint32]Attack{1: AttackBadState}
	if err := l.StartAll(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.StopAll)
	c := kv.Client{S: dial(t, l, 0)}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	put := func(i int) {
		t.Helper()
		if _, err := c.Put(ctx, []byte(fmt.Sprintf("k%d", i%50)), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
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
	// Quiesce: every replica at one position, then compare the states.
	var ss []*Server
	for id := uint32(1); id <= 4; id++ {
		ss = append(ss, l.Server(id))
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
	transferred := s4.StableCheckpoint()
	l.StopAll()
	want, _ := ss[0].rep.StateDigest()
	for id, s := range ss {
		if d, _ := s.rep.StateDigest(); d != want || s.Position() != ss[0].Position() {
			t.Fatalf("replica %d: state %x at %d, replica 1: %x at %d", id+1, d[:6], s.Position(), want[:6], ss[0].Position())
		}
	}
	// A second restart starts from the checkpoint the transfer stored.
	if err := l.Start(4); err != nil {
		t.Fatalf("second restart: %v", err)
	}
	if s := l.Server(4); s.StableCheckpoint() < transferred || s.Position() < transferred {
		t.Fatalf("second restart at checkpoint %d, batch %d; transferred %d", s.StableCheckpoint(), s.Position(), transferred)
	}
	t.Logf("second restart from stored checkpoint %d at batch %d", l.Server(4).StableCheckpoint(), l.Server(4).Position())
}
