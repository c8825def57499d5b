package coin

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/maftia/maftia/crypto/internal/lp"
	"github.com/maftia/maftia/crypto/tsig"
)

// DST is the RFC 9380 domain-separation tag of coin keys.
const DST = "MAFTIA-V01-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_COIN_"

// ErrWrongDST: the tsig key given to New was not made for the coin.
var ErrWrongDST = errors.New("coin: key has another domain-separation tag")

// Share is a coin share (a tsig signature share on the coin name). Decode
// with tsig.UnmarshalShare; errors are tsig's sentinels.
type Share = tsig.Share

// Coin tosses coins under one threshold key.
type Coin struct {
	pk *tsig.PublicKey
}

// New wraps a tsig public key whose DST is coin.DST.
func New(pk *tsig.PublicKey) (*Coin, error) {
	if !bytes.Equal(pk.DST(), []byte(DST)) {
		return nil, fmt.Errorf("%w: %q", ErrWrongDST, pk.DST())
	}
	return &Coin{pk: pk}, nil
}

// Deal creates a coin key for n members with threshold f+1 (trusted dealer).
func Deal(rand io.Reader, n, f int) (*Coin, []*tsig.SecretShare, error) {
	pk, sks, err := tsig.Deal(rand, n, f+1, []byte(DST))
	if err != nil {
		return nil, nil, err
	}
	return &Coin{pk: pk}, sks, nil
}

// PublicKey returns the underlying threshold key.
func (c *Coin) PublicKey() *tsig.PublicKey { return c.pk }

// Name builds an unambiguous coin name from its parts, e.g.
// Name([]byte("aba"), instanceID, round).
func Name(parts ...[]byte) []byte { return lp.Encode("maftia/coin/name/v1", parts...) }

// ShareFor is this member's share of coin name.
func ShareFor(sk *tsig.SecretShare, name []byte) Share { return tsig.SignShare(sk, name) }

// VerifyShare checks one coin share (index, key, name, pairing).
func (c *Coin) VerifyShare(s Share, name []byte) error { return tsig.VerifyShare(c.pk, s, name) }

// Toss combines shares of coin name into its value. It is tsig.Combine's
// optimistic robust combination: bad lists the indices of invalid shares
// (found only if the optimistic attempt failed), and err wraps
// tsig.ErrTooFewShares if fewer than threshold valid shares were given.
func (c *Coin) Toss(shares []Share, name []byte) (v Value, bad []uint32, err error) {
	sig, bad, err := tsig.Combine(c.pk, shares, name)
	if err != nil {
		return Value{}, bad, err
	}
	return valueOf(name, sig), bad, nil
}

// ValueFromSignature verifies a combined coin signature (as relayed by
// another member) and returns the coin value.
func (c *Coin) ValueFromSignature(sig tsig.Signature, name []byte) (Value, error) {
	if err := tsig.Verify(c.pk, sig, name); err != nil {
		return Value{}, err
	}
	return valueOf(name, sig), nil
}

func valueOf(name []byte, sig tsig.Signature) Value {
	return Value(sha256.Sum256(lp.Encode("maftia/coin/value/v1", name, sig.Marshal())))
}

// Value is the 256-bit value of a coin.
type Value [32]byte

// Bit is one unbiased bit (0 or 1) of the coin.
func (v Value) Bit() uint8 { return v[0] & 1 }

// Bits returns the first k ≤ 64 bits of the coin as an integer.
func (v Value) Bits(k int) uint64 {
	if k <= 0 {
		return 0
	}
	x := binary.BigEndian.Uint64(v[:8])
	if k >= 64 {
		return x
	}
	return x >> (64 - k)
}

// Uint64 is the first 64 bits of the coin.
func (v Value) Uint64() uint64 { return binary.BigEndian.Uint64(v[:8]) }

// Mod returns the coin's 256-bit value modulo n (n > 0), e.g. a leader index
// in 0..n-1; bias is at most n/2^256.
func (v Value) Mod(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	x := new(big.Int).SetBytes(v[:])
	return x.Mod(x, new(big.Int).SetUint64(n)).Uint64()
}
