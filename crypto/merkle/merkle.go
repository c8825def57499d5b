// Package merkle builds binary SHA-256 Merkle trees over leaf digests that
// the caller computes (and domain-separates), padded up to a power of two
// with padding digests the caller also supplies. It gives, for every leaf,
// a proof of Depth(n) sibling hashes, and folds a proof back to a root.
//
// Inner nodes are H(0x01 ‖ left ‖ right). Callers hash leaves with a 0x00
// prefix and padding with a 0x02 prefix (both bound to their own domain),
// so a leaf, a padding position and an inner node never share a preimage:
// a proof cannot pass an inner node off as a leaf. The tree size n is not
// part of the root; a caller that needs it bound signs or hashes it beside
// the root (as smr's reply batches do), or fixes it by construction (as
// AVID does: one leaf per replica).
package merkle

import (
	"crypto/sha256"
	"math/bits"
)

// Size is the size of a digest and of each sibling hash in a proof.
const Size = sha256.Size

// TagNode prefixes the hash of an inner node; TagLeaf and TagPadding are
// the prefixes callers use for leaves and padding positions.
const (
	TagLeaf    = 0x00
	TagNode    = 0x01
	TagPadding = 0x02
)

// Depth is the height of a tree over n leaves, ⌈log₂ n⌉: every proof in
// it has exactly Depth(n) sibling hashes.
func Depth(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}

// Node is the digest of an inner node, H(0x01 ‖ l ‖ r).
func Node(l, r [Size]byte) [Size]byte {
	var b [1 + 2*Size]byte
	b[0] = TagNode
	copy(b[1:], l[:])
	copy(b[1+Size:], r[:])
	return sha256.Sum256(b[:])
}

// Build returns the root of the tree over leaves (padded with pad(i) for
// positions len(leaves) ≤ i < 2^Depth) and, for each leaf, its proof: the
// sibling hashes from the leaf to the root, concatenated bottom-up. With
// no leaves the root is pad(0).
func Build(leaves [][Size]byte, pad func(i int) [Size]byte) ([Size]byte, [][]byte) {
	n := len(leaves)
	if n == 0 {
		return pad(0), nil
	}
	depth := Depth(n)
	level := make([][Size]byte, 1<<depth)
	for i := range level {
		if i < n {
			level[i] = leaves[i]
		} else {
			level[i] = pad(i)
		}
	}
	proofs := make([][]byte, n)
	buf := make([]byte, n*depth*Size) // one allocation for all proofs
	for i := range proofs {
		proofs[i] = buf[i*depth*Size : i*depth*Size : (i+1)*depth*Size]
	}
	for k := 0; len(level) > 1; k++ {
		for i := range proofs {
			sib := level[(i>>k)^1]
			proofs[i] = append(proofs[i], sib[:]...)
		}
		next := make([][Size]byte, len(level)/2)
		for j := range next {
			next[j] = Node(level[2*j], level[2*j+1])
		}
		level = next
	}
	return level[0], proofs
}

// Fold returns the root of a tree of n leaves whose leaf i is leaf, given
// i's proof; ok is false when i is out of range or the proof does not have
// exactly Depth(n) sibling hashes. The caller compares the root with the
// one it trusts.
func Fold(leaf [Size]byte, n, i int, proof []byte) (root [Size]byte, ok bool) {
	depth := Depth(n)
	if n < 1 || i < 0 || i >= n || len(proof) != depth*Size {
		return root, false
	}
	cur, pos := leaf, i
	for k := range depth {
		sib := [Size]byte(proof[k*Size : (k+1)*Size])
		if pos&1 == 0 {
			cur = Node(cur, sib)
		} else {
			cur = Node(sib, cur)
		}
		pos >>= 1
	}
	return cur, true
}
