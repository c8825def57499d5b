package abc_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/suites"
	"github.com/maftia/maftia/wire"
)

// runWithTokens runs the abc suite (seeded) and takes every replica's
// resume token for each batch in the step that delivered it.
func runWithTokens(t *testing.T, seed uint64) (*suites.ABCSuite, map[uint64]map[core.NodeID][]byte) {
	t.Helper()
	s := suites.ABC(suites.Options{})
	s.Requests = 24
	g := core.MustGroup(4, 1, core.Async)
	c, err := sim.NewCluster(s.Suite, g, seed, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	s.Start(c)
	tokens := map[uint64]map[core.NodeID][]byte{}
	seen := map[core.NodeID]int{}
	for i := 0; len(c.Pending()) > 0 && i < 200000; i++ {
		c.Deliver(int(uint64(i*7919) % uint64(len(c.Pending()))))
		for _, id := range g.Members() {
			ds := c.Deliveries(id)
			for _, d := range ds[seen[id]:] {
				b, ok := d.Value.(*wire.Batch)
				if !ok {
					continue
				}
				tok, err := s.Core(id).ResumeToken(b.Seq)
				if err != nil {
					t.Fatalf("replica %d batch %d: %v", id, b.Seq, err)
				}
				if tokens[b.Seq] == nil {
					tokens[b.Seq] = map[core.NodeID][]byte{}
				}
				tokens[b.Seq][id] = tok
			}
			seen[id] = len(ds)
		}
	}
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
	return s, tokens
}

// Resume tokens are part of certified checkpoints, so every correct
// replica must compute the same token for the same batch (determinism);
// a token is only available in the step that delivered its batch.
func TestResumeTokensAgree(t *testing.T) {
	s, tokens := runWithTokens(t, 3)
	if len(tokens) < 2 {
		t.Fatalf("only %d batches", len(tokens))
	}
	for seq, byID := range tokens {
		var first []byte
		for id, tok := range byID {
			if first == nil {
				first = tok
			} else if !bytes.Equal(first, tok) {
				t.Fatalf("batch %d: replica %d token differs", seq, id)
			}
		}
	}
	if _, err := s.Core(1).ResumeToken(1); err == nil {
		t.Fatal("a token outside the step that delivered the batch")
	}
}

// Resume skips a fresh engine ahead to the epoch after the token's and
// refuses to go back; malformed tokens are refused.
func TestResumeSkipsAheadAndRefusesBackwards(t *testing.T) {
	_, tokens := runWithTokens(t, 5)
	var last uint64
	for seq := range tokens {
		last = max(last, seq)
	}
	tok := tokens[last][1]
	epoch := binary.BigEndian.Uint64(tok)
	fresh, _ := runWithTokens(t, 6) // another run's cores: only their state matters
	a := fresh.Core(2)
	seqBefore := uint64(0)
	for s := range tokens {
		seqBefore = max(seqBefore, s)
	}
	if err := a.Resume(seqBefore+100, tok); err != nil {
		t.Fatal(err)
	}
	if a.NextEpoch() != epoch+1 {
		t.Fatalf("resumed at epoch %d, want %d", a.NextEpoch(), epoch+1)
	}
	if err := a.Resume(seqBefore+99, tok); err == nil {
		t.Fatal("resumed backwards")
	}
	for _, bad := range [][]byte{nil, tok[:9], append(bytes.Clone(tok), 0), binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 5), 1<<60)} {
		if err := a.Resume(seqBefore+200, bad); err == nil {
			t.Fatalf("malformed token %x accepted", bad)
		}
	}
}

func FuzzResume(f *testing.F) {
	f.Add(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 7), 0))
	one := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 7), 1)
	one = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(one, 6), 1)
	f.Add(append(one, make([]byte, 32)...))
	f.Add([]byte{1, 2, 3})
	s := suites.ABC(suites.Options{})
	g := core.MustGroup(4, 1, core.Async)
	if _, err := sim.NewCluster(s.Suite, g, 1, nil, false); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tok []byte) {
		c, err := sim.NewCluster(s.Suite, g, 1, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		_ = c
		a := s.Core(1)
		if a.Resume(10, tok) == nil && a.NextEpoch() == 0 {
			t.Fatal("resumed to epoch 0")
		}
	})
}
