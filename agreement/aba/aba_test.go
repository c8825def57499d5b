package aba

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/coin"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/wire"
)

var g4 = core.MustGroup(4, 1, core.Async)

const inst core.InstanceID = "aba:1"

var (
	testCoin *coin.Coin
	testSKs  []*tsig.SecretShare
)

func keys(t testing.TB) (*coin.Coin, []*tsig.SecretShare) {
	if testCoin == nil {
		c, sks, err := coin.Deal(rand.NewChaCha8([32]byte{1}), 4, 1)
		if err != nil {
			t.Fatal(err)
		}
		testCoin, testSKs = c, sks
	}
	return testCoin, testSKs
}

func newABA(t testing.TB, self core.NodeID) *ABA {
	c, sks := keys(t)
	a, err := New(inst, DefaultParams(g4, self, c, sks[self-1]))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func msg(from core.NodeID, m *wire.ABA) core.Message {
	return core.Message{From: from, Instance: inst, Payload: Encode(m)}
}

func sent(out *core.Output, kind wire.ABA_Kind) []*wire.ABA {
	var got []*wire.ABA
	for _, s := range out.Sends {
		if m, err := Decode(s.Payload); err == nil && m.Kind == kind {
			got = append(got, m)
		}
	}
	return got
}

func TestParamsRefuseTooFewReplicas(t *testing.T) {
	c, sks := keys(t)
	g := core.MustGroup(3, 1, core.HybridSMR)
	if _, err := New(inst, DefaultParams(g, 1, c, sks[0])); !errors.Is(err, core.ErrResilience) {
		t.Fatalf("want ErrResilience, got %v", err)
	}
	if _, err := New(inst, DefaultParams(g4, 1, c, sks[1])); err == nil {
		t.Fatal("another replica's key share accepted")
	}
}

// drive takes replica 1 through round 1 with every replica voting 1 and
// returns it with the coin shares still to come.
func driveToCoin(t *testing.T, out *core.Output) *ABA {
	a := newABA(t, 1)
	if err := a.Step(core.Input{Instance: inst, Value: true}, out); err != nil {
		t.Fatal(err)
	}
	for _, from := range g4.Members() {
		_ = a.Step(msg(from, &wire.ABA{Kind: wire.ABA_BVAL, Round: 1, Value: 1}), out)
	}
	for _, from := range g4.Members() {
		_ = a.Step(msg(from, &wire.ABA{Kind: wire.ABA_AUX, Round: 1, Value: 1}), out)
	}
	if len(sent(out, wire.ABA_CONF)) != 1 {
		t.Fatalf("no CONF after n−f AUX")
	}
	// The CONF fix: no coin share before n−f CONF sets ⊆ bin_values.
	if len(sent(out, wire.ABA_COIN)) != 0 {
		t.Fatal("coin share released before the CONF phase completed")
	}
	_ = a.Step(msg(2, &wire.ABA{Kind: wire.ABA_CONF, Round: 1, Value: 3}), out) // {0,1} ⊄ bin_values {1}
	_ = a.Step(msg(3, &wire.ABA{Kind: wire.ABA_CONF, Round: 1, Value: 2}), out)
	_ = a.Step(msg(4, &wire.ABA{Kind: wire.ABA_CONF, Round: 1, Value: 2}), out)
	if len(sent(out, wire.ABA_COIN)) != 0 {
		t.Fatal("coin share released on a CONF set not contained in bin_values")
	}
	_ = a.Step(msg(1, &wire.ABA{Kind: wire.ABA_CONF, Round: 1, Value: 2}), out)
	if len(sent(out, wire.ABA_COIN)) != 1 {
		t.Fatal("no coin share after n−f CONF sets ⊆ bin_values")
	}
	return a
}

// An invalid coin share (valid header, wrong point) is reported as
// InvalidProof and the coin still completes from the valid shares.
func TestInvalidCoinShareIsEvidenceAndCoinCompletes(t *testing.T) {
	var out core.Output
	a := driveToCoin(t, &out)
	_, sks := keys(t)
	name := CoinName(inst, 1)
	forged := coin.ShareFor(sks[1], CoinName(inst, 2)).Marshal() // replica 2's share of another round...
	good := coin.ShareFor(sks[1], name).Marshal()
	copy(forged[:4+2*tsig.TagSize], good[:4+2*tsig.TagSize]) // ...under round 1's header
	out.Reset()
	_ = a.Step(msg(2, &wire.ABA{Kind: wire.ABA_COIN, Round: 1, Share: forged}), &out)
	_ = a.Step(msg(1, &wire.ABA{Kind: wire.ABA_COIN, Round: 1, Share: coin.ShareFor(sks[0], name).Marshal()}), &out)
	if a.Round() != 1 {
		t.Fatal("coin completed from f+1 shares of which one is invalid")
	}
	if len(out.Evidence) != 1 || out.Evidence[0].Accused != 2 || out.Evidence[0].Kind != core.InvalidProof {
		t.Fatalf("evidence %v", out.Evidence)
	}
	_ = a.Step(msg(3, &wire.ABA{Kind: wire.ABA_COIN, Round: 1, Share: coin.ShareFor(sks[2], name).Marshal()}), &out)
	if _, decided := a.Decided(); a.Round() != 2 && !decided {
		t.Fatal("coin did not complete from the valid shares")
	}
	// A share that claims another index, or garbage, is evidence too.
	b := newABA(t, 1)
	out.Reset()
	_ = b.Step(msg(4, &wire.ABA{Kind: wire.ABA_COIN, Round: 1, Share: good}), &out)
	_ = b.Step(core.Message{From: 3, Instance: inst, Payload: []byte{0xff}}, &out)
	if len(out.Evidence) != 2 || out.Evidence[0].Kind != core.InvalidProof || out.Evidence[1].Kind != core.Malformed {
		t.Fatalf("evidence %v", out.Evidence)
	}
}

// Precheck verifies coin shares with a pairing and names the sender of an
// invalid one.
func TestPrecheckVerifiesCoinShares(t *testing.T) {
	a := newABA(t, 1)
	_, sks := keys(t)
	good := coin.ShareFor(sks[2], CoinName(inst, 1)).Marshal()
	chk, err := a.Precheck(msg(3, &wire.ABA{Kind: wire.ABA_COIN, Round: 1, Share: good}))
	if err != nil || chk.(*Checked).Share.Index != 3 {
		t.Fatalf("valid share refused: %v", err)
	}
	_, err = a.Precheck(msg(3, &wire.ABA{Kind: wire.ABA_COIN, Round: 2, Share: good}))
	var ev *core.Evidence
	if !errors.As(err, &ev) || ev.Accused != 3 || ev.Kind != core.InvalidProof {
		t.Fatalf("share for another round: %v", err)
	}
	var out core.Output
	_ = a.Step(core.Message{From: 3, Instance: inst, Checked: chk}, &out)
	if len(out.Evidence) != 0 {
		t.Fatalf("prechecked share rejected: %v", out.Evidence)
	}
}

// A coin share for a round whose coin is fixed is dropped by Precheck
// before any pairing (nobody needs it, so it costs the receiver nothing),
// and ignored by Step; shares of later rounds are checked as usual.
func TestPrecheckDropsSharesOfFixedCoinRounds(t *testing.T) {
	_, sks := keys(t)
	fixed := []bool{true}
	share := func(r uint64) []byte { return coin.ShareFor(sks[2], CoinName(inst, r)).Marshal() }
	if _, err := Precheck(nil, fixed, msg(3, &wire.ABA{Kind: wire.ABA_COIN, Round: 1, Share: share(1)})); !errors.Is(err, errFixedRoundShare) {
		t.Fatalf("share of fixed round 1: %v", err)
	}
	c, _ := keys(t)
	if _, err := Precheck(c, fixed, msg(3, &wire.ABA{Kind: wire.ABA_COIN, Round: 2, Share: share(2)})); err != nil {
		t.Fatalf("share of round 2: %v", err)
	}
}

// Memory stays bounded whatever a Byzantine replica sends: messages for
// rounds far ahead are dropped, and one round keeps O(n) state.
func TestFarFutureRoundsKeepMemoryBounded(t *testing.T) {
	a := newABA(t, 1)
	var out core.Output
	for r := uint64(1); r < 5000; r++ {
		for v := uint32(0); v < 2; v++ {
			_ = a.Step(msg(4, &wire.ABA{Kind: wire.ABA_BVAL, Round: r, Value: v}), &out)
			_ = a.Step(msg(4, &wire.ABA{Kind: wire.ABA_AUX, Round: r, Value: v}), &out)
		}
	}
	if got, bound := a.Retained(), int(a.p.MaxRoundsAhead)+1; got > bound {
		t.Fatalf("%d rounds retained, bound %d", got, bound)
	}
	eq := 0
	for _, e := range out.Evidence {
		if e.Kind == core.Equivocation && e.Accused == 4 {
			eq++
		}
	}
	if eq == 0 {
		t.Fatal("two AUX values in one round not reported")
	}
}

// f+1 TERMs decide, 2f+1 halt; a TERM for both values is equivocation.
func TestTermAmplificationDecidesAndHalts(t *testing.T) {
	a := newABA(t, 1)
	var out core.Output
	_ = a.Step(msg(2, &wire.ABA{Kind: wire.ABA_TERM, Value: 0}), &out)
	if _, ok := a.Decided(); ok {
		t.Fatal("decided on one TERM")
	}
	_ = a.Step(msg(2, &wire.ABA{Kind: wire.ABA_TERM, Value: 1}), &out)
	_ = a.Step(msg(3, &wire.ABA{Kind: wire.ABA_TERM, Value: 0}), &out)
	if d, ok := a.Decided(); !ok || d.Value || !d.ByTerm || len(out.Deliveries) != 1 {
		t.Fatalf("no decision on f+1 TERMs: %v %v", d, ok)
	}
	if a.Finished() {
		t.Fatal("halted before 2f+1 TERMs")
	}
	_ = a.Step(msg(4, &wire.ABA{Kind: wire.ABA_TERM, Value: 0}), &out)
	if !a.Finished() {
		t.Fatal("not halted after 2f+1 TERMs")
	}
	if len(out.Evidence) != 1 || out.Evidence[0].Kind != core.Equivocation {
		t.Fatalf("evidence %v", out.Evidence)
	}
	if len(sent(&out, wire.ABA_TERM)) != 1 {
		t.Fatal("decider did not broadcast TERM")
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	bad := []*wire.ABA{
		{Kind: wire.ABA_BVAL, Round: 0, Value: 1},
		{Kind: wire.ABA_BVAL, Round: 1, Value: 2},
		{Kind: wire.ABA_AUX, Round: 1, Value: 1, Share: []byte{1}},
		{Kind: wire.ABA_CONF, Round: 1, Value: 0},
		{Kind: wire.ABA_CONF, Round: 1, Value: 4},
		{Kind: wire.ABA_COIN, Round: 1, Share: []byte("short")},
		{Kind: wire.ABA_TERM, Round: 3, Value: 1},
		{Kind: 9, Round: 1},
		{},
	}
	for i, m := range bad {
		if _, err := Decode(Encode(m)); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("case %d: %v", i, err)
		}
	}
}

// A restarted replica that persisted AUX_1(1) and CONF_1({1}) never sends
// a different AUX or CONF in round 1, and one that persisted its decision
// never delivers again (amnesia would be equivocation).
func TestRecoveredReplicaDoesNotEquivocate(t *testing.T) {
	var out core.Output
	a := driveToCoin(t, &out)
	if len(out.Persist) < 3 {
		t.Fatalf("records %v", out.Persist)
	}
	rec, err := Recover(inst, a.p, out.Persist)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Round() != 1 || !rec.started || rec.est != 1 {
		t.Fatalf("recovered round %d started %v est %d", rec.Round(), rec.started, rec.est)
	}
	out.Reset()
	for _, from := range g4.Members() {
		_ = rec.Step(msg(from, &wire.ABA{Kind: wire.ABA_BVAL, Round: 1, Value: 0}), &out)
		_ = rec.Step(msg(from, &wire.ABA{Kind: wire.ABA_AUX, Round: 1, Value: 0}), &out)
	}
	if len(sent(&out, wire.ABA_AUX)) != 0 || len(sent(&out, wire.ABA_CONF)) != 0 {
		t.Fatal("recovered replica sent a second AUX or CONF in round 1")
	}
	// Decision survives a restart.
	b := newABA(t, 1)
	out.Reset()
	for _, from := range []core.NodeID{2, 3} {
		_ = b.Step(msg(from, &wire.ABA{Kind: wire.ABA_TERM, Value: 1}), &out)
	}
	rb, err := Recover(inst, b.p, out.Persist)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	for _, from := range []core.NodeID{2, 3, 4} {
		_ = rb.Step(msg(from, &wire.ABA{Kind: wire.ABA_TERM, Value: 1}), &out)
	}
	if d, ok := rb.Decided(); !ok || !d.Value || len(out.Deliveries) != 0 || !rb.Finished() {
		t.Fatalf("recovered decision %v %v, %d deliveries, finished %v", d, ok, len(out.Deliveries), rb.Finished())
	}
	if _, err := Recover(inst, b.p, []core.Record{{Instance: inst, Key: "aux", Value: []byte("short")}}); err == nil {
		t.Fatal("corrupt record accepted")
	}
}
