package avid

import (
	"bytes"
	"errors"
	"testing"

	"pgregory.net/rapid"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/wire"
)

var g4 = core.MustGroup(4, 1, core.Async)

const inst core.InstanceID = "avid:1"

func newAVID(t testing.TB, self, sender core.NodeID) *AVID {
	a, err := New(inst, DefaultParams(g4, self, sender))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func msg(from core.NodeID, m *wire.AVID) core.Message {
	return core.Message{From: from, Instance: inst, Payload: Encode(m)}
}

// dispersal returns the fragments, root and proofs of payload in g4.
func dispersal(t testing.TB, payload []byte) ([][]byte, Digest, [][]byte) {
	frags, err := Fragments(4, 1, payload)
	if err != nil {
		t.Fatal(err)
	}
	root, proofs := Commit(inst, frags)
	return frags, root, proofs
}

func echo(from core.NodeID, root Digest, frags, proofs [][]byte) core.Message {
	return msg(from, &wire.AVID{Kind: wire.AVID_ECHO, Root: root[:], Fragment: frags[from-1], Proof: proofs[from-1]})
}

func ready(from core.NodeID, root Digest) core.Message {
	return msg(from, &wire.AVID{Kind: wire.AVID_READY, Root: root[:]})
}

func TestParamsRefuseTooFewReplicas(t *testing.T) {
	g := core.MustGroup(3, 1, core.HybridSMR)
	if _, err := New(inst, DefaultParams(g, 1, 1)); !errors.Is(err, core.ErrResilience) {
		t.Fatalf("want ErrResilience, got %v", err)
	}
	if _, err := New(inst, Params{Group: g4, Self: 1, Sender: 1}); err == nil {
		t.Fatal("MaxPayload 0 accepted")
	}
}

// Merkle commitments: every fragment's proof verifies; a changed fragment,
// index, instance, root or proof does not (property over n and contents).
func TestMerkleProofsBindFragmentIndexAndInstance(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 40).Draw(t, "n")
		frags := make([][]byte, n)
		for i := range frags {
			frags[i] = rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, "frag")
		}
		root, proofs := Commit(inst, frags)
		for i := range frags {
			if err := VerifyProof(inst, n, i, frags[i], proofs[i], root); err != nil {
				t.Fatalf("n=%d leaf %d: %v", n, i, err)
			}
		}
		i := rapid.IntRange(0, n-1).Draw(t, "i")
		if VerifyProof(inst, n, i, append(bytes.Clone(frags[i]), 0), proofs[i], root) == nil {
			t.Fatal("changed fragment verifies")
		}
		if VerifyProof("avid:2", n, i, frags[i], proofs[i], root) == nil {
			t.Fatal("proof verifies for another instance")
		}
		if j := (i + 1) % n; n > 1 && !bytes.Equal(frags[i], frags[j]) && VerifyProof(inst, n, j, frags[i], proofs[i], root) == nil {
			t.Fatal("proof verifies at another index")
		}
		if VerifyProof(inst, n, i, frags[i], append(bytes.Clone(proofs[i]), make([]byte, 32)...), root) == nil {
			t.Fatal("over-long proof verifies")
		}
		if n > 1 {
			bad := bytes.Clone(proofs[i])
			bad[rapid.IntRange(0, len(bad)-1).Draw(t, "byte")] ^= 1
			if VerifyProof(inst, n, i, frags[i], bad, root) == nil {
				t.Fatal("corrupted proof verifies")
			}
		}
	})
}

// Any f+1 fragments recover the payload; the encoding is canonical.
func TestAnyFPlusOneFragmentsRecoverThePayload(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := rapid.IntRange(0, 6).Draw(t, "f")
		n := rapid.IntRange(3*f+1, 3*f+4).Draw(t, "n")
		p := rapid.SliceOfN(rapid.Byte(), 0, 300).Draw(t, "payload")
		frags, err := Fragments(n, f, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, fr := range frags {
			if len(fr) != ShardSize(n, f, len(p)) {
				t.Fatalf("fragment of %d bytes, want %d", len(fr), ShardSize(n, f, len(p)))
			}
		}
		keep := rapid.Permutation(core.MustGroup(n, f, core.Async).Members()).Draw(t, "order")[:f+1]
		sub := make([][]byte, n)
		for _, id := range keep {
			sub[id-1] = frags[id-1]
		}
		got, err := DecodeFragments(f, sub, 1<<20)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("decode from %v: %v (%d bytes, want %d)", keep, err, len(got), len(p))
		}
	})
}

