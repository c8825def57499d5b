package merkle

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"pgregory.net/rapid"
)

func leaf(i int) [Size]byte {
	return sha256.Sum256(binary.BigEndian.AppendUint64([]byte{TagLeaf}, uint64(i)))
}

func pad(i int) [Size]byte {
	return sha256.Sum256(binary.BigEndian.AppendUint64([]byte{TagPadding}, uint64(i)))
}

// naiveRoot computes the root recursively, as the definition reads.
func naiveRoot(leaves [][Size]byte, width int, off int) [Size]byte {
	if width == 1 {
		if off < len(leaves) {
			return leaves[off]
		}
		return pad(off)
	}
	return Node(naiveRoot(leaves, width/2, off), naiveRoot(leaves, width/2, off+width/2))
}

func TestEveryProofFoldsToTheRoot(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 70).Draw(t, "n")
		leaves := make([][Size]byte, n)
		for i := range leaves {
			leaves[i] = leaf(i)
		}
		root, proofs := Build(leaves, pad)
		if want := naiveRoot(leaves, 1<<Depth(n), 0); root != want {
			t.Fatalf("root differs from the recursive definition")
		}
		for i := range leaves {
			got, ok := Fold(leaves[i], n, i, proofs[i])
			if !ok || got != root {
				t.Fatalf("leaf %d of %d: proof does not fold to the root", i, n)
			}
			// Another leaf, position or size must not reach the root.
			if got, ok := Fold(leaf(i+1000), n, i, proofs[i]); ok && got == root {
				t.Fatalf("a foreign leaf verified at %d", i)
			}
			if j := (i + 1) % n; j != i {
				if got, ok := Fold(leaves[i], n, j, proofs[i]); ok && got == root {
					t.Fatalf("leaf %d verified at position %d", i, j)
				}
			}
		}
	})
}

func TestFoldRefusesMalformedProofs(t *testing.T) {
	l := leaf(0)
	for _, c := range []struct {
		n, i  int
		proof []byte
	}{
		{0, 0, nil}, {4, -1, make([]byte, 2*Size)}, {4, 4, make([]byte, 2*Size)},
		{4, 0, make([]byte, Size)}, {4, 0, make([]byte, 3*Size)}, {1, 0, make([]byte, Size)},
	} {
		if _, ok := Fold(l, c.n, c.i, c.proof); ok {
			t.Errorf("n=%d i=%d proof %d bytes: accepted", c.n, c.i, len(c.proof))
		}
	}
	if root, ok := Fold(l, 1, 0, nil); !ok || root != l {
		t.Errorf("a one-leaf tree's root is the leaf")
	}
}
