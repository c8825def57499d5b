package cbc

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/wire"
)

var g4 = core.MustGroup(4, 1, core.Async)

const inst core.InstanceID = "cbc:1"

var testDST = []byte("MAFTIA-CBC-TEST-with-BLS12381G1_XMD:SHA-256_SSWU_RO_")

// deal returns a key set for g4 with the given threshold, from a fixed seed.
func deal(t testing.TB, threshold int) (*tsig.PublicKey, []*tsig.SecretShare) {
	pub, sks, err := tsig.Deal(rand.NewChaCha8([32]byte{1}), 4, threshold, testDST)
	if err != nil {
		t.Fatal(err)
	}
	return pub, sks
}

var pub4, sks4 = func() (*tsig.PublicKey, []*tsig.SecretShare) {
	pub, sks, err := tsig.Deal(rand.NewChaCha8([32]byte{1}), 4, 3, testDST)
	if err != nil {
		panic(err)
	}
	return pub, sks
}()

func newCBC(t testing.TB, self, sender core.NodeID) *CBC {
	c, err := New(inst, DefaultParams(g4, self, sender, pub4, sks4[self-1]))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func msg(from core.NodeID, m *wire.CBC) core.Message {
	return core.Message{From: from, Instance: inst, Payload: Encode(m)}
}

func shareMsg(from core.NodeID, value []byte) core.Message {
	d := DigestOf(inst, value)
	s := tsig.SignShare(sks4[from-1], SignedBytes(inst, d))
	return msg(from, &wire.CBC{Kind: wire.CBC_SHARE, Digest: d[:], Share: s.Marshal()})
}

// badShareMsg is well-formed (right index, key and message tag) but its
// point is replica from's share on something else: only the pairing check
// catches it.
func badShareMsg(from core.NodeID, value []byte) core.Message {
	m := shareMsg(from, value)
	w, _ := Decode(m.Payload, 1<<20)
	junk := tsig.SignShare(sks4[from-1], []byte("junk")).Marshal()
	copy(w.Share[4+2*tsig.TagSize:], junk[4+2*tsig.TagSize:])
	return msg(from, w)
}

func kinds(out *core.Output) map[core.EvidenceKind][]core.NodeID {
	k := map[core.EvidenceKind][]core.NodeID{}
	for _, e := range out.Evidence {
		k[e.Kind] = append(k[e.Kind], e.Accused)
	}
	return k
}

func finals(t testing.TB, out *core.Output) []*wire.CBC {
	var fs []*wire.CBC
	for _, s := range out.Sends {
		if m, err := Decode(s.Payload, 1<<20); err == nil && m.Kind == wire.CBC_FINAL {
			fs = append(fs, m)
		}
	}
	return fs
}

func TestParamsRefuseThresholdsThatBreakConsistencyOrValidity(t *testing.T) {
	for _, th := range []int{1, 2, 4} { // ByzQuorum(4,1) = 3 = n−f
		pub, sks := deal(t, th)
		_, err := New(inst, DefaultParams(g4, 1, 1, pub, sks[0]))
		if !errors.Is(err, ErrThreshold) {
			t.Errorf("threshold %d: %v, want ErrThreshold", th, err)
		}
	}
	if _, err := New(inst, DefaultParams(g4, 2, 1, pub4, sks4[0])); err == nil {
		t.Error("replica 2 accepted replica 1's share")
	}
	g := core.MustGroup(3, 1, core.HybridSMR)
	if _, err := New(inst, DefaultParams(g, 1, 1, pub4, sks4[0])); !errors.Is(err, core.ErrResilience) {
		t.Errorf("n=3 f=1: %v", err)
	}
	pub, sks := deal(t, 1)
	p := DefaultParams(g4, 1, 1, pub, sks[0])
	p.UnsafeAnyThreshold = true
	if _, err := New(inst, p); err != nil {
		t.Errorf("unsafe threshold refused: %v", err)
	}
}

// The whole protocol by hand: SEND, n shares, FINAL, delivery with a
// transferable certificate bound to the instance and the value.
func TestCertifiedDeliveryAndTransferableCertificate(t *testing.T) {
	s := newCBC(t, 1, 1)
	var out core.Output
	if err := s.Step(core.Input{Instance: inst, Value: []byte("m")}, &out); err != nil {
		t.Fatal(err)
	}
	send := out.Sends[0]
	out.Reset()
	for _, id := range g4.Members() {
		r := s
		if id != 1 {
			r = newCBC(t, id, 1)
		}
		var o core.Output
		_ = r.Step(core.Message{From: 1, Instance: inst, Payload: send.Payload}, &o)
		if len(o.Persist) != 1 || o.Persist[0].Key != recordSigned || len(o.Sends) != 1 || o.Sends[0].To != 1 {
			t.Fatalf("replica %d: persist %v sends %v", id, o.Persist, o.Sends)
		}
		_ = s.Step(core.Message{From: id, Instance: inst, Payload: o.Sends[0].Payload}, &out)
	}
	fs := finals(t, &out)
	if len(fs) != 1 || len(out.Evidence) != 0 {
		t.Fatalf("finals %d evidence %v", len(fs), out.Evidence)
	}
	if s.Ops().Combines != 1 || s.Ops().ShareChecks != 0 {
		t.Fatalf("optimistic path did %+v", s.Ops())
	}
	r := newCBC(t, 3, 1)
	out.Reset()
	_ = r.Step(msg(2, fs[0]), &out) // relayed by another replica: still valid
	if len(out.Deliveries) != 1 || !r.Finished() {
		t.Fatalf("deliveries %v", out.Deliveries)
	}
	c := out.Deliveries[0].Value.(Certified)
	if err := VerifyCertificate(pub4, inst, c.Value, c.Signature); err != nil {
		t.Fatal(err)
	}
	if VerifyCertificate(pub4, "cbc:2", c.Value, c.Signature) == nil {
		t.Fatal("certificate valid for another instance")
	}
	if VerifyCertificate(pub4, inst, []byte("m'"), c.Signature) == nil {
		t.Fatal("certificate valid for another value")
	}
	if VerifyCertificate(pub4, inst, c.Value, []byte{1, 2, 3}) == nil {
		t.Fatal("garbage certificate accepted")
	}
}

// Optimistic combine with fallback: a share that passes every structural
// check but not the pairing is named as InvalidProof evidence, and the
// sender certifies once enough valid shares arrive.
func TestOptimisticCombineNamesBadSharesAndRecovers(t *testing.T) {
	s := newCBC(t, 1, 1)
	var out core.Output
	_ = s.Step(core.Input{Instance: inst, Value: []byte("m")}, &out)
	out.Reset()
	_ = s.Step(shareMsg(1, []byte("m")), &out)
	_ = s.Step(badShareMsg(2, []byte("m")), &out)
	_ = s.Step(shareMsg(3, []byte("m")), &out)
	if k := kinds(&out); len(k[core.InvalidProof]) != 1 || k[core.InvalidProof][0] != 2 || len(finals(t, &out)) != 0 {
		t.Fatalf("evidence %v finals %d", k, len(finals(t, &out)))
	}
	_ = s.Step(shareMsg(2, []byte("m")), &out) // too late: 2 is excluded
	_ = s.Step(shareMsg(4, []byte("m")), &out)
	if len(finals(t, &out)) != 1 {
		t.Fatal("no FINAL from valid shares 1, 3, 4")
	}
	// A share for another message (structural error in Combine) is found
	// by the per-share fallback.
	s = newCBC(t, 1, 1)
	out.Reset()
	_ = s.Step(core.Input{Instance: inst, Value: []byte("m")}, &out)
	out.Reset()
	wrong := shareMsg(3, []byte("other"))
	w, _ := Decode(wrong.Payload, 1<<20)
	d := DigestOf(inst, []byte("m"))
	w.Digest = d[:]
	for _, m := range []core.Message{shareMsg(1, []byte("m")), shareMsg(2, []byte("m")), msg(3, w), shareMsg(4, []byte("m"))} {
		_ = s.Step(m, &out)
	}
	if k := kinds(&out); len(k[core.InvalidProof]) != 1 || k[core.InvalidProof][0] != 3 || len(finals(t, &out)) != 1 {
		t.Fatalf("evidence %v finals %d", k, len(finals(t, &out)))
	}
}

// A replica signs one digest per instance, before and after a restart; a
// second SEND with another payload is equivocation evidence.
func TestSignsAtMostOneDigestPerInstanceAcrossRestarts(t *testing.T) {
	r := newCBC(t, 2, 1)
	var out core.Output
	_ = r.Step(msg(1, &wire.CBC{Kind: wire.CBC_SEND, Value: []byte("a")}), &out)
	_ = r.Step(msg(1, &wire.CBC{Kind: wire.CBC_SEND, Value: []byte("b")}), &out)
	if len(out.Sends) != 1 || kinds(&out)[core.Equivocation] == nil {
		t.Fatalf("sends %d evidence %v", len(out.Sends), out.Evidence)
	}
	rec, err := Recover(inst, DefaultParams(g4, 2, 1, pub4, sks4[1]), out.Persist)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	_ = rec.Step(msg(1, &wire.CBC{Kind: wire.CBC_SEND, Value: []byte("b")}), &out)
	if len(out.Sends) != 0 {
		t.Fatal("recovered replica signed a second digest")
	}
	rec, _ = Recover(inst, DefaultParams(g4, 2, 1, pub4, sks4[1]), []core.Record{{Instance: inst, Key: recordSigned, Value: func() []byte { d := DigestOf(inst, []byte("a")); return d[:] }()}})
	_ = rec.Step(msg(1, &wire.CBC{Kind: wire.CBC_SEND, Value: []byte("a")}), &out)
	if len(out.Sends) != 1 {
		t.Fatal("recovered replica did not re-send its (identical) share for the same digest")
	}
	if _, err := Recover(inst, DefaultParams(g4, 2, 1, pub4, sks4[1]), []core.Record{{Instance: inst, Key: "signed", Value: []byte("x")}}); err == nil {
		t.Fatal("corrupt record accepted")
	}
}

// Byzantine floods: one share per replica is kept, an invalid FINAL costs
// one verification per replica, and everything is reported.
func TestByzantineFloodIsBoundedAndReported(t *testing.T) {
	s := newCBC(t, 1, 1)
	var out core.Output
	_ = s.Step(core.Input{Instance: inst, Value: []byte("m")}, &out)
	for i := 0; i < 100; i++ {
		_ = s.Step(shareMsg(4, []byte("m")), &out)
		_ = s.Step(shareMsg(3, []byte{byte(i)}), &out)
	}
	stored := 0
	for _, sh := range s.shares {
		if sh != nil {
			stored++
		}
	}
	if stored != 1 || kinds(&out)[core.Unexpected] == nil {
		t.Fatalf("stored %d shares; evidence %v", stored, kinds(&out))
	}
	r := newCBC(t, 2, 1)
	out.Reset()
	for i := 0; i < 50; i++ {
		_ = r.Step(msg(4, &wire.CBC{Kind: wire.CBC_FINAL, Value: []byte("x"), Signature: tsig.SignShare(sks4[3], []byte("y")).Marshal()[4+2*tsig.TagSize:]}), &out)
	}
	if r.Ops().SigChecks != 1 || len(out.Evidence) != 1 || out.Evidence[0].Kind != core.InvalidProof || len(out.Deliveries) != 0 {
		t.Fatalf("ops %+v evidence %v", r.Ops(), out.Evidence)
	}
	out.Reset()
	_ = r.Step(shareMsg(3, []byte("m")), &out) // shares go to the sender only
	_ = r.Step(msg(3, &wire.CBC{Kind: wire.CBC_SEND, Value: []byte("m")}), &out)
	_ = r.Step(core.Message{From: 3, Instance: inst, Payload: []byte{0xff}}, &out)
	if k := kinds(&out); len(k[core.Unexpected]) != 2 || len(k[core.Malformed]) != 1 {
		t.Fatalf("evidence %v", k)
	}
}

// Precheck verifies shares and certificates; failures carry Evidence.
func TestPrecheckVerifiesSharesAndCertificates(t *testing.T) {
	s := newCBC(t, 1, 1)
	if _, err := s.Precheck(shareMsg(2, []byte("m"))); err != nil {
		t.Fatal(err)
	}
	var ev *core.Evidence
	if _, err := s.Precheck(badShareMsg(2, []byte("m"))); !errors.As(err, &ev) || ev.Kind != core.InvalidProof || ev.Accused != 2 {
		t.Fatalf("bad share: %v", err)
	}
	replayed := shareMsg(2, []byte("m"))
	replayed.From = 3 // replica 3 forwards 2's share as its own
	if _, err := s.Precheck(replayed); !errors.As(err, &ev) || ev.Accused != 3 {
		t.Fatalf("replayed share: %v", err)
	}
	if _, err := s.Precheck(msg(2, &wire.CBC{Kind: wire.CBC_FINAL, Value: []byte("m"), Signature: make([]byte, tsig.SignatureSize)})); !errors.As(err, &ev) || ev.Kind != core.Malformed {
		t.Fatalf("zero signature: %v", err)
	}
	// Verified messages drive Step without re-verification.
	var out core.Output
	_ = s.Step(core.Input{Instance: inst, Value: []byte("m")}, &out)
	for _, id := range []core.NodeID{1, 2, 3} {
		m := shareMsg(id, []byte("m"))
		c, err := s.Precheck(m)
		if err != nil {
			t.Fatal(err)
		}
		m.Checked = c
		_ = s.Step(m, &out)
	}
	if len(finals(t, &out)) != 1 || s.Ops().SigChecks != 0 {
		t.Fatalf("finals %d ops %+v", len(finals(t, &out)), s.Ops())
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	d := make([]byte, 32)
	bad := [][]byte{
		Encode(&wire.CBC{Kind: wire.CBC_SEND, Value: make([]byte, 11)}),
		Encode(&wire.CBC{Kind: wire.CBC_SEND, Value: []byte("x"), Digest: d}),
		Encode(&wire.CBC{Kind: wire.CBC_SHARE, Digest: d[:31], Share: make([]byte, tsig.ShareSize)}),
		Encode(&wire.CBC{Kind: wire.CBC_SHARE, Digest: d, Share: make([]byte, tsig.ShareSize-1)}),
		Encode(&wire.CBC{Kind: wire.CBC_SHARE, Digest: d, Share: make([]byte, tsig.ShareSize), Value: []byte("x")}),
		Encode(&wire.CBC{Kind: wire.CBC_FINAL, Value: []byte("x"), Signature: make([]byte, 47)}),
		Encode(&wire.CBC{Kind: 7}),
		Encode(&wire.CBC{}),
		{0xff},
	}
	for i, b := range bad {
		if _, err := Decode(b, 10); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("case %d: %v", i, err)
		}
	}
	if !bytes.Equal(SignedBytes("a", Digest{}), SignedBytes("a", Digest{})) || bytes.Equal(SignedBytes("a:1", Digest{}), SignedBytes("a:10", Digest{})) {
		t.Fatal("SignedBytes not injective on instances")
	}
}
