package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/apps/kv"
	"github.com/maftia/maftia/apps/kv/kvtest"
	"github.com/maftia/maftia/wire"
)

// fakeService is an in-process key-value service with deliberate bugs, to
// show the nemesis checks have teeth (ATTACKS.md: "every attack row has a
// test that fails on a deliberately broken variant").
type fakeService struct {
	mu      sync.Mutex
	primary *kv.Store
	stale   *kv.Store // staleReads: GETs are answered from here
	ops     int
	// staleReads: a lagging copy answers reads (S3 violation).
	// dropEvery: every dropEvery-th put is acknowledged but not applied (S2).
	staleReads bool
	dropEvery  int
}

func (f *fakeService) Submit(_ context.Context, raw []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	time.Sleep(100 * time.Microsecond) // let clients interleave
	var op wire.KVOp
	if err := proto.Unmarshal(raw, &op); err != nil {
		return nil, err
	}
	f.ops++
	if op.Kind == wire.KVOp_PUT && f.dropEvery > 0 && f.ops%f.dropEvery == 0 {
		return f.stale.Apply(0, kv.EncodeOp(&wire.KVOp{Kind: wire.KVOp_GET, Key: []byte("-")})), nil
	}
	if f.staleReads && op.Kind == wire.KVOp_GET {
		out := f.stale.Apply(0, raw)
		if f.ops%7 == 0 { // the copy catches up now and then
			snap, err := f.primary.Snapshot()
			if err != nil {
				return nil, err
			}
			f.stale = kv.New()
			if err := f.stale.Restore(snap); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return f.primary.Apply(0, raw), nil
}

func runFake(t *testing.T, f *fakeService) (porcupine.CheckResult, int) {
	f.primary, f.stale = kv.New(), kv.New()
	h := kvtest.NewHistory()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var acked []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); acked = writeUnique(ctx, f) }()
	kvtest.Run(ctx, h, []kvtest.Submitter{f, f, f}, 2, time.Second)
	wg.Wait()
	for _, k := range []string{"k0", "k1"} {
		if err := h.Read(context.Background(), 9, f, k); err != nil {
			t.Fatal(err)
		}
	}
	lost, err := lostWrites(context.Background(), f, acked, t)
	if err != nil {
		t.Fatal(err)
	}
	res, _, _ := h.Linearizable(10 * time.Second)
	return res, lost
}

// TestChecksHaveTeeth: the nemesis checks pass a correct service and
// catch a service with stale reads (porcupine) and one that acknowledges
// writes it drops (lost acknowledged writes).
func TestChecksHaveTeeth(t *testing.T) {
	if res, lost := runFake(t, &fakeService{}); res != porcupine.Ok || lost != 0 {
		t.Fatalf("correct service: porcupine %s, %d lost", res, lost)
	}
	if res, _ := runFake(t, &fakeService{staleReads: true}); res != porcupine.Illegal {
		t.Errorf("stale reads not caught: porcupine %s", res)
	}
	if _, lost := runFake(t, &fakeService{dropEvery: 5}); lost == 0 {
		t.Errorf("dropped acknowledged writes not caught")
	}
}
