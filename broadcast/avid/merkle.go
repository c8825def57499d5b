package avid

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/merkle"
)

// Digest is a SHA-256 hash: a Merkle root or node.
type Digest [sha256.Size]byte

// Domain-separation prefixes of the Merkle tree (crypto/merkle): a leaf,
// an inner node and the padding leaf that fills the tree up to a power of
// two can never hash to the same input (second-preimage attacks across
// levels are ruled out).
const (
	tagLeaf    = merkle.TagLeaf
	tagPadding = merkle.TagPadding
	domain     = "maftia/avid/v1"
)

// Depth is the height of the Merkle tree over n fragments: ⌈log₂ n⌉. Every
// proof for a group of n replicas has exactly Depth(n) sibling hashes.
func Depth(n int) int { return merkle.Depth(n) }

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

// Commit builds the Merkle tree over fragments (any contents, any sizes:
// the sender may be Byzantine) and returns its root and, for each fragment
// i, its proof: the Depth(n) sibling hashes from leaf i to the root,
// concatenated bottom-up.
func Commit(inst core.InstanceID, fragments [][]byte) (Digest, [][]byte) {
	leaves := make([][sha256.Size]byte, len(fragments))
	for i, f := range fragments {
		leaves[i] = leafHash(inst, i, f)
	}
	root, proofs := merkle.Build(leaves, func(i int) [sha256.Size]byte { return paddingHash(inst, i) })
	if proofs == nil {
		proofs = [][]byte{}
	}
	return root, proofs
}

// errProof is returned by VerifyProof for any proof that does not verify.
var errProof = errors.New("avid: Merkle proof does not verify")

// VerifyProof checks that frag is leaf i of the tree with the given root
// over n fragments of instance inst. The proof must have exactly Depth(n)
// sibling hashes.
func VerifyProof(inst core.InstanceID, n, i int, frag, proof []byte, root Digest) error {
	got, ok := merkle.Fold(leafHash(inst, i, frag), n, i, proof)
	if !ok || got != root {
		return errProof
	}
	return nil
}
