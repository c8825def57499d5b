package suites

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"

	"github.com/maftia/maftia/crypto/coin"
	"github.com/maftia/maftia/crypto/tsig"
)

// coinKeys is a coin key set dealt for one simulated run.
type coinKeys struct {
	coin *coin.Coin
	sks  []*tsig.SecretShare
}

// dealCoin deals the threshold-coin key (threshold f+1) for a run from a
// deterministic reader seeded by the run seed, so a run replays byte for
// byte. Dealing costs n scalar multiplications in G2: cheap next to the
// run itself, so keys are dealt per (n, seed) and not cached.
func dealCoin(n, f int, seed uint64) (*coinKeys, error) {
	var s [32]byte
	binary.BigEndian.PutUint64(s[:], seed)
	copy(s[8:], "maftia/sim/coin-dealer")
	c, sks, err := coin.Deal(rand.NewChaCha8(s), n, f)
	if err != nil {
		return nil, fmt.Errorf("suites: deal coin n=%d f=%d: %w", n, f, err)
	}
	return &coinKeys{coin: c, sks: sks}, nil
}

// g1Generator is the compressed generator of G1: a valid subgroup point
// that is nobody's coin share, used to forge invalid shares.
var g1Generator = []byte{
	0x97, 0xf1, 0xd3, 0xa7, 0x31, 0x97, 0xd7, 0x94, 0x26, 0x95, 0x63, 0x8c, 0x4f, 0xa9, 0xac, 0x0f,
	0xc3, 0x68, 0x8c, 0x4f, 0x97, 0x74, 0xb9, 0x05, 0xa1, 0x4e, 0x3a, 0x3f, 0x17, 0x1b, 0xac, 0x58,
	0x6c, 0x55, 0xe8, 0x3f, 0xf9, 0x7a, 0x1a, 0xef, 0xfb, 0x3a, 0xf0, 0x0a, 0xdb, 0x22, 0xc6, 0xbb,
}

// forgeShare keeps a share's header (index, key, coin name) and replaces
// its point: it passes every structural check and fails the pairing.
func forgeShare(share []byte) []byte {
	if len(share) != tsig.ShareSize {
		return share
	}
	out := append([]byte(nil), share...)
	copy(out[len(out)-len(g1Generator):], g1Generator)
	return out
}
