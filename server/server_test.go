package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/maftia/maftia/apps/kv"
	"github.com/maftia/maftia/client"
)

// TestMain checks that no goroutine of a server or a client outlives its
// test (servers are stopped and clients closed in Cleanup).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startLocal(t *testing.T, n, f, clients int, durable bool, attacks map[uint32]Attack) *Local {
	t.Helper()
	l, err := NewLocal(t.TempDir(), n, f, clients, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Durable = durable
	for id, a := range attacks {
		l.Attacks[id] = a
	}
	if err := l.StartAll(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.StopAll)
	return l
}

func dial(t *testing.T, l *Local, i int) *client.Client {
	t.Helper()
	c, err := client.Dial(l.Cluster, l.Clients[i], client.Options{Retry: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestPutGetAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	l := startLocal(t, 4, 1, 1, false, nil)
	putGetEach(t, l, 40)
	// Checkpoint certificates every 64 batches (one request per batch here).
	for _, m := range l.Cluster.Members {
		t.Logf("replica %d: position %d, certified checkpoint %d", m.ID, l.Server(m.ID).Position(), l.Server(m.ID).StableCheckpoint())
		if cp := l.Server(m.ID).StableCheckpoint(); cp < 64 && l.Server(m.ID).Position() >= 70 {
			t.Errorf("replica %d at batch %d has no certified checkpoint (stable %d)", m.ID, l.Server(m.ID).Position(), cp)
		}
	}
}

// putGetEach writes keys k0…k{count−1} through client 0 and reads each
// back, failing on any error or wrong value.
func putGetEach(t *testing.T, l *Local, count int) {
	t.Helper()
	c := kv.Client{S: dial(t, l, 0)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range count {
		k := []byte(fmt.Sprintf("k%d", i))
		if _, err := c.Put(ctx, k, []byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		r, err := c.Get(ctx, k)
		if err != nil || !r.Found || string(r.Value) != fmt.Sprint(i) {
			t.Fatalf("get %d: %v %v", i, r, err)
		}
	}
}
