package node

import (
	"sort"
	"sync"

	"github.com/maftia/maftia/core"
)

// Storage makes core.Output.Persist records durable. It is the subset of
// *storage.Store (Pebble) the runtime needs, so that store plugs in as is.
// The runtime calls SaveRecords with every record of a batch of steps
// before it performs any effect of those steps; SaveRecords must not return
// until the records would survive a crash. Records returns what was saved
// for instances within inst, for cores that recover after a restart.
type Storage interface {
	SaveRecords(recs []core.Record) error
	Records(inst core.InstanceID) ([]core.Record, error)
}

// MemStorage is an in-memory Storage: nothing survives the process, so it
// offers no crash-recovery guarantee (tests and throw-away demos only).
type MemStorage struct {
	mu     sync.Mutex
	m      map[memKey][]byte
	writes uint64
}

type memKey struct {
	inst core.InstanceID
	key  string
}

// NewMemStorage returns an empty in-memory store.
func NewMemStorage() *MemStorage { return &MemStorage{m: make(map[memKey][]byte)} }

// SaveRecords implements Storage.
func (s *MemStorage) SaveRecords(recs []core.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.m[memKey{r.Instance, r.Key}] = append([]byte(nil), r.Value...)
		s.writes++
	}
	return nil
}

// DeleteRecordSet removes the given records (garbage collection).
func (s *MemStorage) DeleteRecordSet(recs []core.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		delete(s.m, memKey{r.Instance, r.Key})
	}
	return nil
}

// Records implements Storage.
func (s *MemStorage) Records(inst core.InstanceID) ([]core.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []core.Record
	for k, v := range s.m {
		if k.inst.Within(inst) {
			out = append(out, core.Record{Instance: k.inst, Key: k.key, Value: append([]byte(nil), v...)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Instance != out[j].Instance {
			return out[i].Instance < out[j].Instance
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}

// Writes is the number of records saved so far.
func (s *MemStorage) Writes() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}
