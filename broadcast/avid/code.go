package avid

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/klauspost/reedsolomon"
)

// The code: a payload p is framed as len(p) (8 bytes, big-endian) ‖ p,
// zero-padded to k·S bytes, split into k = f+1 data shards of S bytes and
// extended with n−k parity shards by a systematic Reed–Solomon code over
// GF(2⁸) (GF(2¹⁶), Leopard, when n > 256). Any k fragments determine p.
// The encoding is canonical: Fragments is a function of (n, f, p), which
// the re-encoding check relies on.

// frameHeader is the length prefix of the framed payload.
const frameHeader = 8

// ShardSize is the size S of every fragment of a payload of the given
// length in a group of n replicas tolerating f faults.
func ShardSize(n, f, payloadLen int) int {
	k := f + 1
	s := (frameHeader + payloadLen + k - 1) / k
	if n > 256 {
		s = (s + 63) &^ 63 // Leopard GF(2¹⁶) works on 64-byte multiples
	}
	return s
}

// newCode returns the Reed–Solomon coder for n fragments, f+1 of them data.
// It runs single-threaded: protocol cores start no goroutines.
func newCode(n, f int) (reedsolomon.Encoder, error) {
	return reedsolomon.New(f+1, n-f-1, reedsolomon.WithMaxGoroutines(1))
}

// Fragments erasure-codes payload into n fragments of ShardSize(n, f,
// len(payload)) bytes each, of which any f+1 recover it.
func Fragments(n, f int, payload []byte) ([][]byte, error) {
	code, err := newCode(n, f)
	if err != nil {
		return nil, fmt.Errorf("avid: erasure code for n=%d f=%d: %w", n, f, err)
	}
	return encodeWith(code, n, f, payload)
}

func encodeWith(code reedsolomon.Encoder, n, f int, payload []byte) ([][]byte, error) {
	s := ShardSize(n, f, len(payload))
	buf := make([]byte, n*s)
	binary.BigEndian.PutUint64(buf, uint64(len(payload)))
	copy(buf[frameHeader:], payload)
	shards := make([][]byte, n)
	for i := range shards {
		shards[i] = buf[i*s : (i+1)*s : (i+1)*s]
	}
	if err := code.Encode(shards); err != nil {
		return nil, fmt.Errorf("avid: encode: %w", err)
	}
	return shards, nil
}

// errUndecodable is the reason a set of fragments yields no payload: it is
// not a consistent encoding of anything within the bounds.
var errUndecodable = errors.New("avid: fragments do not decode to a payload")

// DecodeFragments recovers a payload from the fragments present (frags[i]
// is fragment i or nil; at least f+1 present, all of one size) in a group
// of n = len(frags) replicas. It does NOT check that the fragments are a
// consistent encoding — different subsets of an inconsistent set decode to
// different payloads. A correct replica re-encodes and compares the Merkle
// root (as AVID.Step does); DecodeFragments alone is for retrieval of
// fragments already known to be consistent and for tests.
func DecodeFragments(f int, frags [][]byte, maxPayload int) ([]byte, error) {
	code, err := newCode(len(frags), f)
	if err != nil {
		return nil, fmt.Errorf("avid: erasure code for n=%d f=%d: %w", len(frags), f, err)
	}
	return decode(code, f, frags, maxPayload)
}

func decode(code reedsolomon.Encoder, f int, frags [][]byte, maxPayload int) ([]byte, error) {
	size := -1
	present := 0
	shards := make([][]byte, len(frags))
	for i, fr := range frags {
		if fr == nil {
			continue
		}
		if size >= 0 && len(fr) != size {
			return nil, fmt.Errorf("%w: fragments of different sizes", errUndecodable)
		}
		size = len(fr)
		present++
		shards[i] = append([]byte(nil), fr...) // the coder may write into shards
	}
	k := f + 1
	if present < k || size <= 0 {
		return nil, fmt.Errorf("%w: %d fragments, need %d", errUndecodable, present, k)
	}
	if err := code.ReconstructData(shards); err != nil {
		return nil, fmt.Errorf("%w: %v", errUndecodable, err)
	}
	data := make([]byte, 0, k*size)
	for _, s := range shards[:k] {
		data = append(data, s...)
	}
	l := binary.BigEndian.Uint64(data)
	if l > uint64(maxPayload) || l > uint64(len(data)-frameHeader) {
		return nil, fmt.Errorf("%w: declared length %d", errUndecodable, l)
	}
	return data[frameHeader : frameHeader+int(l) : frameHeader+int(l)], nil
}
