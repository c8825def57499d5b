package smr

import (
	crand "crypto/rand"

	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"github.com/maftia/maftia/crypto/sig"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/wire"
)

// counterApp is a deterministic test application: op "add:k" adds to a
// per-client counter and returns the new total.
type counterApp struct{ total map[uint64]uint64 }

func newCounter() *counterApp { return &counterApp{total: map[uint64]uint64{}} }

func (c *counterApp) Apply(client uint64, op []byte) []byte {
	c.total[client] += uint64(len(op))
	return fmt.Appendf(nil, "%d", c.total[client])
}
func (c *counterApp) Snapshot() ([]byte, error) {
	var b []byte
	for cl := uint64(0); cl < 16; cl++ {
		b = binary.BigEndian.AppendUint64(b, c.total[cl])
	}
	return b, nil
}
func (c *counterApp) Restore(b []byte) error {
	if len(b) != 16*8 {
		return fmt.Errorf("bad snapshot")
	}
	c.total = map[uint64]uint64{}
	for cl := uint64(0); cl < 16; cl++ {
		if v := binary.BigEndian.Uint64(b[cl*8:]); v != 0 {
			c.total[cl] = v
		}
	}
	return nil
}

// A test "signature": a keyed hash only the test's clients compute. The
// real verifier (client Ed25519 keys) is wired in by the node.
func mac(client, seq uint64, op []byte) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "%d/%d/%x", client, seq, op))
	return h[:8]
}
func verifyMAC(r *wire.ClientRequest) bool {
	return bytes.Equal(r.Signature, mac(r.Client, r.Seq, r.Op))
}

func req(client, seq uint64, op string) *wire.ClientRequest {
	return &wire.ClientRequest{Client: client, Seq: seq, Op: []byte(op), Signature: mac(client, seq, []byte(op))}
}

// batchEngine is a test double of an ordering engine: it collects Submits
// and delivers them as one batch when the test says so. The real engines
// (abc, hybrid) are tested against their own contract in the simulator.
type batchEngine struct {
	pending [][]byte
	seq     uint64
	flush   bool
}

func (e *batchEngine) Step(ev core.Event, out *core.Output) error {
	switch x := ev.(type) {
	case core.Input:
		e.pending = append(e.pending, x.Value.([]byte))
	case core.Message:
		e.seq++
		out.Deliver(EngineInstance, &wire.Batch{Seq: e.seq, Requests: e.pending})
		e.pending = nil
	}
	return nil
}

func newReplica(t testing.TB) (*Replica, *batchEngine) {
	eng := &batchEngine{}
	r, err := NewReplica(DefaultParams(core.MustGroup(4, 1, core.Async), 1, verifyMAC), eng, newCounter())
	if err != nil {
		t.Fatal(err)
	}
	return r, eng
}

func flush(t *testing.T, r *Replica, out *core.Output) {
	t.Helper()
	if err := r.Step(core.Message{From: 2, Instance: EngineInstance}, out); err != nil {
		t.Fatal(err)
	}
}

func executed(out *core.Output) []Executed {
	var e []Executed
	for _, d := range out.Deliveries {
		e = append(e, d.Value.(Executed))
	}
	return e
}

// S4: each (client, seq) executes once; forged and malformed requests
// never execute; a retry is answered from the session cache.
func TestExactlyOnceAndAuthenticatedExecution(t *testing.T) {
	r, _ := newReplica(t)
	var out core.Output
	in := func(q *wire.ClientRequest) {
		if err := r.Step(core.Input{Instance: Instance, Value: q}, &out); err != nil {
			t.Fatal(err)
		}
	}
	in(req(1, 1, "aa"))
	in(req(1, 1, "aa")) // duplicate before ordering: both reach the engine
	forged := req(2, 1, "bbb")
	forged.Signature[0] ^= 1
	in(forged)
	in(req(3, 1, "c"))
	flush(t, r, &out)
	got := executed(&out)
	if len(got) != 2 || string(got[0].Result) != "2" || got[1].Client != 3 {
		t.Fatalf("executed %+v", got)
	}
	st := r.Stats()
	if st.Executed != 2 || st.Duplicates != 1 || st.Rejected != 1 {
		t.Fatalf("stats %+v", st)
	}
	out.Reset()
	in(req(1, 1, "aa")) // retry after execution: cached reply, no re-execution
	if e := executed(&out); len(e) != 1 || !e[0].Cached || string(e[0].Result) != "2" {
		t.Fatalf("retry answered with %+v", e)
	}
	out.Reset()
	in(req(1, 1, "zz")) // an old seq with another op is not executed either
	flush(t, r, &out)
	if len(executed(&out)) != 1 || r.Stats().Executed != 2 {
		t.Fatalf("stale request executed: %+v", executed(&out))
	}
}