// Large groups use GF(2^16): n = 301 still encodes and decodes.
func TestLargeGroupUsesLeopard(t *testing.T) {
	n, f := 301, 100
	p := bytes.Repeat([]byte("abc"), 1000)
	frags, err := Fragments(n, f, p)
	if err != nil {
		t.Fatal(err)
	}
	sub := make([][]byte, n)
	for i := n - f - 1; i < n; i++ {
		sub[i] = frags[i]
	}
	if got, err := DecodeFragments(f, sub, 1<<20); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("decode: %v", err)
	}
}

// A replica delivers a correct sender's payload after 2f+1 READYs and f+1
// fragments, not before.
func TestDeliversAfterReadiesAndFPlusOneFragments(t *testing.T) {
	a := newAVID(t, 2, 1)
	frags, root, proofs := dispersal(t, []byte("hello avid"))
	var out core.Output
	for _, from := range []core.NodeID{1, 3, 4} {
		_ = a.Step(ready(from, root), &out)
	}
	if len(out.Deliveries) != 0 {
		t.Fatal("delivered without fragments")
	}
	_ = a.Step(echo(3, root, frags, proofs), &out)
	if len(out.Deliveries) != 0 {
		t.Fatal("delivered with f fragments")
	}
	_ = a.Step(echo(4, root, frags, proofs), &out)
	if len(out.Deliveries) != 1 || !bytes.Equal(out.Deliveries[0].Value.([]byte), []byte("hello avid")) {
		t.Fatalf("deliveries %v", out.Deliveries)
	}
	if !a.Finished() || a.frags != nil {
		t.Fatal("state kept after delivery")
	}
}

// The AVID agreement lemma for an inconsistent sender: whichever f+1
// fragments a replica decodes from, it delivers the same ⊥.
func TestInconsistentFragmentsDeliverTheSameBottomFromEverySubset(t *testing.T) {
	a, _ := Fragments(4, 1, []byte("payload one"))
	b, _ := Fragments(4, 1, []byte("payload two"))
	mixed := [][]byte{a[0], a[1], b[2], b[3]}
	root, proofs := Commit(inst, mixed)
	for _, pair := range [][2]core.NodeID{{1, 2}, {3, 4}, {1, 3}, {2, 4}, {1, 4}, {2, 3}} {
		r := newAVID(t, 2, 1)
		var out core.Output
		for _, from := range []core.NodeID{1, 3, 4} {
			_ = r.Step(ready(from, root), &out)
		}
		for _, from := range pair {
			_ = r.Step(echo(from, root, mixed, proofs), &out)
		}
		if len(out.Deliveries) != 1 {
			t.Fatalf("subset %v: %d deliveries", pair, len(out.Deliveries))
		}
		if got, ok := out.Deliveries[0].Value.(Invalid); !ok || got.Root != root {
			t.Fatalf("subset %v delivered %v, want ⊥", pair, out.Deliveries[0].Value)
		}
	}
	// Without the re-encoding check, subsets disagree: the danger is real.
	x, _ := DecodeFragments(1, [][]byte{mixed[0], mixed[1], nil, nil}, 1<<20)
	y, _ := DecodeFragments(1, [][]byte{nil, nil, mixed[2], mixed[3]}, 1<<20)
	if bytes.Equal(x, y) {
		t.Fatal("test vector does not exercise divergence")
	}
}

// A restarted replica that persisted READY(h) never sends READY for
// another root (amnesia would be equivocation).
func TestRecoveredReplicaDoesNotEquivocate(t *testing.T) {
	a := newAVID(t, 2, 1)
	frags, root, proofs := dispersal(t, []byte("a"))
	var out core.Output
	for _, from := range []core.NodeID{1, 3, 4} {
		_ = a.Step(echo(from, root, frags, proofs), &out)
	}
	if len(out.Persist) != 1 || out.Persist[0].Key != recordReady {
		t.Fatalf("want a persisted READY record, got %+v", out.Persist)
	}
	rec, err := Recover(inst, DefaultParams(g4, 2, 1), out.Persist)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	frags2, root2, proofs2 := dispersal(t, []byte("b"))
	for _, from := range []core.NodeID{1, 3, 4} {
		_ = rec.Step(echo(from, root2, frags2, proofs2), &out)
	}
	for _, s := range out.Sends {
		if m, _ := Decode(s.Payload, g4, 1<<20); m.Kind == wire.AVID_READY {
			t.Fatal("recovered replica sent a second READY")
		}
	}
	if _, err := Recover(inst, DefaultParams(g4, 2, 1), []core.Record{{Instance: inst, Key: "ready", Value: []byte("short")}}); err == nil {
		t.Fatal("corrupt record accepted")
	}
}

