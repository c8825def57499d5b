// Package lp is the one injective byte encoding that every crypto layer of
// maftia hashes or signs: a domain tag and a list of fields, each part
// preceded by its length. Two different (domain, fields) tuples never encode
// to the same bytes, so a signature or a Fiat–Shamir challenge computed over
// one tuple can never be reinterpreted as one over another (ATTACKS.md row 11).
package lp

import "encoding/binary"

// Encode returns
//
//	u32(len(domain)) || domain || u32(len(fields)) || u32(len(f_1)) || f_1 || ... || u32(len(f_k)) || f_k
//
// with big-endian lengths. Parts longer than 2^32-1 bytes are not supported
// and make Encode panic: no protocol message of maftia comes near that size,
// and such a length could only arise from a programming error, never from
// decoded input (frames are bounded far below 4 GiB by the transport).
func Encode(domain string, fields ...[]byte) []byte {
	size := 8 + len(domain)
	for _, f := range fields {
		size += 4 + len(f)
	}
	out := make([]byte, 0, size)
	out = appendLen(out, len(domain))
	out = append(out, domain...)
	out = appendLen(out, len(fields))
	for _, f := range fields {
		out = appendLen(out, len(f))
		out = append(out, f...)
	}
	return out
}

// Uint32 is a convenience for encoding an integer field (big-endian).
func Uint32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// Uint64 is a convenience for encoding an integer field (big-endian).
func Uint64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func appendLen(b []byte, n int) []byte {
	if uint64(n) > 0xffffffff {
		panic("lp: part longer than 2^32-1 bytes")
	}
	return binary.BigEndian.AppendUint32(b, uint32(n))
}
