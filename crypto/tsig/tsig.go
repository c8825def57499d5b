package tsig

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/maftia/maftia/crypto/internal/lp"
	blst "github.com/supranational/blst/bindings/go"
)

// Limits on parameters.
const (
	MaxN      = 1024 // the largest group this package supports
	MaxDSTLen = 255  // RFC 9380 §5.3.1
)

// Sizes of the encodings produced by this package.
const (
	TagSize         = 8                          // key fingerprint and message tag
	ShareSize       = 4 + 2*TagSize + G1Size     // index || key id || message tag || point
	SignatureSize   = G1Size                     // a combined signature
	SecretShareSize = 4 + blst.BLST_SCALAR_BYTES // index || scalar
)

// PublicKey is the public part of one threshold key set: the group key, the
// per-share verification keys, the threshold and the hash-to-curve DST. It is
// immutable after construction.
type PublicKey struct {
	dst       []byte
	threshold int
	group     *blst.P2Affine
	shares    []*blst.P2Affine // shares[i-1] verifies share index i
	keyID     [TagSize]byte
}

// NewPublicKey validates and assembles a public key from its encodings:
// every point is decoded, subgroup-checked and must not be the identity, and
// the share keys must lie on one polynomial of degree threshold−1 whose value
// at 0 is the group key (so a corrupted key file cannot pass).
func NewPublicKey(dst []byte, threshold int, group []byte, shareKeys [][]byte) (*PublicKey, error) {
	n := len(shareKeys)
	if err := checkParams(n, threshold, dst); err != nil {
		return nil, err
	}
	g, err := decodeG2(group)
	if err != nil {
		return nil, fmt.Errorf("group key: %w", err)
	}
	pk := &PublicKey{dst: bytes.Clone(dst), threshold: threshold, group: g, shares: make([]*blst.P2Affine, n)}
	for i, b := range shareKeys {
		if pk.shares[i], err = decodeG2(b); err != nil {
			return nil, fmt.Errorf("verification key %d: %w", i+1, err)
		}
	}
	pk.keyID = keyID(dst, group)
	if err := pk.checkConsistent(); err != nil {
		return nil, err
	}
	return pk, nil
}

func checkParams(n, threshold int, dst []byte) error {
	if n < 1 || n > MaxN {
		return fmt.Errorf("%w: n=%d not in [1,%d]", ErrBadParams, n, MaxN)
	}
	if threshold < 1 || threshold > n {
		return fmt.Errorf("%w: threshold=%d not in [1,n=%d]", ErrBadParams, threshold, n)
	}
	if len(dst) == 0 || len(dst) > MaxDSTLen {
		return fmt.Errorf("%w: DST length %d not in [1,%d]", ErrBadParams, len(dst), MaxDSTLen)
	}
	return nil
}

func keyID(dst, group []byte) [TagSize]byte {
	h := sha256.Sum256(lp.Encode("maftia/tsig/key-id/v1", dst, group))
	return [TagSize]byte(h[:TagSize])
}

func msgTag(msg []byte) [TagSize]byte {
	h := sha256.Sum256(lp.Encode("maftia/tsig/msg-tag/v1", msg))
	return [TagSize]byte(h[:TagSize])
}

// checkConsistent interpolates, from the first threshold share keys, the
// group key and every other share key, and compares.
func (pk *PublicKey) checkConsistent() error {
	t := pk.threshold
	base := make([]uint32, t)
	pts := make([]*blst.P2Affine, t)
	for i := range t {
		base[i] = uint32(i + 1)
		pts[i] = pk.shares[i]
	}
	check := func(x uint32, want *blst.P2Affine) bool {
		coeffs := lagrangeAt(base, x)
		got := blst.P2AffinesMult(pts, coeffs, 255).ToAffine()
		return got.Equals(want)
	}
	if !check(0, pk.group) {
		return fmt.Errorf("%w: group key does not match the verification keys", ErrInconsistentKeys)
	}
	for j := t; j < len(pk.shares); j++ {
		if !check(uint32(j+1), pk.shares[j]) {
			return fmt.Errorf("%w: verification key %d off the polynomial", ErrInconsistentKeys, j+1)
		}
	}
	return nil
}

// N is the number of shares.
func (pk *PublicKey) N() int { return len(pk.shares) }

// Threshold is the number of shares needed to sign.
func (pk *PublicKey) Threshold() int { return pk.threshold }

