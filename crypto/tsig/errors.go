package tsig

import "errors"

// Sentinel errors. Every error returned by this package wraps exactly one of
// them (with %w), so callers can tell the causes apart with errors.Is.
var (
	// ErrBadParams: n, threshold or DST outside the supported range.
	ErrBadParams = errors.New("tsig: bad parameters")
	// ErrMalformedPoint: wrong length, bad flags, or not a point on the curve.
	ErrMalformedPoint = errors.New("tsig: malformed point encoding")
	// ErrNotInSubgroup: a curve point outside the prime-order subgroup.
	ErrNotInSubgroup = errors.New("tsig: point not in the prime-order subgroup")
	// ErrIdentity: the identity element (point at infinity) where a share,
	// signature or key is expected.
	ErrIdentity = errors.New("tsig: identity element")
	// ErrMalformedShare: a share or secret share whose framing is wrong.
	ErrMalformedShare = errors.New("tsig: malformed share")
	// ErrIndexOutOfRange: a share index of 0 or greater than n.
	ErrIndexOutOfRange = errors.New("tsig: share index out of range")
	// ErrDuplicateIndex: two shares with the same index in one combination.
	ErrDuplicateIndex = errors.New("tsig: duplicate share index")
	// ErrWrongKey: the share was made under another key set (its key
	// fingerprint does not match this public key).
	ErrWrongKey = errors.New("tsig: share made under a different key")
	// ErrWrongMessage: the share says it signs another message.
	ErrWrongMessage = errors.New("tsig: share for another message")
	// ErrInvalidShare: the share fails the pairing check under its index's
	// verification key (forged, or made by another member).
	ErrInvalidShare = errors.New("tsig: invalid signature share")
	// ErrTooFewShares: fewer than threshold (valid) shares.
	ErrTooFewShares = errors.New("tsig: too few shares")
	// ErrInvalidSignature: a combined signature that does not verify.
	ErrInvalidSignature = errors.New("tsig: invalid signature")
	// ErrInconsistentKeys: share verification keys that do not lie on one
	// polynomial through the group key.
	ErrInconsistentKeys = errors.New("tsig: inconsistent public keys")
)
