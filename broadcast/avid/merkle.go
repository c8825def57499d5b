package avid

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/bits"

	"github.com/maftia/maftia/core"
)

// Digest is a SHA-256 hash: a Merkle root or node.
type Digest [sha256.Size]byte

// Domain-separation prefixes of the Merkle tree: a leaf, an inner node and
// the padding leaf that fills the tree up to a power of two can never hash
// to the same input (second-preimage attacks across levels are ruled out).
const (
	tagLeaf    = 0x00
	tagNode    = 0x01
	tagPadding = 0x02
	domain     = "maftia/avid/v1"
)

// Depth is the height of the Merkle tree over n fragments: ⌈log₂ n⌉. Every
// proof for a group of n replicas has exactly Depth(n) sibling hashes.
func Depth(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}

func writeLen(h interface{ Write([]byte) (int, error) }, v uint64) {
	var l [8]byte
	binary.BigEndian.PutUint64(l[:], v)
	h.Write(l[:])
}

// leafHash binds fragment i to the instance and its index:
// H(0x00 ‖ domain ‖ len ‖ instance ‖ i ‖ len ‖ fragment).
func leafHash(inst core.InstanceID, i int, frag []byte) Digest {
	h := sha256.New()
	h.Write([]byte{tagLeaf})
	h.Write([]byte(domain))
	writeLen(h, uint64(len(inst)))
	h.Write([]byte(inst))
	writeLen(h, uint64(i))
	writeLen(h, uint64(len(frag)))
	h.Write(frag)
	var d Digest
	h.Sum(d[:0])
	return d
}

// paddingHash fills positions n..2^depth−1: H(0x02 ‖ domain ‖ len ‖ instance ‖ i).
func paddingHash(inst core.InstanceID, i int) Digest {
	h := sha256.New()
	h.Write([]byte{tagPadding})
	h.Write([]byte(domain))
	writeLen(h, uint64(len(inst)))
	h.Write([]byte(inst))
	writeLen(h, uint64(i))
	var d Digest
	h.Sum(d[:0])
	return d
}

// nodeHash is H(0x01 ‖ left ‖ right).
func nodeHash(l, r Digest) Digest {
	h := sha256.New()
	h.Write([]byte{tagNode})
	h.Write(l[:])
	h.Write(r[:])
	var d Digest
	h.Sum(d[:0])
	return d
}

// Commit builds the Merkle tree over fragments (any contents, any sizes:
// the sender may be Byzantine) and returns its root and, for each fragment
// i, its proof: the Depth(n) sibling hashes from leaf i to the root,
// concatenated bottom-up.
func Commit(inst core.InstanceID, fragments [][]byte) (Digest, [][]byte) {
	n := len(fragments)
	depth := Depth(n)
	width := 1 << depth
	level := make([]Digest, width)
	for i := range level {
		if i < n {
			level[i] = leafHash(inst, i, fragments[i])
		} else {
			level[i] = paddingHash(inst, i)
		}
	}
	proofs := make([][]byte, n)
	for i := range proofs {
		proofs[i] = make([]byte, 0, depth*sha256.Size)
	}
	for k := 0; len(level) > 1; k++ {
		for i := range proofs {
			sib := level[(i>>k)^1]
			proofs[i] = append(proofs[i], sib[:]...)
		}
		next := make([]Digest, len(level)/2)
		for j := range next {
			next[j] = nodeHash(level[2*j], level[2*j+1])
		}
		level = next
	}
	if n == 0 {
		return paddingHash(inst, 0), proofs
	}
	return level[0], proofs
}

// errProof is returned by VerifyProof for any proof that does not verify.
var errProof = errors.New("avid: Merkle proof does not verify")

// VerifyProof checks that frag is leaf i of the tree with the given root
// over n fragments of instance inst. The proof must have exactly Depth(n)
// sibling hashes.
func VerifyProof(inst core.InstanceID, n, i int, frag, proof []byte, root Digest) error {
	depth := Depth(n)
	if i < 0 || i >= n || len(proof) != depth*sha256.Size {
		return errProof
	}
	cur := leafHash(inst, i, frag)
	pos := i
	for k := 0; k < depth; k++ {
		var sib Digest
		copy(sib[:], proof[k*sha256.Size:])
		if pos&1 == 0 {
			cur = nodeHash(cur, sib)
		} else {
			cur = nodeHash(sib, cur)
		}
		pos >>= 1
	}
	if cur != root {
		return errProof
	}
	return nil
}
