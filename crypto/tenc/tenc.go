package tenc

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/cloudflare/circl/group"
	"github.com/maftia/maftia/crypto/internal/lp"
)

// Limits.
const (
	MaxN         = 1024
	MaxLabel     = 4096     // bytes of label
	MaxPayload   = 64 << 20 // bytes of plaintext
	TagSize      = 8
	aeadOverhead = 16
	// ShareSize is index || key id || ciphertext tag || u_i || e_i || f_i.
	ShareSize       = 4 + 2*TagSize + ElementSize + 2*ScalarSize
	SecretShareSize = 4 + ScalarSize
	ctVersion       = 1
)

// PublicKey is the public part of a TDH2 key set: h = g^x, the verification
// keys h_i = g^{x_i}, and the threshold.
type PublicKey struct {
	threshold int
	h         group.Element
	hs        []group.Element
	keyID     [TagSize]byte
}

// SecretShare is member i's share x_i of the decryption key.
type SecretShare struct {
	index uint32
	keyID [TagSize]byte
	x     group.Scalar
}

func checkParams(n, threshold int) error {
	if n < 1 || n > MaxN || threshold < 1 || threshold > n {
		return fmt.Errorf("%w: n=%d threshold=%d", ErrBadParams, n, threshold)
	}
	return nil
}

func (pk *PublicKey) computeKeyID() {
	fields := [][]byte{lp.Uint32(uint32(pk.threshold)), encElem(pk.h)}
	for _, e := range pk.hs {
		fields = append(fields, encElem(e))
	}
	h := sha256.Sum256(lp.Encode("maftia/tenc/key-id/v1", fields...))
	pk.keyID = [TagSize]byte(h[:TagSize])
}