// Memory stays bounded whatever Byzantine replicas send — one fragment per
// replica — and misbehaviour is reported with the right kind.
func TestByzantineFloodKeepsMemoryBoundedAndIsReported(t *testing.T) {
	a := newAVID(t, 2, 1)
	var out core.Output
	for i := 0; i < 300; i++ {
		frags, root, proofs := dispersal(t, bytes.Repeat([]byte{byte(i)}, 100))
		_ = a.Step(echo(4, root, frags, proofs), &out)
		_ = a.Step(ready(4, root), &out)
		_ = a.Step(msg(3, &wire.AVID{Kind: wire.AVID_SEND, Root: root[:], Fragment: frags[1], Proof: proofs[1]}), &out)
		_ = a.Step(msg(1, &wire.AVID{Kind: wire.AVID_SEND, Root: root[:], Fragment: frags[1], Proof: proofs[1]}), &out)
	}
	kept := 0
	for _, fr := range a.frags {
		if fr != nil {
			kept++
		}
	}
	if kept > g4.N() || len(a.echoes) > g4.N() || len(a.readies) > g4.N() {
		t.Fatalf("%d fragments, %d echo roots, %d ready roots stored", kept, len(a.echoes), len(a.readies))
	}
	kinds := map[core.EvidenceKind]int{}
	for _, e := range out.Evidence {
		kinds[e.Kind]++
	}
	if kinds[core.Equivocation] == 0 || kinds[core.Unexpected] == 0 {
		t.Fatalf("evidence %v", kinds)
	}
	// A fragment that fails its proof is InvalidProof evidence.
	b := newAVID(t, 2, 1)
	out.Reset()
	frags, root, proofs := dispersal(t, []byte("x"))
	frags[2] = append(bytes.Clone(frags[2][:len(frags[2])-1]), frags[2][len(frags[2])-1]^1)
	_ = b.Step(echo(3, root, frags, proofs), &out)
	_ = b.Step(msg(1, &wire.AVID{Kind: wire.AVID_SEND, Root: root[:], Fragment: frags[2], Proof: proofs[1]}), &out)
	if len(out.Evidence) != 2 || out.Evidence[0].Kind != core.InvalidProof || out.Evidence[1].Kind != core.InvalidProof || len(out.Sends) != 0 {
		t.Fatalf("bad proofs: evidence %v, sends %d", out.Evidence, len(out.Sends))
	}
	out.Reset()
	_ = b.Step(core.Message{From: 4, Instance: inst, Payload: []byte{0xff, 0x01}}, &out)
	if len(out.Evidence) != 1 || out.Evidence[0].Kind != core.Malformed {
		t.Fatalf("garbage not reported as malformed: %v", out.Evidence)
	}
}

// Precheck verifies the proof off the stepping goroutine; Step trusts it.
func TestPrecheckMatchesInlineVerification(t *testing.T) {
	frags, root, proofs := dispersal(t, []byte("pre"))
	a := newAVID(t, 2, 1)
	good := echo(3, root, frags, proofs)
	c, err := a.Precheck(good)
	if err != nil || !c.(*checked).proofOK {
		t.Fatalf("good echo: %v", err)
	}
	bad := echo(3, root, frags, proofs)
	bad.From = 4 // fragment 3 claimed by replica 4
	if c, err := a.Precheck(bad); err != nil || c.(*checked).proofOK {
		t.Fatal("misattributed fragment passed precheck")
	}
	var ev *core.Evidence
	if _, err := a.Precheck(core.Message{From: 4, Instance: inst, Payload: []byte{0xff}}); !errors.As(err, &ev) || ev.Kind != core.Malformed {
		t.Fatalf("garbage: %v", err)
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	root := make([]byte, 32)
	proof := make([]byte, 64) // Depth(4) = 2
	big := ShardSize(4, 1, 10) + 1
	bad := [][]byte{
		Encode(&wire.AVID{Kind: wire.AVID_READY, Root: []byte("short")}),
		Encode(&wire.AVID{Kind: wire.AVID_READY, Root: root, Fragment: []byte("x")}),
		Encode(&wire.AVID{Kind: wire.AVID_SEND, Root: root, Fragment: make([]byte, big), Proof: proof}),
		Encode(&wire.AVID{Kind: wire.AVID_ECHO, Root: root, Fragment: []byte("x"), Proof: proof[:32]}),
		Encode(&wire.AVID{Kind: wire.AVID_ECHO, Root: root, Proof: proof}),
		Encode(&wire.AVID{Kind: 9, Root: root}),
		Encode(&wire.AVID{}),
		{0xff, 0xff},
	}
	for i, b := range bad {
		if _, err := Decode(b, g4, 10); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("case %d: %v", i, err)
		}
	}
	if _, err := Decode(Encode(&wire.AVID{Kind: wire.AVID_ECHO, Root: root, Fragment: []byte("x"), Proof: proof}), g4, 10); err != nil {
		t.Fatal(err)
	}
}
