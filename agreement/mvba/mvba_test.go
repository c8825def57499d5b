package mvba

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/maftia/maftia/broadcast/rbc"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/coin"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/wire"
)

var g4 = core.MustGroup(4, 1, core.Async)

const inst core.InstanceID = "mvba:1"

var (
	testCoin *coin.Coin
	testSKs  []*tsig.SecretShare
)

func valid(v []byte) bool { return bytes.HasPrefix(v, []byte("ok")) }

func newMVBA(t testing.TB, self core.NodeID) *MVBA {
	if testCoin == nil {
		c, sks, err := coin.Deal(rand.NewChaCha8([32]byte{2}), 4, 1)
		if err != nil {
			t.Fatal(err)
		}
		testCoin, testSKs = c, sks
	}
	m, err := New(inst, DefaultParams(g4, self, testCoin, testSKs[self-1], valid))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParamsAndOwnProposal(t *testing.T) {
	m := newMVBA(t, 1)
	p := m.p
	p.Valid = nil
	if _, err := New(inst, p); err == nil {
		t.Fatal("missing predicate accepted")
	}
	p = m.p
	p.Group = core.MustGroup(3, 1, core.HybridSMR)
	if _, err := New(inst, p); !errors.Is(err, core.ErrResilience) {
		t.Fatalf("want ErrResilience, got %v", err)
	}
	var out core.Output
	if err := m.Step(core.Input{Instance: inst, Value: []byte("bad")}, &out); err == nil {
		t.Fatal("invalid own proposal accepted")
	}
	if err := m.Step(core.Input{Instance: inst, Value: []byte("ok")}, &out); err != nil || len(out.Sends) != 1 {
		t.Fatalf("proposal: %v, %d sends", err, len(out.Sends))
	}
}

// A proposal that r-delivers but fails the predicate is evidence against
// its proposer and is never held.
func TestInvalidProposalIsEvidence(t *testing.T) {
	m := newMVBA(t, 1)
	var out core.Output
	prop := inst.ChildN("prop", 4)
	send := func(from core.NodeID, msg *wire.RBC) {
		_ = m.Step(core.Message{From: from, Instance: prop, Payload: rbc.Encode(msg)}, &out)
	}
	send(4, &wire.RBC{Kind: wire.RBC_SEND, Value: []byte("bad")})
	for _, from := range g4.Members() {
		send(from, &wire.RBC{Kind: wire.RBC_ECHO, Value: []byte("bad")})
	}
	d := rbc.DigestOf(prop, []byte("bad"))
	for _, from := range g4.Members() {
		send(from, &wire.RBC{Kind: wire.RBC_READY, Digest: d[:]})
	}
	if m.have[3] {
		t.Fatal("invalid proposal held")
	}
	found := false
	for _, e := range out.Evidence {
		found = found || (e.Accused == 4 && e.Kind == core.InvalidProof)
	}
	if !found {
		t.Fatalf("no evidence: %v", out.Evidence)
	}
}

// Memory stays bounded: votes and shares for iterations far ahead are
// dropped, and ABA instances are created only within the window.
func TestFarFutureIterationsKeepMemoryBounded(t *testing.T) {
	m := newMVBA(t, 1)
	var out core.Output
	for l := uint64(1); l < 3000; l++ {
		_ = m.Step(core.Message{From: 4, Instance: inst.ChildN("vote", l), Payload: Encode(&wire.MVBA{Kind: wire.MVBA_VOTE, Vote: 1})}, &out)
		_ = m.Step(core.Message{From: 4, Instance: inst.ChildN("aba", l), Payload: []byte{0x08, 0x01, 0x10, 0x01}}, &out)
	}
	if len(m.iters) > int(m.p.MaxIterationsAhead)+1 || m.abas.Running() > int(m.p.MaxIterationsAhead)+1 {
		t.Fatalf("%d iterations, %d ABAs kept", len(m.iters), m.abas.Running())
	}
	out.Reset()
	_ = m.Step(core.Message{From: 4, Instance: inst.ChildN("vote", 1), Payload: Encode(&wire.MVBA{Kind: wire.MVBA_VOTE, Vote: 0})}, &out)
	_ = m.Step(core.Message{From: 3, Instance: inst.ChildN("coin", 1), Payload: Encode(&wire.MVBA{Kind: wire.MVBA_VOTE})}, &out)
	_ = m.Step(core.Message{From: 3, Instance: inst.ChildN("zzz", 1), Payload: nil}, &out)
	if len(out.Evidence) != 3 {
		t.Fatalf("want equivocation + 2 malformed, got %v", out.Evidence)
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	bad := []*wire.MVBA{
		{Kind: wire.MVBA_VOTE, Vote: 2},
		{Kind: wire.MVBA_VOTE, Share: []byte{1}},
		{Kind: wire.MVBA_COIN, Share: []byte("short")},
		{Kind: wire.MVBA_DECIDE, Proposer: 1, Value: []byte("short")},
		{Kind: wire.MVBA_DECIDE, Proposer: 0, Value: make([]byte, 32)},
		{Kind: 7},
		{},
	}
	for i, m := range bad {
		if _, err := Decode(Encode(m)); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("case %d: %v", i, err)
		}
	}
}

// Precheck verifies the candidate coin's shares and the ABAs' with a
// pairing, naming the sender of an invalid one; Step accepts the result.
// (Iteration 1's candidate is fixed by DefaultParams: a share for it is
// dropped before any pairing; iteration 2 draws by the coin.)
func TestPrecheckVerifiesCoinShares(t *testing.T) {
	m := newMVBA(t, 1)
	first := core.Message{From: 3, Instance: inst.ChildN("coin", 1),
		Payload: Encode(&wire.MVBA{Kind: wire.MVBA_COIN, Share: coin.ShareFor(testSKs[2], CoinName(inst, 1)).Marshal()})}
	if _, err := m.Precheck(first); !errors.Is(err, errFixedCandidateShare) {
		t.Fatalf("share for the fixed first candidate: %v", err)
	}
	share := coin.ShareFor(testSKs[2], CoinName(inst, 2)).Marshal()
	good := core.Message{From: 3, Instance: inst.ChildN("coin", 2), Payload: Encode(&wire.MVBA{Kind: wire.MVBA_COIN, Share: share})}
	chk, err := m.Precheck(good)
	if err != nil || chk == nil {
		t.Fatalf("valid share refused: %v", err)
	}
	bad := good
	bad.Instance = inst.ChildN("coin", 3)
	var ev *core.Evidence
	if _, err := m.Precheck(bad); !errors.As(err, &ev) || ev.Accused != 3 || ev.Kind != core.InvalidProof {
		t.Fatalf("share for another iteration: %v", err)
	}
	abaShare := core.Message{From: 2, Instance: inst.ChildN("aba", 1), Payload: Encode(&wire.MVBA{Kind: wire.MVBA_VOTE})}
	if _, err := m.Precheck(abaShare); !errors.As(err, &ev) || ev.Kind != core.Malformed {
		t.Fatalf("garbage ABA message: %v", err)
	}
	var out core.Output
	good.Checked = chk
	_ = m.Step(good, &out)
	if len(out.Evidence) != 0 || !m.iters[2].toss.Have(3) {
		t.Fatalf("prechecked share not taken: %v", out.Evidence)
	}
}
