package node

import (
	"sync"

	"github.com/maftia/maftia/core"
)

// Storage makes core.Output.Persist records durable. The runtime calls
// Persist with every record of one Output before it sends any message of
// that Output; Persist must not return until the records would survive a
// crash. A Pebble-backed implementation lives in package storage (later);
// MemStorage serves tests and the demo.
type Storage interface {
	Persist(recs []core.Record) error
	// Load returns the value last persisted for (instance, key).
	Load(inst core.InstanceID, key string) (value []byte, ok bool, err error)
	Close() error
}

// MemStorage is an in-memory Storage: nothing survives the process, so it
// offers no crash-recovery guarantee (ATTACKS.md row 1 needs the durable
// store).
type MemStorage struct {
	mu sync.Mutex
	m  map[memKey][]byte
	n  uint64
}

type memKey struct {
	inst core.InstanceID
	key  string
}

// NewMemStorage returns an empty in-memory store.
func NewMemStorage() *MemStorage { return &MemStorage{m: make(map[memKey][]byte)} }

// Persist implements Storage.
func (s *MemStorage) Persist(recs []core.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.m[memKey{r.Instance, r.Key}] = append([]byte(nil), r.Value...)
		s.n++
	}
	return nil
}

// Load implements Storage.
func (s *MemStorage) Load(inst core.InstanceID, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[memKey{inst, key}]
	return v, ok, nil
}

// Writes is the number of records persisted so far.
func (s *MemStorage) Writes() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// Close implements Storage.
func (s *MemStorage) Close() error { return nil }
