package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/maftia/maftia/core"
)

// Errors callers handle.
var (
	// ErrCorrupt: stored bytes fail their checksum or format.
	ErrCorrupt = errors.New("storage: corrupt data")
	// ErrConflict: an attempt to rewrite history (a log entry with
	// different content at an existing sequence number).
	ErrConflict = errors.New("storage: conflicting write")
	// ErrNotFound: no such entry.
	ErrNotFound = errors.New("storage: not found")
)

// Key-space prefixes.
const (
	prefixRecord     = 'r' // r ‖ instance ‖ 0x00 ‖ key
	prefixLog        = 'l' // l ‖ seq (big endian)
	prefixCheckpoint = 'c' // c ‖ seq (big endian)
	prefixMeta       = 'm' // m ‖ name
	formatVersion    = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options configure a store.
type Options struct {
	// FS replaces the operating system's file system (tests use
	// vfs.NewCrashableMem to crash between write and fsync).
	FS vfs.FS
	// NoSync skips fsync: only for benchmarks of everything else.
	NoSync bool
	// Logger receives Pebble's own messages (default: discarded).
	Logger *slog.Logger
}

// Store is a replica's durable state. It is safe for concurrent use.
type Store struct {
	db    *pebble.DB
	write *pebble.WriteOptions
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any)  { p.l.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Fatalf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }

// Open opens (or creates) the store in dir.
func Open(dir string, o Options) (*Store, error) {
	po := &pebble.Options{FS: o.FS, ErrorIfNotPristine: false}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	po.Logger = pebbleLogger{o.Logger}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w (refusing to start on a damaged store; restore it from a peer by state transfer after moving it aside)", dir, err)
	}
	s := &Store{db: db, write: pebble.Sync}
	if o.NoSync {
		s.write = pebble.NoSync
	}
	return s, nil
}

// Close flushes and closes the store.
func (s *Store) Close() error { return s.db.Close() }

func seal(key, value []byte) []byte {
	out := make([]byte, 5+len(value))
	out[0] = formatVersion
	h := crc32.New(castagnoli)
	h.Write(key)
	h.Write(value)
	binary.BigEndian.PutUint32(out[1:5], h.Sum32())
	copy(out[5:], value)
	return out
}

func unseal(key, stored []byte) ([]byte, error) {
	if len(stored) < 5 || stored[0] != formatVersion {
		return nil, fmt.Errorf("%w: key %q: bad header", ErrCorrupt, key)
	}
	h := crc32.New(castagnoli)
	h.Write(key)
	h.Write(stored[5:])
	if h.Sum32() != binary.BigEndian.Uint32(stored[1:5]) {
		return nil, fmt.Errorf("%w: key %q: checksum mismatch", ErrCorrupt, key)
	}
	return bytes.Clone(stored[5:]), nil
}

func recordKey(inst core.InstanceID, key string) []byte {
	k := make([]byte, 0, 2+len(inst)+len(key))
	k = append(k, prefixRecord)
	k = append(k, inst...)
	k = append(k, 0)
	return append(k, key...)
}

func seqKey(prefix byte, seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

// SaveRecords durably stores protocol records (one synced batch; Pebble
// groups concurrent batches into one fsync). A record with the same
// instance and key replaces the previous one.
func (s *Store) SaveRecords(recs []core.Record) error {
	if len(recs) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, r := range recs {
		k := recordKey(r.Instance, r.Key)
		if err := b.Set(k, seal(k, r.Value), nil); err != nil {
			return fmt.Errorf("storage: %w", err)
		}
	}
	if err := b.Commit(s.write); err != nil {
		return fmt.Errorf("storage: commit records: %w", err)
	}
	return nil
}

// Records returns every record of instances within inst, in key order.
func (s *Store) Records(inst core.InstanceID) ([]core.Record, error) {
	lower := append([]byte{prefixRecord}, inst...)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: append([]byte{prefixRecord}, 0xff)})
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	defer it.Close()
	var out []core.Record
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		body := k[1:]
		sep := bytes.IndexByte(body, 0)
		if sep < 0 {
			return nil, fmt.Errorf("%w: record key %q", ErrCorrupt, k)
		}
		id := core.InstanceID(body[:sep])
		if !id.Within(inst) {
			if !bytes.HasPrefix(body, []byte(inst)) {
				break
			}
			continue // a sibling that shares a textual prefix ("rbc:1" vs "rbc:10")
		}
		v, err := unseal(k, it.Value())
		if err != nil {
			return nil, err
		}
		out = append(out, core.Record{Instance: id, Key: string(body[sep+1:]), Value: v})
	}
	return out, it.Error()
}

// DeleteRecords removes every record of instances within inst (garbage
// collection of finished instances).
func (s *Store) DeleteRecords(inst core.InstanceID) error {
	recs, err := s.Records(inst)
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, r := range recs {
		if err := b.Delete(recordKey(r.Instance, r.Key), nil); err != nil {
			return err
		}
	}
	return b.Commit(s.write)
}