// DST is the RFC 9380 domain-separation tag used to hash messages.
func (pk *PublicKey) DST() []byte { return bytes.Clone(pk.dst) }

// GroupKey is the compressed group public key.
func (pk *PublicKey) GroupKey() []byte { return pk.group.Compress() }

// ShareKey is the compressed verification key of share index i (1..n).
func (pk *PublicKey) ShareKey(i uint32) ([]byte, error) {
	if i < 1 || int(i) > len(pk.shares) {
		return nil, fmt.Errorf("%w: %d not in [1,%d]", ErrIndexOutOfRange, i, len(pk.shares))
	}
	return pk.shares[i-1].Compress(), nil
}

// ShareKeys returns all compressed verification keys, index i at [i-1].
func (pk *PublicKey) ShareKeys() [][]byte {
	out := make([][]byte, len(pk.shares))
	for i, p := range pk.shares {
		out[i] = p.Compress()
	}
	return out
}

// KeyID is the public fingerprint carried in every share.
func (pk *PublicKey) KeyID() [TagSize]byte { return pk.keyID }

// String describes the key without its points.
func (pk *PublicKey) String() string {
	return fmt.Sprintf("tsig.PublicKey(n=%d threshold=%d id=%s)", len(pk.shares), pk.threshold, hex.EncodeToString(pk.keyID[:]))
}

// SecretShare is one member's share of the signing key.
type SecretShare struct {
	index uint32
	dst   []byte
	keyID [TagSize]byte
	s     blst.Scalar
}

// Index is the share index (1..n), equal to the holder's NodeID.
func (sk *SecretShare) Index() uint32 { return sk.index }

// Marshal encodes index (big-endian u32) || scalar (big-endian, 32 bytes).
// The caller owns and should zeroize the result.
func (sk *SecretShare) Marshal() []byte {
	out := binary.BigEndian.AppendUint32(make([]byte, 0, SecretShareSize), sk.index)
	return append(out, sk.s.Serialize()...)
}

// UnmarshalSecretShare decodes a secret share and binds it to pub (whose DST
// and key fingerprint it will use). It checks that the scalar is canonical
// and non-zero, that the index is in range, and that g2^s equals the
// verification key pub publishes for that index.
func UnmarshalSecretShare(b []byte, pub *PublicKey) (*SecretShare, error) {
	if len(b) != SecretShareSize {
		return nil, fmt.Errorf("%w: secret share length %d, want %d", ErrMalformedShare, len(b), SecretShareSize)
	}
	sk := &SecretShare{index: binary.BigEndian.Uint32(b), dst: pub.dst, keyID: pub.keyID}
	if sk.index < 1 || int(sk.index) > pub.N() {
		return nil, fmt.Errorf("%w: %d not in [1,%d]", ErrIndexOutOfRange, sk.index, pub.N())
	}
	if sk.s.Deserialize(b[4:]) == nil {
		return nil, fmt.Errorf("%w: secret scalar not in [1,r)", ErrMalformedShare)
	}
	if !new(blst.P2Affine).From(&sk.s).Equals(pub.shares[sk.index-1]) {
		sk.Zeroize()
		return nil, fmt.Errorf("%w: secret share %d does not match its verification key", ErrInconsistentKeys, sk.index)
	}
	return sk, nil
}

// VerificationKey is the compressed g2^s for this secret share.
func (sk *SecretShare) VerificationKey() []byte { return new(blst.P2Affine).From(&sk.s).Compress() }

// Zeroize overwrites the secret scalar.
func (sk *SecretShare) Zeroize() { sk.s.Zeroize() }

// String never reveals the secret.
func (sk *SecretShare) String() string { return fmt.Sprintf("tsig.SecretShare(index=%d)", sk.index) }

// GoString never reveals the secret.
func (sk *SecretShare) GoString() string { return sk.String() }