// Replicas fed the same batches reach the same state digest; a snapshot
// restores the exact state including sessions.
func TestSameBatchesSameStateAndSnapshotRestore(t *testing.T) {
	a, _ := newReplica(t)
	b, _ := newReplica(t)
	var out core.Output
	batch := &wire.Batch{Seq: 1, Requests: [][]byte{EncodeRequest(req(1, 1, "x")), {0xff, 0xee}, EncodeRequest(req(2, 5, "yy"))}}
	for _, r := range []*Replica{a, b} {
		r.execute(batch, &out)
	}
	da, _ := a.StateDigest()
	db, _ := b.StateDigest()
	if da != db || a.Stats().Malformed != 1 {
		t.Fatalf("digests differ or malformed not counted: %+v", a.Stats())
	}
	snap, _ := a.Snapshot()
	c, _ := newReplica(t)
	if err := c.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if dc, _ := c.StateDigest(); dc != da || c.Position() != 1 {
		t.Fatal("restored state differs")
	}
	for _, bad := range [][]byte{nil, snap[:10], snap[:len(snap)-1], append(snap[:16:16], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)} {
		if err := c.Restore(bad); err == nil {
			t.Errorf("corrupt snapshot of %d bytes accepted", len(bad))
		}
	}
}

// An engine that skips a batch number is a broken local invariant: halt.
func TestOutOfOrderBatchHalts(t *testing.T) {
	r, eng := newReplica(t)
	eng.seq = 5
	if err := r.Step(core.Message{From: 2, Instance: EngineInstance}, &core.Output{}); err == nil {
		t.Fatal("batch 6 after 0 accepted")
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(EncodeRequest(req(1, 1, "op")))
	f.Add([]byte{0x10, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := DecodeRequest(b, 1024)
		if err != nil {
			return
		}
		if _, err := DecodeRequest(EncodeRequest(q), 1<<20); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzRestore(f *testing.F) {
	r, _ := newReplica(f)
	r.execute(&wire.Batch{Seq: 1, Requests: [][]byte{EncodeRequest(req(1, 1, "x"))}}, &core.Output{})
	snap, _ := r.Snapshot()
	f.Add(snap)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, _ := newReplica(t)
		_ = c.Restore(b) // must not panic
	})
}

func TestRequestAndReplySignatures(t *testing.T) {
	pk, sk, err := sig.GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cluster := [32]byte{1}
	q := &wire.ClientRequest{Client: 7, Seq: 1, Op: []byte("op")}
	SignRequest(sk, cluster, q)
	clients := Clients{7: pk.Expand()}
	verify := clients.Verifier(cluster)
	if !verify(q) {
		t.Fatal("valid request rejected")
	}
	other := [32]byte{2}
	for name, bad := range map[string]*wire.ClientRequest{
		"other op":     {Client: 7, Seq: 1, Op: []byte("oq"), Signature: q.Signature},
		"other seq":    {Client: 7, Seq: 2, Op: q.Op, Signature: q.Signature},
		"unknown":      {Client: 8, Seq: 1, Op: q.Op, Signature: q.Signature},
		"no signature": {Client: 7, Seq: 1, Op: q.Op},
		"other cluster": func() *wire.ClientRequest {
			c := &wire.ClientRequest{Client: 7, Seq: 1, Op: q.Op}
			SignRequest(sk, other, c)
			return c
		}(),
	} {
		if verify(bad) {
			t.Errorf("%s: accepted", name)
		}
		if got := clients.VerifyBatch(cluster, []*wire.ClientRequest{q, bad}, crand.Reader); !got[0] || got[1] {
			t.Errorf("%s: batch verdicts %v", name, got)
		}
	}
	r := &wire.Reply{Client: 7, Seq: 1, Replica: 2, Result: []byte("ok"), Position: 4}
	SignReply(sk, cluster, r)
	if err := VerifyReply(pk.Expand(), cluster, r); err != nil {
		t.Fatal(err)
	}
	r.Position = 5
	if VerifyReply(pk.Expand(), cluster, r) == nil {
		t.Fatal("reply with another position verified")
	}
}
