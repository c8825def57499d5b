package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/wire"
)

// Limits keep every operation's cost bounded whatever a client sends.
const (
	MaxKey        = 1 << 10
	MaxValue      = 64 << 10
	MaxRangeLimit = 1000
)

// Store is the key-value state machine. It is deterministic: results and
// state depend only on the sequence of operations applied.
type Store struct {
	data     map[string][]byte
	revision uint64
}

// New returns an empty store.
func New() *Store { return &Store{data: map[string][]byte{}} }

// EncodeOp marshals an operation.
func EncodeOp(op *wire.KVOp) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(op)
	if err != nil {
		panic(fmt.Sprintf("kv: marshal: %v", err))
	}
	return b
}

// DecodeResult parses a result.
func DecodeResult(b []byte) (*wire.KVResult, error) {
	var r wire.KVResult
	if err := proto.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: kv result: %v", wire.ErrMalformed, err)
	}
	return &r, nil
}

func encodeResult(r *wire.KVResult) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("kv: marshal: %v", err))
	}
	return b
}

// Apply executes one operation (smr.FSM).
func (s *Store) Apply(client uint64, raw []byte) []byte {
	return encodeResult(s.apply(raw))
}

func (s *Store) apply(raw []byte) *wire.KVResult {
	var op wire.KVOp
	if err := proto.Unmarshal(raw, &op); err != nil {
		return &wire.KVResult{Error: "malformed operation", Revision: s.revision}
	}
	if len(op.Key) > MaxKey || len(op.Value) > MaxValue || len(op.Expected) > MaxValue || len(op.End) > MaxKey {
		return &wire.KVResult{Error: "key or value too large", Revision: s.revision}
	}
	k := string(op.Key)
	switch op.Kind {
	case wire.KVOp_PUT:
		s.data[k] = slices.Clone(op.Value)
		s.revision++
		return &wire.KVResult{Ok: true, Revision: s.revision}
	case wire.KVOp_GET:
		v, found := s.data[k]
		return &wire.KVResult{Ok: true, Found: found, Value: v, Revision: s.revision}
	case wire.KVOp_DELETE:
		_, found := s.data[k]
		if found {
			delete(s.data, k)
			s.revision++
		}
		return &wire.KVResult{Ok: found, Found: found, Revision: s.revision}
	case wire.KVOp_CAS:
		cur, found := s.data[k]
		match := (op.ExpectAbsent && !found) || (!op.ExpectAbsent && found && bytes.Equal(cur, op.Expected))
		if !match {
			return &wire.KVResult{Ok: false, Found: found, Value: cur, Revision: s.revision}
		}
		s.data[k] = slices.Clone(op.Value)
		s.revision++
		return &wire.KVResult{Ok: true, Found: found, Revision: s.revision}
	case wire.KVOp_RANGE:
		limit := int(op.Limit)
		if limit <= 0 || limit > MaxRangeLimit {
			limit = MaxRangeLimit
		}
		res := &wire.KVResult{Ok: true, Revision: s.revision}
		for _, key := range s.sortedKeys() {
			if key < k || (len(op.End) > 0 && key >= string(op.End)) {
				continue
			}
			if len(res.Pairs) == limit {
				break
			}
			res.Pairs = append(res.Pairs, &wire.KVPair{Key: []byte(key), Value: s.data[key]})
		}
		return res
	}
	return &wire.KVResult{Error: "unknown operation", Revision: s.revision}
}

func (s *Store) sortedKeys() []string {
	keys := make([]string, 0, len(s.data))
	for k := range s.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Snapshot serializes the state deterministically (sorted keys).
func (s *Store) Snapshot() ([]byte, error) {
	b := binary.BigEndian.AppendUint64(nil, s.revision)
	b = binary.BigEndian.AppendUint64(b, uint64(len(s.data)))
	for _, k := range s.sortedKeys() {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		v := s.data[k]
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b, nil
}

// Restore replaces the state with a snapshot, refusing malformed ones.
func (s *Store) Restore(b []byte) error {
	if len(b) < 16 {
		return fmt.Errorf("%w: kv snapshot too short", wire.ErrMalformed)
	}
	rev, n := binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])
	b = b[16:]
	if n > uint64(len(b))/2 {
		return fmt.Errorf("%w: kv snapshot claims %d keys", wire.ErrMalformed, n)
	}
	data := make(map[string][]byte, n)
	var prev []byte
	next := func(max int) ([]byte, bool) {
		l, k := binary.Uvarint(b)
		if k <= 0 || k != len(binary.AppendUvarint(nil, l)) || l > uint64(max) || l > uint64(len(b)-k) {
			return nil, false
		}
		v := slices.Clone(b[k : k+int(l)])
		b = b[k+int(l):]
		return v, true
	}
	for i := uint64(0); i < n; i++ {
		k, ok1 := next(MaxKey)
		v, ok2 := next(MaxValue)
		if !ok1 || !ok2 {
			return fmt.Errorf("%w: kv snapshot entry %d", wire.ErrMalformed, i)
		}
		if i > 0 && bytes.Compare(prev, k) >= 0 {
			return fmt.Errorf("%w: kv snapshot keys not strictly increasing at entry %d", wire.ErrMalformed, i)
		}
		prev = k
		data[string(k)] = v
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: kv snapshot has %d trailing bytes", wire.ErrMalformed, len(b))
	}
	s.data, s.revision = data, rev
	return nil
}
