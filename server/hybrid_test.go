package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/maftia/maftia/apps/kv/kvtest"
	"github.com/maftia/maftia/client"
	"github.com/maftia/maftia/crypto/keys"
)

func startHybrid(t *testing.T, clients int, durable bool, attacks map[uint32]Attack) *Local {
	t.Helper()
	l, err := NewLocalConfig(t.TempDir(), keys.Hybrid, 3, 1, clients, testLogger())
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

// The replicated KV service runs unchanged on the hybrid configuration:
// n = 3 replicas (f = 1) ordered by the TTCB's block agreement, each with
// its own in-process TTCB module on a loopback control network.
func TestHybridPutGet(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	l := startHybrid(t, 1, false, nil)
	putGetEach(t, l, 20)
	for _, m := range l.Cluster.Members {
		t.Logf("replica %d: position %d", m.ID, l.Server(m.ID).Position())
	}
}

// With replica 3 Byzantine (each attack) and f = 1 of n = 3, the clients'
// history is linearizable, and forged batches are reported as evidence.
func TestHybridLinearizableWithByzantineReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	for _, a := range Attacks {
		t.Run(string(a), func(t *testing.T) {
			l := startHybrid(t, 3, false, map[uint32]Attack{3: a})
			cs := dialAll(t, l, 3)
			h := kvtest.NewHistory()
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			kvtest.Run(ctx, h, cs, 3, 5*time.Second)
			h.Check(t)
			var evidence, proofs uint64
			for id := uint32(1); id <= 2; id++ {
				for _, n := range l.Server(id).Status().Evidence[3] {
					evidence += n
				}
			}
			for _, c := range cs {
				proofs += c.(*client.Client).Faults()[3]
			}
			t.Logf("attack %s: %d ops, %d evidence items at correct replicas, %d signed wrong replies held by clients",
				a, h.Acknowledged(), evidence, proofs)
			switch a {
			case AttackInvalidShares, AttackEquivocate:
				if evidence == 0 {
					t.Fatal("forged batches were not reported as evidence")
				}
			case AttackCorruptState:
				if proofs == 0 {
					t.Fatal("wrong replies were not detected by clients")
				}
			}
		})
	}
}

// A hybrid replica stopped hard mid-workload restarts from its durable
// log and the engine's resume point, catches up through the TTCB's
// results and FETCH, and no acknowledged write is lost (S2, S3).
func TestHybridLinearizableAcrossCrashRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	l := startHybrid(t, 3, true, nil)
	h := kvtest.NewHistory()
	stop, restart := crashRestart(t, l, 2)
	faultedWorkload(t, dialAll(t, l, 3), h, 6*time.Second, 2*time.Second, stop, restart)
	fc := dial(t, l, 2)
	for i := range 3 {
		if err := h.Read(context.Background(), 3, fc, fmt.Sprintf("k%d", i)); err != nil {
			t.Fatalf("final read: %v", err)
		}
	}
	h.Check(t)
	p2, p1 := awaitCatchUp(t, l, 2, nil)
	t.Logf("replica 2 caught up to %d (replica 1 at %d)", p2, p1)
}

// testLogger logs to stderr when MAFTIA_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("MAFTIA_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// A host's TTCB module crashes and is restarted (a new incarnation that
// refuses executions begun before it rejoined): the service keeps
// answering through the other two replicas meanwhile, and afterwards the
// replica of that host gets the results its module no longer has from
// the others and catches up.
//
// Regression for issue #10: before the TTCB module vouched for "nobody
// proposed" (ttcb Module.answerNoExecution), replica 3 failed this 1 run
// in 3: its module answered ErrExpired for executions it had not yet seen
// or had missed, the engine counted them undecided, and its epoch schedule
// drifted from the others' for good.
func TestHybridTTCBModuleCrashRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	l := startHybrid(t, 3, true, nil)
	h := kvtest.NewHistory()
	faultedWorkload(t, dialAll(t, l, 3), h, 8*time.Second, 2*time.Second, func() {
		if err := l.StopTTCB(3); err != nil {
			t.Fatal(err)
		}
	}, func() {
		if err := l.StartTTCB(3); err != nil {
			t.Fatal(err)
		}
	})
	h.Check(t)
	p3, p1 := awaitCatchUp(t, l, 3, nil)
	t.Logf("replica 3 caught up to batch %d after its module's restart (replica 1 at %d)", p3, p1)
}
