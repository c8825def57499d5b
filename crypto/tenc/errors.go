package tenc

import "errors"

// Sentinel errors; every returned error wraps exactly one.
var (
	ErrBadParams           = errors.New("tenc: bad parameters")
	ErrMalformedCiphertext = errors.New("tenc: malformed ciphertext encoding")
	ErrMalformedShare      = errors.New("tenc: malformed decryption share")
	ErrMalformedPoint      = errors.New("tenc: malformed group element")
	ErrMalformedScalar     = errors.New("tenc: malformed (non-canonical) scalar")
	ErrIdentity            = errors.New("tenc: identity element")
	// ErrInvalidCiphertext: the TDH2 validity proof does not verify over the
	// received bytes: the ciphertext (payload, label, u or ū) was tampered
	// with, or its proof was forged.
	ErrInvalidCiphertext = errors.New("tenc: invalid ciphertext (validity proof fails)")
	// ErrWrongLabel: the ciphertext's label is not the one the caller expects.
	ErrWrongLabel = errors.New("tenc: ciphertext has another label")
	// ErrUnchecked: a decryption share or combination was requested for a
	// ciphertext that did not go through Check.
	ErrUnchecked       = errors.New("tenc: ciphertext not checked")
	ErrIndexOutOfRange = errors.New("tenc: share index out of range")
	ErrDuplicateIndex  = errors.New("tenc: duplicate share index")
	// ErrWrongKey: share or ciphertext check made under another key set.
	ErrWrongKey = errors.New("tenc: made under a different key")
	// ErrWrongCiphertext: the share says it is for another ciphertext.
	ErrWrongCiphertext = errors.New("tenc: share for another ciphertext")
	// ErrInvalidShareProof: the decryption share's DLEQ proof does not verify.
	ErrInvalidShareProof = errors.New("tenc: invalid decryption share proof")
	ErrTooFewShares      = errors.New("tenc: too few valid decryption shares")
	// ErrDecrypt: the shares combined correctly but the payload does not
	// authenticate under the recovered key: the encryptor built a valid TDH2
	// ciphertext around garbage. Every correct member reaches this same
	// verdict for the same ciphertext.
	ErrDecrypt          = errors.New("tenc: payload does not authenticate")
	ErrInconsistentKeys = errors.New("tenc: inconsistent public keys")
)
