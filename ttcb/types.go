package ttcb

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/maftia/maftia/core"
)

// ServiceName is the value of core.ServiceRequest.Service for TTCB calls.
const ServiceName = "ttcb"

// EntityID names a local entity (a payload process, in maftia a replica).
// It is a core.NodeID so that an elist is a list of replicas.
type EntityID = core.NodeID

// MaxElist bounds the number of entities in one block agreement: the
// proposer masks are 64-bit.
const MaxElist = 64

// Value is the 32-byte value of a block agreement (typically a hash).
type Value [32]byte

// Mask is a bitmask over positions in an elist: bit i stands for elist[i].
type Mask uint64

// Has reports whether bit i is set.
func (m Mask) Has(i int) bool { return i >= 0 && i < 64 && m&(1<<uint(i)) != 0 }

// Count is the number of bits set.
func (m Mask) Count() int {
	n := 0
	for x := uint64(m); x != 0; x &= x - 1 {
		n++
	}
	return n
}

// Tag is the handle of a block-agreement execution: the first 8 bytes of
// its ExecKey. A caller retrieves results only of executions it proposed
// to (or tried to), so a Byzantine entity crafting tag collisions can only
// confuse itself.
type Tag uint64

// ExecKey identifies a block-agreement execution: (elist, tstart, decision).
// Including the decision function means a Byzantine entity that names a
// different function creates a different execution instead of changing the
// result of the correct callers'.
type ExecKey [32]byte

// Tag returns the execution's handle.
func (k ExecKey) Tag() Tag { return Tag(binary.BigEndian.Uint64(k[:8])) }

// ExecutionKey hashes an execution's identity, domain-separated and
// length-prefixed.
func ExecutionKey(elist []EntityID, tstart uint64, d Decision) ExecKey {
	h := sha256.New()
	var b [8]byte
	h.Write([]byte("maftia-ttcb-tba-exec-v1"))
	binary.BigEndian.PutUint64(b[:], tstart)
	h.Write(b[:])
	binary.BigEndian.PutUint32(b[:4], uint32(d))
	h.Write(b[:4])
	binary.BigEndian.PutUint32(b[:4], uint32(len(elist)))
	h.Write(b[:4])
	for _, e := range elist {
		binary.BigEndian.PutUint32(b[:4], uint32(e))
		h.Write(b[:4])
	}
	var k ExecKey
	h.Sum(k[:0])
	return k
}

// ExecutionTag is ExecutionKey(...).Tag(): a protocol core can compute the
// tag of its execution itself and ask for the result right after proposing.
func ExecutionTag(elist []EntityID, tstart uint64, d Decision) Tag {
	return ExecutionKey(elist, tstart, d).Tag()
}

// Requests a hybrid protocol core puts in core.ServiceRequest.Request, and
// the replies it gets in core.ServiceReply.Reply. Times are global TTCB
// time: nanoseconds in the real service, ticks in the Model.

// TBAPropose is TTCB_propose(eid, elist, tstart, decision, value); eid is
// the authenticated caller.
type TBAPropose struct {
	Elist    []EntityID
	TStart   uint64
	Decision Decision
	Value    Value
}

// TBAProposed answers TBAPropose: the execution's tag and the global time
// by which its result is available.
type TBAProposed struct {
	Tag     Tag
	ReadyAt uint64
}

// TBADecide is TTCB_decide(tag).
type TBADecide struct {
	Tag Tag
}

// TBAResult is the outcome of an execution, the same for every caller:
// the decided value (Decided is false when the decision function found no
// value, e.g. no majority), the mask of entities that proposed the decided
// value and the mask of entities that proposed anything by tstart.
type TBAResult struct {
	Tag         Tag
	Decided     bool
	Value       Value
	ProposedOK  Mask
	ProposedAny Mask
	// Module and Signature attest the result: module Module's Ed25519
	// signature over AttestedBytes(execution key, result). Every module
	// that answers gives the same result, so any one module's attestation
	// proves the common result to a third party (a payload replica whose
	// own module withheld it). Zero when unattested.
	Module    uint32
	Signature [64]byte
	// Withheld: the attesting module had a timing failure of its own in
	// this execution and will never answer it (no other field is set).
	// When every module attests this, no result exists anywhere.
	Withheld bool
}

// AttestedBytes is what a module signs to attest r as the result of the
// execution with key k: domain-separated, fixed-width fields.
func AttestedBytes(k ExecKey, r TBAResult) []byte {
	b := append([]byte("maftia-ttcb-tba-result-v1"), k[:]...)
	d := byte(0)
	if r.Decided {
		d = 1
	}
	b = append(b, d)
	b = append(b, r.Value[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.ProposedOK))
	b = binary.BigEndian.AppendUint64(b, uint64(r.ProposedAny))
	w := byte(0)
	if r.Withheld {
		w = 1
	}
	b = append(b, w)
	return binary.BigEndian.AppendUint32(b, r.Module)
}