// DeleteRecordSet removes the given records (garbage collection of
// finished instances, in one batch). The deletion is not fsynced: one
// lost in a crash is redone by the next collection, and any later synced
// write makes it durable with it.
func (s *Store) DeleteRecordSet(recs []core.Record) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, r := range recs {
		if err := b.Delete(recordKey(r.Instance, r.Key), nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.NoSync)
}

// AppendLog durably stores the ordered entry seq. Appending identical
// content again is a no-op; different content at an existing seq is
// ErrConflict (history never changes).
func (s *Store) AppendLog(seq uint64, entry []byte) error {
	k := seqKey(prefixLog, seq)
	old, err := s.get(k)
	switch {
	case err == nil:
		if bytes.Equal(old, entry) {
			return nil
		}
		return fmt.Errorf("%w: log entry %d already holds other content", ErrConflict, seq)
	case !errors.Is(err, ErrNotFound):
		return err
	}
	if err := s.db.Set(k, seal(k, entry), s.write); err != nil {
		return fmt.Errorf("storage: append %d: %w", seq, err)
	}
	return nil
}

// Log returns entry seq.
func (s *Store) Log(seq uint64) ([]byte, error) { return s.get(seqKey(prefixLog, seq)) }

// LogRange calls fn for entries from..to-1 that exist, in order.
func (s *Store) LogRange(from, to uint64, fn func(seq uint64, entry []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: seqKey(prefixLog, from), UpperBound: seqKey(prefixLog, to)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		v, err := unseal(it.Key(), it.Value())
		if err != nil {
			return err
		}
		if err := fn(binary.BigEndian.Uint64(it.Key()[1:]), v); err != nil {
			return err
		}
	}
	return it.Error()
}

// LastLog returns the highest log sequence number stored (ok=false if none).
func (s *Store) LastLog() (seq uint64, ok bool, err error) {
	return s.last(prefixLog)
}

// TruncateLog deletes entries below seq (behind a stable checkpoint).
func (s *Store) TruncateLog(below uint64) error {
	return s.db.DeleteRange(seqKey(prefixLog, 0), seqKey(prefixLog, below), s.write)
}

// Checkpoint is a certified snapshot of the application state after the
// batch with sequence number Seq.
type Checkpoint struct {
	Seq         uint64
	Digest      []byte // state digest the certificate signs
	Snapshot    []byte
	Certificate []byte // threshold signature on (Seq, Digest)
}

// SaveCheckpoint durably stores cp and deletes older checkpoints.
func (s *Store) SaveCheckpoint(cp Checkpoint) error {
	body := encodeCheckpoint(cp)
	b := s.db.NewBatch()
	defer b.Close()
	k := seqKey(prefixCheckpoint, cp.Seq)
	if err := b.DeleteRange(seqKey(prefixCheckpoint, 0), k, nil); err != nil {
		return err
	}
	if err := b.Set(k, seal(k, body), nil); err != nil {
		return err
	}
	return b.Commit(s.write)
}

// LatestCheckpoint returns the newest checkpoint (ErrNotFound if none).
func (s *Store) LatestCheckpoint() (Checkpoint, error) {
	seq, ok, err := s.last(prefixCheckpoint)
	if err != nil {
		return Checkpoint{}, err
	}
	if !ok {
		return Checkpoint{}, ErrNotFound
	}
	body, err := s.get(seqKey(prefixCheckpoint, seq))
	if err != nil {
		return Checkpoint{}, err
	}
	return decodeCheckpoint(seq, body)
}

// PutMeta durably stores a small named value.
func (s *Store) PutMeta(name string, v []byte) error {
	k := append([]byte{prefixMeta}, name...)
	return s.db.Set(k, seal(k, v), s.write)
}

// Meta returns a named value (ErrNotFound if absent).
func (s *Store) Meta(name string) ([]byte, error) {
	return s.get(append([]byte{prefixMeta}, name...))
}

func (s *Store) get(k []byte) ([]byte, error) {
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get %q: %w", k, err)
	}
	defer closer.Close()
	return unseal(k, v)
}

func (s *Store) last(prefix byte) (uint64, bool, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return 0, false, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, false, it.Error()
	}
	if len(it.Key()) != 9 {
		return 0, false, fmt.Errorf("%w: key %q", ErrCorrupt, it.Key())
	}
	return binary.BigEndian.Uint64(it.Key()[1:]), true, nil
}

// Checkpoint encoding: three length-prefixed fields.
func encodeCheckpoint(cp Checkpoint) []byte {
	var b []byte
	for _, f := range [][]byte{cp.Digest, cp.Certificate, cp.Snapshot} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

func decodeCheckpoint(seq uint64, b []byte) (Checkpoint, error) {
	var fields [3][]byte
	for i := range fields {
		if len(b) < 4 {
			return Checkpoint{}, fmt.Errorf("%w: checkpoint %d truncated", ErrCorrupt, seq)
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b)) {
			return Checkpoint{}, fmt.Errorf("%w: checkpoint %d field %d overruns", ErrCorrupt, seq, i)
		}
		fields[i], b = b[:n], b[n:]
	}
	if len(b) != 0 {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint %d has trailing bytes", ErrCorrupt, seq)
	}
	return Checkpoint{Seq: seq, Digest: fields[0], Certificate: fields[1], Snapshot: fields[2]}, nil
}
