package server

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/maftia/maftia/apps/kv"
	"github.com/maftia/maftia/client"
	"github.com/maftia/maftia/wire"
)

// kvInput and kvOutput are one operation of a porcupine history.
type kvInput struct {
	kind     wire.KVOp_Kind
	key      string
	value    string
	expected string
}

type kvOutput struct {
	ok, found bool
	value     string
	unknown   bool // the client gave up: it may or may not have taken effect
}

// kvModel is a sequential key-value store, partitioned by key.
var kvModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(kvInput).key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return (*string)(nil) },
	Step: func(state, input, output any) (bool, any) {
		cur := state.(*string)
		in, out := input.(kvInput), output.(kvOutput)
		switch in.kind {
		case wire.KVOp_PUT:
			v := in.value
			return out.unknown || out.ok, &v
		case wire.KVOp_GET:
			if out.unknown {
				return true, cur
			}
			if cur == nil {
				return !out.found, cur
			}
			return out.found && out.value == *cur, cur
		case wire.KVOp_CAS:
			match := cur != nil && *cur == in.expected
			if out.unknown {
				if match {
					v := in.value
					return true, &v // an unknown CAS that took effect...
				}
				return true, cur // ...or that did not
			}
			if out.ok != match {
				return false, cur
			}
			if match {
				v := in.value
				return true, &v
			}
			return true, cur
		}
		return false, cur
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		return fmt.Sprintf("%v(%s,%s,%s) -> %+v", in.kind, in.key, in.value, in.expected, out)
	},
}

// history records the operations of concurrent clients.
type history struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
	acked map[string]bool // values of acknowledged puts
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