// Deal is the trusted dealer: a random polynomial of degree threshold−1 over
// Z_ℓ, share i = p(i). rnd nil means crypto/rand.
func Deal(rnd io.Reader, n, threshold int) (*PublicKey, []*SecretShare, error) {
	if err := checkParams(n, threshold); err != nil {
		return nil, nil, err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	poly := make([]group.Scalar, threshold)
	defer func() {
		for _, c := range poly {
			zeroScalar(c)
		}
	}()
	for i := range poly {
		var err error
		if poly[i], err = randomScalar(rnd); err != nil {
			return nil, nil, err
		}
	}
	pk := &PublicKey{threshold: threshold, h: grp.NewElement().MulGen(poly[0]), hs: make([]group.Element, n)}
	sks := make([]*SecretShare, n)
	for i := range n {
		x := grp.NewScalar().SetUint64(uint64(i + 1))
		acc := poly[threshold-1].Copy()
		for k := threshold - 2; k >= 0; k-- {
			acc.Mul(acc, x)
			acc.Add(acc, poly[k])
		}
		sks[i] = &SecretShare{index: uint32(i + 1), x: acc}
		pk.hs[i] = grp.NewElement().MulGen(acc)
	}
	pk.computeKeyID()
	for _, sk := range sks {
		sk.keyID = pk.keyID
	}
	return pk, sks, nil
}

// NewPublicKey decodes and validates a public key: canonical encodings, no
// identity, and verification keys consistent with h (on one polynomial of
// degree threshold−1).
func NewPublicKey(threshold int, h []byte, shareKeys [][]byte) (*PublicKey, error) {
	if err := checkParams(len(shareKeys), threshold); err != nil {
		return nil, err
	}
	he, err := decodeElement(h)
	if err != nil {
		return nil, fmt.Errorf("group key: %w", err)
	}
	pk := &PublicKey{threshold: threshold, h: he, hs: make([]group.Element, len(shareKeys))}
	for i, b := range shareKeys {
		if pk.hs[i], err = decodeElement(b); err != nil {
			return nil, fmt.Errorf("verification key %d: %w", i+1, err)
		}
	}
	base := make([]uint32, threshold)
	for i := range base {
		base[i] = uint32(i + 1)
	}
	pts := pk.hs[:threshold]
	if !multiExp(pts, lagrangeAt(base, 0)).IsEqual(pk.h) {
		return nil, fmt.Errorf("%w: group key does not match the verification keys", ErrInconsistentKeys)
	}
	for j := threshold; j < len(pk.hs); j++ {
		if !multiExp(pts, lagrangeAt(base, uint32(j+1))).IsEqual(pk.hs[j]) {
			return nil, fmt.Errorf("%w: verification key %d off the polynomial", ErrInconsistentKeys, j+1)
		}
	}
	pk.computeKeyID()
	return pk, nil
}

// N is the number of shares; Threshold the number needed to decrypt.
func (pk *PublicKey) N() int         { return len(pk.hs) }
func (pk *PublicKey) Threshold() int { return pk.threshold }

// GroupKey is the encoding of h.
func (pk *PublicKey) GroupKey() []byte { return encElem(pk.h) }

// ShareKeys are the encodings of h_1..h_n.
func (pk *PublicKey) ShareKeys() [][]byte {
	out := make([][]byte, len(pk.hs))
	for i, e := range pk.hs {
		out[i] = encElem(e)
	}
	return out
}

// String describes the key without its elements.
func (pk *PublicKey) String() string {
	return fmt.Sprintf("tenc.PublicKey(n=%d threshold=%d id=%s)", len(pk.hs), pk.threshold, hex.EncodeToString(pk.keyID[:]))
}

// Index is the share index (the holder's NodeID).
func (sk *SecretShare) Index() uint32 { return sk.index }

// Marshal is index (u32 big-endian) || x_i (32 bytes, little-endian as
// ristretto255 scalars are encoded). The caller should zeroize it.
func (sk *SecretShare) Marshal() []byte {
	return append(binary.BigEndian.AppendUint32(nil, sk.index), encScalar(sk.x)...)
}

// UnmarshalSecretShare decodes a secret share and checks it against pk.
func UnmarshalSecretShare(b []byte, pk *PublicKey) (*SecretShare, error) {
	if len(b) != SecretShareSize {
		return nil, fmt.Errorf("%w: secret share length %d", ErrMalformedShare, len(b))
	}
	idx := binary.BigEndian.Uint32(b)
	if idx < 1 || int(idx) > pk.N() {
		return nil, fmt.Errorf("%w: %d", ErrIndexOutOfRange, idx)
	}
	x, err := decodeScalar(b[4:])
	if err != nil {
		return nil, err
	}
	if !grp.NewElement().MulGen(x).IsEqual(pk.hs[idx-1]) {
		zeroScalar(x)
		return nil, fmt.Errorf("%w: secret share %d does not match its verification key", ErrInconsistentKeys, idx)
	}
	return &SecretShare{index: idx, keyID: pk.keyID, x: x}, nil
}

// VerificationKey is the encoding of g^{x_i}.
func (sk *SecretShare) VerificationKey() []byte { return encElem(grp.NewElement().MulGen(sk.x)) }

// Zeroize overwrites the secret.
func (sk *SecretShare) Zeroize() { zeroScalar(sk.x) }

// String never reveals the secret.
func (sk *SecretShare) String() string   { return fmt.Sprintf("tenc.SecretShare(index=%d)", sk.index) }
func (sk *SecretShare) GoString() string { return sk.String() }

// Ciphertext is a TDH2 ciphertext as received: (label, c, u, ū, e, f). It
// has not been checked; only Check turns it into something that can be
// decrypted.
type Ciphertext struct {
	Label   []byte
	payload []byte // AEAD ciphertext c
	u, ubar group.Element
	proof   dleq
}

const ctDomain = "maftia/tenc/ciphertext/v1"

func (ct *Ciphertext) proofContext() [][]byte { return [][]byte{ct.Label, ct.payload} }

func aeadFor(shared group.Element, u group.Element) (cipher.AEAD, error) {
	secret := encElem(shared)
	defer clear(secret)
	key, err := hkdf.Key(sha256.New, secret, nil, string(lp.Encode("maftia/tenc/aead-key/v1", encElem(u))), 32)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Encrypt encrypts msg under pk with a label (public context the ciphertext
// is bound to, e.g. client ID and request number). TDH2 (Shoup–Gennaro §4):
// r random, u = g^r, ū = ḡ^r, the key is derived from h^r, the payload is
// AES-256-GCM-sealed with the label as associated data, and a proof that
// log_g u = log_ḡ ū binds (label, c, u, ū). rnd nil means crypto/rand.
func Encrypt(rnd io.Reader, pk *PublicKey, label, msg []byte) (*Ciphertext, error) {
	if len(label) > MaxLabel || len(msg) > MaxPayload {
		return nil, fmt.Errorf("%w: label %d bytes, payload %d bytes", ErrBadParams, len(label), len(msg))
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	r, err := randomScalar(rnd)
	if err != nil {
		return nil, err
	}
	defer zeroScalar(r)
	ct := &Ciphertext{Label: bytes.Clone(label), u: grp.NewElement().MulGen(r), ubar: grp.NewElement().Mul(gbar, r)}
	aead, err := aeadFor(grp.NewElement().Mul(pk.h, r), ct.u)
	if err != nil {
		return nil, err
	}
	var nonce [12]byte // each key is used once (fresh r)
	ct.payload = aead.Seal(nil, nonce[:], msg, lp.Encode("maftia/tenc/aead-ad/v1", label))
	ct.proof, err = proveDLEQ(rnd, ctDomain, ct.proofContext(), gen, ct.u, gbar, ct.ubar, r)
	if err != nil {
		return nil, err
	}
	return ct, nil
}

// Marshal encodes version(1) || u32 len(label) || label || u32 len(c) || c ||
// u || ū || e || f.
func (ct *Ciphertext) Marshal() []byte {
	out := []byte{ctVersion}
	out = binary.BigEndian.AppendUint32(out, uint32(len(ct.Label)))
	out = append(out, ct.Label...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(ct.payload)))
	out = append(out, ct.payload...)
	out = append(out, encElem(ct.u)...)
	out = append(out, encElem(ct.ubar)...)
	out = append(out, encScalar(ct.proof.e)...)
	return append(out, encScalar(ct.proof.f)...)
}

// UnmarshalCiphertext decodes a ciphertext: exact framing, bounded lengths,
// canonical non-identity elements, canonical scalars. It does not check the
// proof (Check does).
func UnmarshalCiphertext(b []byte) (*Ciphertext, error) {
	rest := b
	if len(rest) < 1 || rest[0] != ctVersion {
		return nil, fmt.Errorf("%w: missing or unknown version", ErrMalformedCiphertext)
	}
	rest = rest[1:]
	next := func(max int) ([]byte, error) {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: truncated", ErrMalformedCiphertext)
		}
		n := binary.BigEndian.Uint32(rest)
		if uint64(n) > uint64(max) || uint64(n) > uint64(len(rest)-4) {
			return nil, fmt.Errorf("%w: length %d out of bounds", ErrMalformedCiphertext, n)
		}
		v := rest[4 : 4+n]
		rest = rest[4+n:]
		return bytes.Clone(v), nil
	}
	ct := &Ciphertext{}
	var err error
	if ct.Label, err = next(MaxLabel); err != nil {
		return nil, err
	}
	if ct.payload, err = next(MaxPayload + aeadOverhead); err != nil {
		return nil, err
	}
	if len(ct.payload) < aeadOverhead {
		return nil, fmt.Errorf("%w: payload shorter than the AEAD tag", ErrMalformedCiphertext)
	}
	if len(rest) != 2*ElementSize+2*ScalarSize {
		return nil, fmt.Errorf("%w: %d trailing bytes, want %d", ErrMalformedCiphertext, len(rest), 2*ElementSize+2*ScalarSize)
	}
	if ct.u, err = decodeElement(rest[:32]); err != nil {
		return nil, fmt.Errorf("u: %w", err)
	}
	if ct.ubar, err = decodeElement(rest[32:64]); err != nil {
		return nil, fmt.Errorf("ū: %w", err)
	}
	if ct.proof.e, err = decodeScalar(rest[64:96]); err != nil {
		return nil, fmt.Errorf("e: %w", err)
	}
	if ct.proof.f, err = decodeScalar(rest[96:]); err != nil {
		return nil, fmt.Errorf("f: %w", err)
	}
	return ct, nil
}

// CheckedCiphertext is a ciphertext whose TDH2 validity proof verified under
// a given key. It can only be obtained from PublicKey.Check; decryption
// shares and combination accept nothing else, so no member ever releases a
// decryption share for an unchecked (possibly adversarially mauled)
// ciphertext — the step that makes TDH2 CCA-secure.
type CheckedCiphertext struct {
	ct    *Ciphertext
	keyID [TagSize]byte
	tag   [TagSize]byte
}

// Label returns the label the checked ciphertext is bound to.
func (c *CheckedCiphertext) Label() []byte { return bytes.Clone(c.ct.Label) }

// Check verifies the ciphertext's validity proof, and that its label equals
// wantLabel (ErrWrongLabel otherwise: e.g. a ciphertext replayed from
// another client or instance).
func (pk *PublicKey) Check(ct *Ciphertext, wantLabel []byte) (*CheckedCiphertext, error) {
	if ct == nil || ct.u == nil || ct.ubar == nil || ct.proof.e == nil || ct.proof.f == nil {
		return nil, fmt.Errorf("%w: incomplete ciphertext", ErrMalformedCiphertext)
	}
	if !bytes.Equal(ct.Label, wantLabel) {
		return nil, ErrWrongLabel
	}
	if !ct.proof.verify(ctDomain, ct.proofContext(), gen, ct.u, gbar, ct.ubar) {
		return nil, ErrInvalidCiphertext
	}
	// Keep a private copy: later changes to the caller's Ciphertext (its
	// exported Label) cannot alter what was checked.
	cp := *ct
	cp.Label, cp.payload = bytes.Clone(ct.Label), bytes.Clone(ct.payload)
	h := sha256.Sum256(lp.Encode("maftia/tenc/ct-tag/v1", cp.Marshal()))
	return &CheckedCiphertext{ct: &cp, keyID: pk.keyID, tag: [TagSize]byte(h[:TagSize])}, nil
}

// Share is a decryption share u_i = u^{x_i} with a proof that
// log_u u_i = log_g h_i.
type Share struct {
	Index uint32
	keyID [TagSize]byte
	ctTag [TagSize]byte
	ui    group.Element
	proof dleq
}

const shareDomain = "maftia/tenc/decryption-share/v1"

func shareContext(keyID, ctTag [TagSize]byte, index uint32) [][]byte {
	return [][]byte{keyID[:], ctTag[:], lp.Uint32(index)}
}

func checked(c *CheckedCiphertext) error {
	if c == nil || c.ct == nil {
		return ErrUnchecked
	}
	return nil
}

// DecryptShare produces this member's decryption share with its proof. It
// accepts only a ciphertext checked under this member's key set.
func DecryptShare(rnd io.Reader, sk *SecretShare, c *CheckedCiphertext) (Share, error) {
	if err := checked(c); err != nil {
		return Share{}, err
	}
	if c.keyID != sk.keyID {
		return Share{}, fmt.Errorf("%w: ciphertext checked under another key", ErrWrongKey)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	s := Share{Index: sk.index, keyID: sk.keyID, ctTag: c.tag, ui: grp.NewElement().Mul(c.ct.u, sk.x)}
	hi := grp.NewElement().MulGen(sk.x)
	var err error
	s.proof, err = proveDLEQ(rnd, shareDomain, shareContext(s.keyID, s.ctTag, s.Index), c.ct.u, s.ui, gen, hi, sk.x)
	return s, err
}

// Marshal encodes the share (ShareSize bytes).
func (s Share) Marshal() []byte {
	out := binary.BigEndian.AppendUint32(make([]byte, 0, ShareSize), s.Index)
	out = append(out, s.keyID[:]...)
	out = append(out, s.ctTag[:]...)
	if s.ui == nil || s.proof.e == nil || s.proof.f == nil {
		return append(out, make([]byte, ElementSize+2*ScalarSize)...)
	}
	out = append(out, encElem(s.ui)...)
	out = append(out, encScalar(s.proof.e)...)
	return append(out, encScalar(s.proof.f)...)
}

// UnmarshalShare decodes a decryption share (element and scalars checked).
func UnmarshalShare(b []byte) (Share, error) {
	if len(b) != ShareSize {
		return Share{}, fmt.Errorf("%w: length %d, want %d", ErrMalformedShare, len(b), ShareSize)
	}
	s := Share{Index: binary.BigEndian.Uint32(b)}
	copy(s.keyID[:], b[4:])
	copy(s.ctTag[:], b[4+TagSize:])
	p := b[4+2*TagSize:]
	var err error
	if s.ui, err = decodeElement(p[:32]); err != nil {
		return Share{}, fmt.Errorf("share %d: %w", s.Index, err)
	}
	if s.proof.e, err = decodeScalar(p[32:64]); err != nil {
		return Share{}, fmt.Errorf("share %d: %w", s.Index, err)
	}
	if s.proof.f, err = decodeScalar(p[64:]); err != nil {
		return Share{}, fmt.Errorf("share %d: %w", s.Index, err)
	}
	return s, nil
}

// VerifyShare checks a decryption share for a checked ciphertext: index in
// range, same key set, same ciphertext, valid DLEQ proof.
func VerifyShare(pk *PublicKey, c *CheckedCiphertext, s Share) error {
	if err := checked(c); err != nil {
		return err
	}
	if c.keyID != pk.keyID {
		return fmt.Errorf("%w: ciphertext checked under another key", ErrWrongKey)
	}
	if s.ui == nil || s.proof.e == nil || s.proof.f == nil {
		return fmt.Errorf("%w: share %d incomplete", ErrMalformedShare, s.Index)
	}
	if s.Index < 1 || int(s.Index) > pk.N() {
		return fmt.Errorf("%w: %d not in [1,%d]", ErrIndexOutOfRange, s.Index, pk.N())
	}
	if s.keyID != pk.keyID {
		return fmt.Errorf("%w: share %d", ErrWrongKey, s.Index)
	}
	if s.ctTag != c.tag {
		return fmt.Errorf("%w: share %d", ErrWrongCiphertext, s.Index)
	}
	if !s.proof.verify(shareDomain, shareContext(s.keyID, s.ctTag, s.Index), c.ct.u, s.ui, gen, pk.hs[s.Index-1]) {
		return fmt.Errorf("%w: share %d", ErrInvalidShareProof, s.Index)
	}
	return nil
}

// Combine verifies shares one by one (skipping and naming invalid ones) until
// threshold valid shares with distinct indices are found, interpolates h^r
// and opens the payload. bad lists the indices of shares that failed
// verification. A duplicate index is an error (ErrDuplicateIndex), never
// counted twice.
//
// There is deliberately no "combine first, verify later" path here, unlike
// tsig: a Byzantine encryptor colluding with Byzantine share holders could
// make an unverified combination open (to another plaintext) for some share
// sets and fail for others, so correct members would disagree.
func Combine(pk *PublicKey, c *CheckedCiphertext, shares []Share) (plaintext []byte, bad []uint32, err error) {
	if err := checked(c); err != nil {
		return nil, nil, err
	}
	seen := make(map[uint32]bool, len(shares))
	for _, s := range shares {
		if seen[s.Index] {
			return nil, nil, fmt.Errorf("%w: %d", ErrDuplicateIndex, s.Index)
		}
		seen[s.Index] = true
	}
	valid := make([]Share, 0, pk.threshold)
	for _, s := range shares {
		if len(valid) == pk.threshold {
			break
		}
		if err := VerifyShare(pk, c, s); err != nil {
			bad = append(bad, s.Index)
			continue
		}
		valid = append(valid, s)
	}
	if len(valid) < pk.threshold {
		return nil, bad, fmt.Errorf("%w: %d valid, need %d; invalid: %v", ErrTooFewShares, len(valid), pk.threshold, bad)
	}
	idx := make([]uint32, len(valid))
	pts := make([]group.Element, len(valid))
	for i, s := range valid {
		idx[i], pts[i] = s.Index, s.ui
	}
	shared := multiExp(pts, lagrangeAt(idx, 0))
	aead, err := aeadFor(shared, c.ct.u)
	if err != nil {
		return nil, bad, err
	}
	var nonce [12]byte
	pt, err := aead.Open(nil, nonce[:], c.ct.payload, lp.Encode("maftia/tenc/aead-ad/v1", c.ct.Label))
	if err != nil {
		return nil, bad, ErrDecrypt
	}
	return pt, bad, nil
}
