// Package kvtest checks histories of the replicated key-value service for
// linearizability (ATTACKS S3) with porcupine: a sequential model of the
// store partitioned by key, a concurrent put/get/cas workload that records
// every operation (a timed-out one as "outcome unknown", which may take
// effect at any point up to the end), and the check itself.
package kvtest

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
	"github.com/maftia/maftia/wire"
)

// Submitter is a client of the service (*client.Client).
type Submitter = kv.Submitter

// NewHistory starts an empty history.
func NewHistory() *History { return &History{start: time.Now(), acked: map[string]bool{}} }

// Acknowledged is the number of operations that completed.
func (h *History) Acknowledged() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, op := range h.ops {
		if !op.Output.(Output).unknown {
			n++
		}
	}
	return n
}

// Read performs a final GET of key with s and records it.
func (h *History) Read(ctx context.Context, id int, s Submitter, key string) error {
	call := h.now()
	res, err := kv.Client{S: s}.Get(ctx, []byte(key))
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: id, Input: Input{kind: wire.KVOp_GET, key: key},
		Output: Output{ok: res.Ok, found: res.Found, value: string(res.Value)}, Call: call, Return: h.now()})
	h.mu.Unlock()
	return nil
}

// Input and Output are one operation of a porcupine history.
type Input struct {
	kind     wire.KVOp_Kind
	key      string
	value    string
	expected string
}

type Output struct {
	ok, found bool
	value     string
	unknown   bool // the client gave up: it may or may not have taken effect
}

// Model is a sequential key-value store, partitioned by key.
var Model = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(Input).key
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
		in, out := input.(Input), output.(Output)
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
		in, out := input.(Input), output.(Output)
		return fmt.Sprintf("%v(%s,%s,%s) -> %+v", in.kind, in.key, in.value, in.expected, out)
	},
}

// history records the operations of concurrent clients.
type History struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
	acked map[string]bool // values of acknowledged puts
}

func (h *History) now() int64 { return int64(time.Since(h.start)) }

// workload runs clients until ctx ends: random put/get/cas on a few
// shared keys, each operation bounded by opTimeout.
func Run(ctx context.Context, h *History, clients []Submitter, keys int, opTimeout time.Duration) {
	var wg sync.WaitGroup
	for ci, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(ci), 7))
			k := kv.Client{S: c}
			for n := 0; ctx.Err() == nil && n < 10_000; n++ {
				in := Input{key: fmt.Sprintf("k%d", rng.IntN(keys))}
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
				var out Output
				if err != nil {
					out.unknown, ret = true, math.MaxInt64
				} else {
					out = Output{ok: res.Ok, found: res.Found, value: string(res.Value)}
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
func (h *History) Check(t testing.TB) {
	t.Helper()
	var ok, unknown int
	for _, op := range h.ops {
		if op.Output.(Output).unknown {
			unknown++
		} else {
			ok++
		}
	}
	res := porcupine.CheckOperationsTimeout(Model, h.ops, 30*time.Second)
	t.Logf("history: %d operations acknowledged, %d timed out (outcome unknown); porcupine: %s", ok, unknown, res)
	if res != porcupine.Ok {
		t.Fatalf("history is not linearizable (S3): %s", res)
	}
	if ok < 20 {
		t.Fatalf("only %d operations completed: the service did not make progress", ok)
	}
}

// Elapsed is the time since the history started (the clock of its
// operations' Call and Return).
func (h *History) Elapsed() time.Duration { return time.Duration(h.now()) }

// Window counts the operations that returned acknowledged within
// [from, to) and those called within it whose outcome is unknown
// (timed out), for throughput during and after a fault.
func (h *History) Window(from, to time.Duration) (acked, unknown int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, op := range h.ops {
		if op.Output.(Output).unknown {
			if op.Call >= int64(from) && op.Call < int64(to) {
				unknown++
			}
		} else if op.Return >= int64(from) && op.Return < int64(to) {
			acked++
		}
	}
	return acked, unknown
}

// Linearizable checks the history with porcupine (bounded by timeout)
// without failing the test, and counts acknowledged and unknown operations.
func (h *History) Linearizable(timeout time.Duration) (res porcupine.CheckResult, acked, unknown int) {
	h.mu.Lock()
	ops := append([]porcupine.Operation(nil), h.ops...)
	h.mu.Unlock()
	for _, op := range ops {
		if op.Output.(Output).unknown {
			unknown++
		} else {
			acked++
		}
	}
	return porcupine.CheckOperationsTimeout(Model, ops, timeout), acked, unknown
}