// Attest signs r as module id's result of the execution with key k.
func Attest(key ed25519.PrivateKey, id uint32, k ExecKey, r TBAResult) TBAResult {
	r.Module = id
	copy(r.Signature[:], ed25519.Sign(key, AttestedBytes(k, r)))
	return r
}

// VerifyAttestation reports whether r carries a valid attestation by the
// module whose public key is pub for the execution with key k.
func VerifyAttestation(pub ed25519.PublicKey, k ExecKey, r TBAResult) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, AttestedBytes(k, r), r.Signature[:])
}

// Unattested is r without its attestation (results compare equal across
// modules only without it).
func (r TBAResult) Unattested() TBAResult {
	r.Module, r.Signature = 0, [64]byte{}
	return r
}

// GetTimestamp asks for the current global time.
type GetTimestamp struct{}

// Timestamp answers GetTimestamp; successive answers to one entity are
// strictly increasing.
type Timestamp struct{ Time uint64 }

// GetRandom asks for N trusted random bytes (1..MaxRandom).
type GetRandom struct{ N int }

// Random answers GetRandom.
type Random struct{ Bytes []byte }

// MaxRandom bounds one random-number request.
const MaxRandom = 1024

// StartMeasure starts a duration measurement with a timeliness bound
// (timing-failure detection for a local timed action).
type StartMeasure struct{ Bound uint64 }

// MeasureStarted answers StartMeasure.
type MeasureStarted struct {
	ID    uint64
	Start uint64
}

// StopMeasure ends measurement ID.
type StopMeasure struct{ ID uint64 }

// Measured answers StopMeasure: the measured duration and whether the
// action missed its bound (a timing failure).
type Measured struct {
	Duration      uint64
	TimingFailure bool
}

// Refused answers a request the TTCB refuses, with an error wrapping one
// of the sentinel errors below.
type Refused struct{ Err error }

// Sentinel errors; callers test with errors.Is.
var (
	ErrBadRequest     = errors.New("ttcb: bad request")
	ErrNotInElist     = errors.New("ttcb: caller not in elist")
	ErrTooLate        = errors.New("ttcb: proposal after tstart")
	ErrTooEarly       = errors.New("ttcb: tstart too far in the future")
	ErrConflict       = errors.New("ttcb: conflicting proposal for the same execution")
	ErrUnknownTag     = errors.New("ttcb: unknown tag")
	ErrNotReady       = errors.New("ttcb: result not ready")
	ErrExpired        = errors.New("ttcb: result expired")
	ErrUnavailable    = errors.New("ttcb: module unavailable for this execution")
	ErrRateLimited    = errors.New("ttcb: admission control: rate limit exceeded")
	ErrOverloaded     = errors.New("ttcb: too many pending executions")
	ErrUnauthorized   = errors.New("ttcb: authentication failed")
	ErrTimingFailure  = errors.New("ttcb: timing failure")
	ErrRollback       = errors.New("ttcb: module state rolled back or cloned")
	ErrCorruptState   = errors.New("ttcb: corrupt state file")
	ErrModuleFailed   = errors.New("ttcb: module failed")
	ErrConfig         = errors.New("ttcb: bad configuration")
	ErrClosed         = errors.New("ttcb: closed")
	ErrUnknownMeasure = errors.New("ttcb: unknown measurement")
)

// errCodes maps sentinel errors to small integers on the wire.
var errCodes = []error{nil, ErrBadRequest, ErrNotInElist, ErrTooLate, ErrTooEarly, ErrConflict,
	ErrUnknownTag, ErrNotReady, ErrExpired, ErrUnavailable, ErrRateLimited, ErrOverloaded,
	ErrUnauthorized, ErrTimingFailure, ErrRollback, ErrModuleFailed, ErrUnknownMeasure}

func errCode(err error) uint32 {
	for i := 1; i < len(errCodes); i++ {
		if errors.Is(err, errCodes[i]) {
			return uint32(i)
		}
	}
	return 1
}

func codeErr(code uint32, detail string) error {
	if code == 0 {
		return nil
	}
	base := ErrBadRequest
	if int(code) < len(errCodes) {
		base = errCodes[code]
	}
	detail = strings.TrimPrefix(detail, base.Error()+": ")
	if detail == "" || detail == base.Error() {
		return base
	}
	return fmt.Errorf("%w: %s", base, detail)
}

// checkElist validates an elist: 1..MaxElist valid, distinct entity IDs.
func checkElist(elist []EntityID) error {
	if len(elist) == 0 || len(elist) > MaxElist {
		return fmt.Errorf("%w: elist of %d entities (1..%d)", ErrBadRequest, len(elist), MaxElist)
	}
	for i, e := range elist {
		if e == 0 {
			return fmt.Errorf("%w: entity 0 in elist", ErrBadRequest)
		}
		for _, o := range elist[:i] {
			if o == e {
				return fmt.Errorf("%w: entity %d twice in elist", ErrBadRequest, e)
			}
		}
	}
	return nil
}

func indexOf(elist []EntityID, e EntityID) int {
	for i, x := range elist {
		if x == e {
			return i
		}
	}
	return -1
}
