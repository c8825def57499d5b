package abc

import (
	"errors"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/tenc"
	"github.com/maftia/maftia/wire"
)

// causal is the secure causal atomic broadcast stage (Cachin, Kursawe,
// Petzold and Shoup, "Secure and Efficient Asynchronous Broadcast
// Protocols", CRYPTO 2001, §6; Reiter and Birman's input causality):
// ciphertexts are ordered by the epochs of ABC; once an epoch's order is
// fixed, every replica releases one TDH2 decryption share per ciphertext,
// and f+1 valid shares give the plaintext. Before that moment at most f
// shares (the Byzantine replicas' own) exist, which reveal nothing (TDH2
// is CCA-secure with threshold f+1), so no replica can see a request's
// content before its position is fixed, and so cannot front-run it or
// censor it by content.
type causal struct {
	p       Params
	root    core.InstanceID
	queue   []*decryption // ordered epochs not yet delivered, in order
	early   map[uint64]map[core.NodeID][][]byte
	emitter func(uint64, [][]byte, *core.Output)
	ops     *Ops
}

type decryption struct {
	epoch  uint64
	cts    []*tenc.CheckedCiphertext
	from   map[core.NodeID]bool
	shares [][]tenc.Share
	plain  [][]byte
	left   int
}

func newCausal(p Params) *causal {
	if p.Decrypt == nil {
		return nil
	}
	return &causal{p: p, early: map[uint64]map[core.NodeID][][]byte{}}
}

// check validates a ciphertext: well-formed, label as configured, and its
// TDH2 validity proof (the check that must precede any decryption share).
func (c *causal) check(r []byte) *tenc.CheckedCiphertext {
	ct, err := tenc.UnmarshalCiphertext(r)
	if err != nil {
		return nil
	}
	checked, err := c.p.Decrypt.Check(ct, c.p.Label)
	if err != nil {
		return nil
	}
	return checked
}

// ordered starts decrypting epoch e (whose ciphertexts passed check when
// they were ordered) and returns this replica's shares, also broadcast.
func (c *causal) ordered(e uint64, cts [][]byte, out *core.Output) [][]byte {
	if len(cts) == 0 {
		return nil
	}
	d := &decryption{epoch: e, from: map[core.NodeID]bool{}, shares: make([][]tenc.Share, len(cts)),
		plain: make([][]byte, len(cts)), left: len(cts)}
	mine := make([][]byte, len(cts))
	for i, r := range cts {
		checked := c.check(r)
		d.cts = append(d.cts, checked)
		s, err := tenc.DecryptShare(c.p.Rand, c.p.DecryptKey, checked)
		if err != nil {
			continue // only a failing Rand: the other replicas' shares suffice
		}
		mine[i] = s.Marshal()
	}
	c.queue = append(c.queue, d)
	out.Broadcast(c.root, encode(&wire.ABC{Kind: wire.ABC_DECRYPT, Epoch: e, Shares: mine}))
	// Shares that arrived before this replica fixed the epoch.
	for from, sh := range c.early[e] {
		c.add(d, from, sh, out)
	}
	delete(c.early, e)
	c.flush(out)
	return mine
}

// onShares takes one replica's shares for an epoch.
func (c *causal) onShares(from core.NodeID, m *wire.ABC, nextDeliver uint64, out *core.Output) {
	for _, d := range c.queue {
		if d.epoch == m.Epoch {
			c.add(d, from, m.Shares, out)
			c.flush(out)
			return
		}
	}
	// Not ordered here yet: keep one message per sender for epochs within
	// the window (bounded), drop the rest.
	if m.Epoch < nextDeliver || m.Epoch >= nextDeliver+c.p.Window {
		return
	}
	if c.early[m.Epoch] == nil {
		c.early[m.Epoch] = map[core.NodeID][][]byte{}
	}
	if _, dup := c.early[m.Epoch][from]; !dup && len(m.Shares) <= c.p.BatchSize*c.p.Group.N() {
		c.early[m.Epoch][from] = m.Shares
	}
}

var errShareCount = errors.New("wrong number of decryption shares")

// add records from's shares and combines every ciphertext that reaches
// f+1 shares; invalid shares are evidence and discarded.
func (c *causal) add(d *decryption, from core.NodeID, shares [][]byte, out *core.Output) {
	if d.from[from] {
		return
	}
	d.from[from] = true
	if len(shares) != len(d.cts) {
		out.Accuse(from, core.Malformed, c.root, "epoch %d: %v (%d for %d)", d.epoch, errShareCount, len(shares), len(d.cts))
		return
	}
	for i, raw := range shares {
		if d.plain[i] != nil || d.cts[i] == nil {
			continue
		}
		s, err := tenc.UnmarshalShare(raw)
		if err != nil || s.Index != uint32(from) {
			out.Accuse(from, core.InvalidProof, c.root, "epoch %d: malformed decryption share", d.epoch)
			continue
		}
		d.shares[i] = append(d.shares[i], s)
		if len(d.shares[i]) < c.p.Group.F()+1 {
			continue
		}
		plain, bad, err := tenc.Combine(c.p.Decrypt, d.cts[i], d.shares[i])
		c.ops.Combines++
		if err != nil {
			kept := d.shares[i][:0]
			for _, x := range d.shares[i] {
				if containsIndex(bad, x.Index) {
					out.Accuse(core.NodeID(x.Index), core.InvalidProof, c.root, "epoch %d: invalid decryption share", d.epoch)
					continue
				}
				kept = append(kept, x)
			}
			d.shares[i] = kept
			continue
		}
		d.plain[i], d.shares[i] = plain, nil
		d.left--
	}
}

func containsIndex(xs []uint32, v uint32) bool {
	for _, x := range xs {
		if x == v {
			return true
		}
	}
	return false
}

// flush delivers decrypted epochs in order; plaintexts that fail Valid
// (the client's signature) are dropped alike at every correct replica.
func (c *causal) flush(out *core.Output) {
	for len(c.queue) > 0 && (c.queue[0].left == 0 || allUndecryptable(c.queue[0])) {
		d := c.queue[0]
		c.queue = c.queue[1:]
		var reqs [][]byte
		for i, p := range d.plain {
			if d.cts[i] != nil && p != nil && c.p.Valid(p) {
				reqs = append(reqs, p)
			}
		}
		if len(reqs) > 0 {
			c.emitter(d.epoch, reqs, out)
		}
	}
}

// allUndecryptable: ciphertexts that failed check never get a plaintext.
func allUndecryptable(d *decryption) bool {
	for i := range d.cts {
		if d.cts[i] != nil && d.plain[i] == nil {
			return false
		}
	}
	return true
}