// Deal is the trusted dealer: it picks a random polynomial f of degree
// threshold−1 over Z_r and hands share i the scalar f(i), i = 1..n; the
// group key is g2^f(0) and share i's verification key g2^f(i). rand nil
// means crypto/rand. The polynomial is zeroized before Deal returns.
func Deal(rnd io.Reader, n, threshold int, dst []byte) (*PublicKey, []*SecretShare, error) {
	if err := checkParams(n, threshold, dst); err != nil {
		return nil, nil, err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	poly, err := randomPolynomial(rnd, threshold)
	if err != nil {
		return nil, nil, err
	}
	defer poly.zeroize()
	group := new(blst.P2Affine).From(poly[0])
	pk := &PublicKey{dst: bytes.Clone(dst), threshold: threshold, group: group, shares: make([]*blst.P2Affine, n)}
	pk.keyID = keyID(dst, group.Compress())
	sks := make([]*SecretShare, n)
	for i := range n {
		idx := uint32(i + 1)
		v := poly.eval(idx)
		sks[i] = &SecretShare{index: idx, dst: pk.dst, keyID: pk.keyID, s: *v}
		v.Zeroize()
		pk.shares[i] = new(blst.P2Affine).From(&sks[i].s)
	}
	return pk, sks, nil
}

// Share is one member's signature share on a message.
type Share struct {
	Index uint32
	keyID [TagSize]byte
	tag   [TagSize]byte
	p     *blst.P1Affine
}

// SignShare signs msg with one secret share: σ_i = H(msg)^{s_i}, H the RFC
// 9380 hash to G1 under the key's DST.
func SignShare(sk *SecretShare, msg []byte) Share {
	h := blst.HashToG1(msg, sk.dst)
	return Share{Index: sk.index, keyID: sk.keyID, tag: msgTag(msg), p: h.MultAssign(&sk.s).ToAffine()}
}

// Marshal encodes the share (ShareSize bytes).
func (s Share) Marshal() []byte {
	out := binary.BigEndian.AppendUint32(make([]byte, 0, ShareSize), s.Index)
	out = append(out, s.keyID[:]...)
	out = append(out, s.tag[:]...)
	if s.p == nil {
		return append(out, make([]byte, G1Size)...)
	}
	return append(out, s.p.Compress()...)
}

// UnmarshalShare decodes a share and checks its point (on the curve, in the
// subgroup, not the identity). The index is range-checked by VerifyShare and
// Combine, which know n.
func UnmarshalShare(b []byte) (Share, error) {
	if len(b) != ShareSize {
		return Share{}, fmt.Errorf("%w: length %d, want %d", ErrMalformedShare, len(b), ShareSize)
	}
	s := Share{Index: binary.BigEndian.Uint32(b)}
	copy(s.keyID[:], b[4:])
	copy(s.tag[:], b[4+TagSize:])
	p, err := decodeG1(b[4+2*TagSize:])
	if err != nil {
		return Share{}, fmt.Errorf("share %d: %w", s.Index, err)
	}
	s.p = p
	return s, nil
}

// checkHeader runs the cheap structural checks of a share.
func (pk *PublicKey) checkHeader(s Share, tag [TagSize]byte) error {
	if s.p == nil {
		return fmt.Errorf("%w: share %d has no point", ErrMalformedShare, s.Index)
	}
	if s.Index < 1 || int(s.Index) > len(pk.shares) {
		return fmt.Errorf("%w: %d not in [1,%d]", ErrIndexOutOfRange, s.Index, len(pk.shares))
	}
	if s.keyID != pk.keyID {
		return fmt.Errorf("%w: share %d", ErrWrongKey, s.Index)
	}
	if s.tag != tag {
		return fmt.Errorf("%w: share %d", ErrWrongMessage, s.Index)
	}
	return nil
}

// VerifyShare checks one share: index in range, made under this key, for
// this message, and e(σ_i, g2) = e(H(msg), vk_i).
func VerifyShare(pk *PublicKey, s Share, msg []byte) error {
	if err := pk.checkHeader(s, msgTag(msg)); err != nil {
		return err
	}
	h := blst.HashToG1(msg, pk.dst).ToAffine()
	if !pairingCheck(s.p, h, pk.shares[s.Index-1]) {
		return fmt.Errorf("%w: share %d", ErrInvalidShare, s.Index)
	}
	return nil
}

// Signature is a combined threshold signature: the unique BLS signature
// H(msg)^{f(0)} under the group key.
type Signature struct {
	p *blst.P1Affine
}

// Marshal returns the 48-byte compressed point.
func (sig Signature) Marshal() []byte {
	if sig.p == nil {
		return nil
	}
	return sig.p.Compress()
}

// Equal reports whether two signatures are the same point.
func (sig Signature) Equal(o Signature) bool {
	if sig.p == nil || o.p == nil {
		return sig.p == o.p
	}
	return sig.p.Equals(o.p)
}

// UnmarshalSignature decodes and subgroup-checks a signature.
func UnmarshalSignature(b []byte) (Signature, error) {
	p, err := decodeG1(b)
	if err != nil {
		return Signature{}, fmt.Errorf("signature: %w", err)
	}
	return Signature{p: p}, nil
}

// Verify checks e(sig, g2) = e(H(msg), group key).
func Verify(pk *PublicKey, sig Signature, msg []byte) error {
	if sig.p == nil {
		return fmt.Errorf("%w: empty signature", ErrMalformedPoint)
	}
	h := blst.HashToG1(msg, pk.dst).ToAffine()
	if !pairingCheck(sig.p, h, pk.group) {
		return ErrInvalidSignature
	}
	return nil
}

// VerifyBatch checks k combined signatures, sigs[i] on msgs[i], under pk
// with one pairing check: e(Σ r_i σ_i, g2) = e(Σ r_i H(m_i), group key).
// The 128-bit r_i are derived by hashing pk's domain, every message and
// every signature (Fiat–Shamir), so the caller stays deterministic and
// whoever chose the signatures fixed them before the r_i existed: a wrong
// signature passes with probability about 2^-128 per attempt. It returns,
// per signature, nil or the error Verify would return; when the combined
// check fails, every signature is checked on its own.
func VerifyBatch(pk *PublicKey, sigs []Signature, msgs [][]byte) []error {
	errs := make([]error, len(sigs))
	if len(sigs) != len(msgs) {
		for i := range errs {
			errs[i] = fmt.Errorf("%w: %d signatures for %d messages", ErrMalformedPoint, len(sigs), len(msgs))
		}
		return errs
	}
	var ok []int
	for i, s := range sigs {
		if s.p == nil {
			errs[i] = fmt.Errorf("%w: empty signature", ErrMalformedPoint)
			continue
		}
		ok = append(ok, i)
	}
	if len(ok) <= 1 {
		for _, i := range ok {
			errs[i] = Verify(pk, sigs[i], msgs[i])
		}
		return errs
	}
	fields := [][]byte{pk.dst}
	for _, i := range ok {
		fields = append(fields, msgs[i], sigs[i].Marshal())
	}
	seed := sha256.Sum256(lp.Encode("maftia/tsig/verify-batch/v1", fields...))
	rs := make([]byte, 16*len(ok))
	pts := make([]*blst.P1Affine, len(ok))
	hs := make([]*blst.P1Affine, len(ok))
	for k, i := range ok {
		r := sha256.Sum256(binary.BigEndian.AppendUint32(seed[:], uint32(k)))
		copy(rs[16*k:], r[:16])
		rs[16*k] |= 1 // r_k ≠ 0
		pts[k] = sigs[i].p
		hs[k] = blst.HashToG1(msgs[i], pk.dst).ToAffine()
	}
	s := blst.P1AffinesMult(pts, rs, 128).ToAffine()
	h := blst.P1AffinesMult(hs, rs, 128).ToAffine()
	if pairingCheck(s, h, pk.group) {
		return errs
	}
	for k, i := range ok {
		if !pairingCheck(sigs[i].p, hs[k], pk.group) {
			errs[i] = ErrInvalidSignature
		}
	}
	return errs
}

// checkSet runs the structural checks on a set of shares: header (index
// range, key, message tag) and no duplicate index.
func (pk *PublicKey) checkSet(shares []Share, msg []byte) error {
	tag := msgTag(msg)
	seen := make(map[uint32]bool, len(shares))
	for _, s := range shares {
		if err := pk.checkHeader(s, tag); err != nil {
			return err
		}
		if seen[s.Index] {
			return fmt.Errorf("%w: %d", ErrDuplicateIndex, s.Index)
		}
		seen[s.Index] = true
	}
	return nil
}

// interpolate computes Σ λ_i σ_i over the given shares (no checks).
func interpolate(shares []Share) Signature {
	idx := make([]uint32, len(shares))
	pts := make([]*blst.P1Affine, len(shares))
	for i, s := range shares {
		idx[i], pts[i] = s.Index, s.p
	}
	return Signature{p: blst.P1AffinesMult(pts, lagrangeAt(idx, 0), 255).ToAffine()}
}

// CombineVerified interpolates the first threshold shares without checking
// them cryptographically; use it only on shares that passed VerifyShare or
// BatchVerifyShares. Structural problems (index range, duplicates, another
// key or message, too few) are still reported.
func CombineVerified(pk *PublicKey, shares []Share, msg []byte) (Signature, error) {
	if err := pk.checkSet(shares, msg); err != nil {
		return Signature{}, err
	}
	if len(shares) < pk.threshold {
		return Signature{}, fmt.Errorf("%w: have %d, need %d", ErrTooFewShares, len(shares), pk.threshold)
	}
	return interpolate(shares[:pk.threshold]), nil
}

// Combine is the robust, optimistic combiner. It rejects structurally bad
// input (out-of-range or duplicate index, share under another key or for
// another message) with the matching error. Otherwise it interpolates the
// first threshold shares without verifying them and verifies the result once;
// if that fails it verifies every share, returns exactly the indices of the
// invalid ones in bad (so the caller can report them as Evidence), and
// combines the valid ones if there are at least threshold of them. err is
// ErrTooFewShares (wrapped) when not enough valid shares remain.
func Combine(pk *PublicKey, shares []Share, msg []byte) (sig Signature, bad []uint32, err error) {
	if err := pk.checkSet(shares, msg); err != nil {
		return Signature{}, nil, err
	}
	if len(shares) < pk.threshold {
		return Signature{}, nil, fmt.Errorf("%w: have %d, need %d", ErrTooFewShares, len(shares), pk.threshold)
	}
	h := blst.HashToG1(msg, pk.dst).ToAffine()
	sig = interpolate(shares[:pk.threshold])
	if pairingCheck(sig.p, h, pk.group) {
		return sig, nil, nil
	}
	// Fallback: find the culprits.
	valid := make([]Share, 0, len(shares))
	for _, s := range shares {
		if pairingCheck(s.p, h, pk.shares[s.Index-1]) {
			valid = append(valid, s)
		} else {
			bad = append(bad, s.Index)
		}
	}
	if len(valid) < pk.threshold {
		return Signature{}, bad, fmt.Errorf("%w: %d valid of %d, need %d; invalid: %v", ErrTooFewShares, len(valid), len(shares), pk.threshold, bad)
	}
	return interpolate(valid[:pk.threshold]), bad, nil
}

// Culprits checks shares one by one and returns the indices of those that
// VerifyShare rejects: the callers' way to name the senders when Combine
// refused a set for a structural defect (a share for another message or
// under another key), which names no culprit by itself.
func Culprits(pk *PublicKey, shares []Share, msg []byte) []uint32 {
	var bad []uint32
	for _, s := range shares {
		if VerifyShare(pk, s, msg) != nil {
			bad = append(bad, s.Index)
		}
	}
	return bad
}

// BatchVerifyShares verifies k shares on the same message with one random
// linear combination: with random 64-bit r_i it checks
// e(Σ r_i σ_i, g2) = e(H(msg), Σ r_i vk_i) — two multi-scalar
// multiplications and two Miller loops instead of 2k. A false accept has
// probability at most 2^-64 over rnd. If the combined check fails, every
// share is checked individually. It returns, per share, nil or the error
// VerifyShare would return. rnd nil means crypto/rand.
func BatchVerifyShares(rnd io.Reader, pk *PublicKey, shares []Share, msg []byte) []error {
	errs := make([]error, len(shares))
	tag := msgTag(msg)
	var okIdx []int
	for i, s := range shares {
		if errs[i] = pk.checkHeader(s, tag); errs[i] == nil {
			okIdx = append(okIdx, i)
		}
	}
	if len(okIdx) == 0 {
		return errs
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	h := blst.HashToG1(msg, pk.dst).ToAffine()
	fallback := func() []error {
		for _, i := range okIdx {
			s := shares[i]
			if !pairingCheck(s.p, h, pk.shares[s.Index-1]) {
				errs[i] = fmt.Errorf("%w: share %d", ErrInvalidShare, s.Index)
			}
		}
		return errs
	}
	if len(okIdx) == 1 {
		return fallback()
	}
	rs := make([]byte, 8*len(okIdx))
	if _, err := io.ReadFull(rnd, rs); err != nil {
		return fallback()
	}
	sigs := make([]*blst.P1Affine, len(okIdx))
	vks := make([]*blst.P2Affine, len(okIdx))
	for k, i := range okIdx {
		sigs[k] = shares[i].p
		vks[k] = pk.shares[shares[i].Index-1]
		rs[8*k] |= 1 // r_k != 0
	}
	s := blst.P1AffinesMult(sigs, rs, 64).ToAffine()
	v := blst.P2AffinesMult(vks, rs, 64).ToAffine()
	if pairingCheck(s, h, v) {
		return errs
	}
	return fallback()
}