// workload runs clients until ctx ends: random put/get/cas on a few
// shared keys, each operation bounded by opTimeout.
func workload(ctx context.Context, t *testing.T, h *history, clients []*client.Client, keys int, opTimeout time.Duration) {
	var wg sync.WaitGroup
	for ci, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(ci), 7))
			k := kv.Client{S: c}
			for n := 0; ctx.Err() == nil && n < 10_000; n++ {
				in := kvInput{key: fmt.Sprintf("k%d", rng.IntN(keys))}
				switch r := rng.IntN(10); {
				case r < 4:
					in.kind, in.value = wire.KVOp_PUT, fmt.Sprintf("c%d-%d", ci, n)
				case r < 8:
					in.kind = wire.KVOp_GET
				default:
					in.kind, in.value = wire.KVOp_CAS, fmt.Sprintf("c%d-%d", ci, n)
					in.expected = fmt.Sprintf("c%d-%d", rng.IntN(len(clients)), max(0, n-1-rng.IntN(3)))
				}
				octx, cancel := context.WithTimeout(context.Background(), opTimeout)
				call := h.now()
				var res *wire.KVResult
				var err error
				switch in.kind {
				case wire.KVOp_PUT:
					res, err = k.Put(octx, []byte(in.key), []byte(in.value))
				case wire.KVOp_GET:
					res, err = k.Get(octx, []byte(in.key))
				case wire.KVOp_CAS:
					res, err = k.Do(octx, &wire.KVOp{Kind: wire.KVOp_CAS, Key: []byte(in.key), Expected: []byte(in.expected), Value: []byte(in.value)})
				}
				cancel()
				ret := h.now()
				var out kvOutput
				if err != nil {
					out.unknown, ret = true, math.MaxInt64
				} else {
					out = kvOutput{ok: res.Ok, found: res.Found, value: string(res.Value)}
				}
				h.mu.Lock()
				h.ops = append(h.ops, porcupine.Operation{ClientId: ci, Input: in, Output: out, Call: call, Return: ret})
				if err == nil && in.kind == wire.KVOp_PUT {
					h.acked[in.key+"="+in.value] = true
				}
				h.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// check verifies linearizability and reports what ran.
func (h *history) check(t *testing.T) {
	t.Helper()
	var ok, unknown int
	for _, op := range h.ops {
		if op.Output.(kvOutput).unknown {
			unknown++
		} else {
			ok++
		}
	}
	res := porcupine.CheckOperationsTimeout(kvModel, h.ops, 30*time.Second)
	t.Logf("history: %d operations acknowledged, %d timed out (outcome unknown); porcupine: %s", ok, unknown, res)
	if res != porcupine.Ok {
		t.Fatalf("history is not linearizable (S3): %s", res)
	}
	if ok < 20 {
		t.Fatalf("only %d operations completed: the service did not make progress", ok)
	}
}

func dialAll(t *testing.T, l *Local, n int) []*client.Client {
	var cs []*client.Client
	for i := range n {
		cs = append(cs, dial(t, l, i))
	}
	return cs
}

// TestLinearizableAcrossCrashRestart (ATTACKS rows 1, 14; S1–S4): one
// replica is stopped hard mid-workload and restarted from its durable
// log; the clients' history is linearizable, every acknowledged write is
// still readable, and the restarted replica catches up.
func TestLinearizableAcrossCrashRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	l := startLocal(t, 4, 1, 5, true, nil)
	cs := dialAll(t, l, 4)
	h := &history{start: time.Now(), acked: map[string]bool{}}
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); workload(ctx, t, h, cs, 3, 4*time.Second) }()
	time.Sleep(3 * time.Second)
	before := l.Server(2).Position()
	if err := l.Stop(2); err != nil {
		t.Fatalf("stop replica 2: %v", err)
	}
	time.Sleep(3 * time.Second)
	if err := l.Start(2); err != nil {
		t.Fatalf("restart replica 2: %v", err)
	}
	if got := l.Server(2).Position(); got < before {
		t.Fatalf("replica 2 restarted at batch %d, had executed %d: durable log lost (S2)", got, before)
	}
	t.Logf("replica 2 executed %d batches before the crash and recovered %d from its log", before, l.Server(2).Position())
	<-done
	// Every key, read at the end by a fresh client, joins the history.
	final := kv.Client{S: dial(t, l, 4)}
	for i := range 3 {
		key := fmt.Sprintf("k%d", i)
		call := h.now()
		res, err := final.Get(context.Background(), []byte(key))
		if err != nil {
			t.Fatalf("final read of %s: %v", key, err)
		}
		h.ops = append(h.ops, porcupine.Operation{ClientId: 4, Input: kvInput{kind: wire.KVOp_GET, key: key},
			Output: kvOutput{ok: res.Ok, found: res.Found, value: string(res.Value)}, Call: call, Return: h.now()})
	}
	h.check(t)
	// The restarted replica catches up by FETCH (within abc's Retain).
	deadline := time.Now().Add(20 * time.Second)
	for {
		p2, p1 := l.Server(2).Position(), l.Server(1).Position()
		if p2 >= p1 {
			t.Logf("replica 2 caught up: batch %d (replica 1 at %d)", p2, p1)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica 2 stuck at batch %d, replica 1 at %d", p2, p1)
		}
		// Liveness needs traffic: one more write moves the epochs on.
		final.Put(context.Background(), []byte("tick"), []byte(time.Now().String()))
		time.Sleep(200 * time.Millisecond)
	}
}

// TestLinearizableWithByzantineReplica (ATTACKS rows 6, 7; S1, S3): with
// replica 4 running each attack, the clients' history stays linearizable
// and the attack is detected where it is provable.
func TestLinearizableWithByzantineReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	for _, a := range Attacks {
		t.Run(string(a), func(t *testing.T) {
			l := startLocal(t, 4, 1, 4, false, map[uint32]Attack{4: a})
			cs := dialAll(t, l, 4)
			h := &history{start: time.Now(), acked: map[string]bool{}}
			ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
			defer cancel()
			workload(ctx, t, h, cs, 3, 4*time.Second)
			h.check(t)
			var evidence, proofs uint64
			for id := uint32(1); id <= 3; id++ {
				for _, n := range l.Server(id).Status().Evidence[4] {
					evidence += n
				}
			}
			for _, c := range cs {
				proofs += c.Faults()[4]
			}
			t.Logf("attack %s: %d evidence items at correct replicas, %d signed wrong replies held by clients, replica 4 sent %d replies",
				a, evidence, proofs, l.Server(4).Replies())
			switch a {
			case AttackInvalidShares:
				if evidence == 0 {
					t.Fatal("invalid shares were not reported as evidence")
				}
			case AttackCorruptState:
				if proofs == 0 {
					t.Fatal("wrong replies were not detected by clients")
				}
			case AttackSilent:
				if l.Server(4).Replies() != 0 {
					t.Fatal("a silent replica sent replies")
				}
			}
		})
	}
}
