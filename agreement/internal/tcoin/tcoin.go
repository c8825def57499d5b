// Package tcoin collects the shares of one threshold-coin toss for the
// agreement protocols (agreement/aba, agreement/mvba): at most one share per
// replica, structurally checked on arrival (index = sender, key, coin name;
// no pairing), combined optimistically once the protocol allows it (one
// pairing check for the whole set), and, when the optimistic combination
// fails, checked share by share so that the invalid ones are named as
// InvalidProof evidence and the toss completes from the valid ones
// (ATTACKS.md row 7). Cachin–Kursawe–Shoup, J. Cryptology 18(3), 2005, §3.
package tcoin

import (
	"errors"
	"fmt"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/coin"
	"github.com/maftia/maftia/crypto/tsig"
)

// Ops counts the cryptographic operations of a replica (for benchmarks).
type Ops struct {
	SharesSigned   uint64 // coin shares made (hash to G1 + scalar mult)
	SharesVerified uint64 // individual pairing checks of shares
	Combines       uint64 // combinations (interpolation + one pairing check)
}

// Add accumulates o into x.
func (x *Ops) Add(o Ops) {
	x.SharesSigned += o.SharesSigned
	x.SharesVerified += o.SharesVerified
	x.Combines += o.Combines
}

// Toss gathers the shares of one coin.
type Toss struct {
	c        *coin.Coin
	name     []byte
	shares   []coin.Share // by replica index-1
	have     []bool
	verified []bool // checked by Precheck
	invalid  []bool // named invalid by a failed combination
	count    int
	done     bool
	value    coin.Value
}

// New starts a toss of the coin with the given name among n replicas.
func New(c *coin.Coin, name []byte, n int) *Toss {
	return &Toss{c: c, name: name, shares: make([]coin.Share, n), have: make([]bool, n),
		verified: make([]bool, n), invalid: make([]bool, n)}
}

// Name is the coin name.
func (t *Toss) Name() []byte { return t.name }

// Decode parses a share received from a replica and runs the structural
// checks (length, point on the curve and in the subgroup, index equal to
// the sender, made under this coin key, for this coin name) without a
// pairing.
func Decode(c *coin.Coin, name []byte, from core.NodeID, b []byte) (coin.Share, error) {
	s, err := tsig.UnmarshalShare(b)
	if err != nil {
		return coin.Share{}, err
	}
	if s.Index != uint32(from) {
		return coin.Share{}, fmt.Errorf("share index %d from replica %d", s.Index, from)
	}
	// CombineVerified on one share runs only tsig's structural checks
	// (index range, key fingerprint, message tag) before it reports too few
	// shares; no pairing is computed.
	if _, err := tsig.CombineVerified(c.PublicKey(), []coin.Share{s}, name); err != nil && !errors.Is(err, tsig.ErrTooFewShares) {
		return coin.Share{}, err
	}
	return s, nil
}

// Verify is the full check Precheck runs off the stepping goroutine.
func Verify(c *coin.Coin, name []byte, from core.NodeID, b []byte) (coin.Share, error) {
	s, err := Decode(c, name, from, b)
	if err != nil {
		return coin.Share{}, err
	}
	return s, c.VerifyShare(s, name)
}

// Add records the first share of replica from (already decoded); later
// shares from the same replica are ignored. verified says Precheck checked
// it. Add reports whether the share was new.
func (t *Toss) Add(from core.NodeID, s coin.Share, verified bool) bool {
	i := int(from) - 1
	if t.done || i < 0 || i >= len(t.have) || t.have[i] {
		return false
	}
	t.have[i], t.shares[i], t.verified[i] = true, s, verified
	t.count++
	return true
}

// Have reports whether replica from's share was received.
func (t *Toss) Have(from core.NodeID) bool {
	i := int(from) - 1
	return i >= 0 && i < len(t.have) && t.have[i]
}

// Count is the number of shares received and not found invalid.
func (t *Toss) Count() int { return t.count }

// Done reports whether the coin value is known.
func (t *Toss) Done() (coin.Value, bool) { return t.value, t.done }

// Try combines once threshold shares not known to be invalid are present.
// Invalid shares found on the way are reported as evidence against their
// senders and discarded; the toss then waits for more shares.
func (t *Toss) Try(threshold int, inst core.InstanceID, ops *Ops, out *core.Output) (coin.Value, bool) {
	if t.done {
		return t.value, true
	}
	for t.count >= threshold {
		// Verified shares first, so the optimistic attempt rarely fails.
		set := make([]coin.Share, 0, t.count)
		for pass := 0; pass < 2; pass++ {
			for i, ok := range t.have {
				if ok && !t.invalid[i] && t.verified[i] == (pass == 0) {
					set = append(set, t.shares[i])
				}
			}
		}
		ops.Combines++
		v, bad, err := t.c.Toss(set, t.name)
		if len(bad) > 0 {
			ops.SharesVerified += uint64(len(set))
		}
		for _, b := range bad {
			i := int(b) - 1
			if i >= 0 && i < len(t.invalid) && !t.invalid[i] {
				t.invalid[i] = true
				t.count--
				out.Accuse(core.NodeID(b), core.InvalidProof, inst, "invalid coin share")
			}
		}
		if err == nil {
			t.done, t.value = true, v
			t.shares, t.have, t.verified, t.invalid = nil, nil, nil, nil
			return v, true
		}
		if len(bad) == 0 {
			// Structurally checked shares cannot fail otherwise.
			return coin.Value{}, false
		}
	}
	return coin.Value{}, false
}
