package ttcb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/wire"
)

// The state file is an append-only log of TTCBRecords, each framed as
// length (4 bytes) ‖ CRC-32C (4 bytes) ‖ record. A module appends and
// fsyncs a record before it acts on it: its own incarnation before it
// sends anything, a decided result before any caller sees it, a peer's
// incarnation when first seen. So a restarted module never contradicts a
// result it gave, and its incarnation (hence everything it persisted)
// never goes backwards — unless the file itself is rolled back or copied,
// which peers detect by incarnation (see doc.go for the residual risk).
//
// A complete record with a bad checksum or that does not decode is
// corruption: the module refuses to start (ErrCorruptState). An incomplete
// last record is a write torn by a crash before fsync; it was never acted
// upon, so it is truncated.

const maxRecord = 1 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type stateFile struct {
	f    *os.File
	path string
	size int64
}

type loadedState struct {
	incarnation uint64
	peers       map[uint32]uint64
	results     []*wire.TTCBDecided
	torn        int64 // bytes of torn tail dropped
}

func frameRecord(r *wire.TTCBRecord) ([]byte, error) {
	b, err := marshal.Marshal(r)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 8+len(b))
	binary.BigEndian.PutUint32(out, uint32(len(b)))
	binary.BigEndian.PutUint32(out[4:], crc32.Checksum(b, crcTable))
	copy(out[8:], b)
	return out, nil
}

// parseState reads a state file's bytes for module self.
func parseState(data []byte, self uint32) (*loadedState, int64, error) {
	st := &loadedState{peers: make(map[uint32]uint64)}
	off := int64(0)
	for int64(len(data))-off > 0 {
		rest := data[off:]
		if len(rest) < 8 {
			break // torn header
		}
		n := binary.BigEndian.Uint32(rest)
		if n > maxRecord {
			return nil, 0, fmt.Errorf("%w: record at offset %d claims %d bytes", ErrCorruptState, off, n)
		}
		if int64(len(rest)) < 8+int64(n) {
			break // torn body
		}
		body := rest[8 : 8+n]
		if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(rest[4:]) {
			return nil, 0, fmt.Errorf("%w: checksum mismatch in record at offset %d", ErrCorruptState, off)
		}
		var r wire.TTCBRecord
		if err := proto.Unmarshal(body, &r); err != nil {
			return nil, 0, fmt.Errorf("%w: record at offset %d: %v", ErrCorruptState, off, err)
		}
		switch k := r.Kind.(type) {
		case *wire.TTCBRecord_Boot:
			if k.Boot == nil || k.Boot.Module == 0 {
				return nil, 0, fmt.Errorf("%w: boot record at offset %d", ErrCorruptState, off)
			}
			if k.Boot.Module == self {
				if k.Boot.Incarnation <= st.incarnation {
					return nil, 0, fmt.Errorf("%w: incarnation %d after %d at offset %d", ErrCorruptState, k.Boot.Incarnation, st.incarnation, off)
				}
				st.incarnation = k.Boot.Incarnation
			} else {
				st.peers[k.Boot.Module] = max(st.peers[k.Boot.Module], k.Boot.Incarnation)
			}
		case *wire.TTCBRecord_Decided:
			d := k.Decided
			if d == nil || d.Result == nil || checkElist(toEntityList(d.Elist)) != nil {
				return nil, 0, fmt.Errorf("%w: decided record at offset %d", ErrCorruptState, off)
			}
			if _, err := resultFromWire(d.Result); err != nil {
				return nil, 0, fmt.Errorf("%w: decided record at offset %d: %v", ErrCorruptState, off, err)
			}
			st.results = append(st.results, d)
		default:
			return nil, 0, fmt.Errorf("%w: unknown record at offset %d", ErrCorruptState, off)
		}
		off += 8 + int64(n)
	}
	if len(data) > 0 && st.incarnation == 0 {
		return nil, 0, fmt.Errorf("%w: no boot record of module %d (file of another module?)", ErrCorruptState, self)
	}
	st.torn = int64(len(data)) - off
	return st, off, nil
}

func toEntityList(xs []uint32) []EntityID {
	el := make([]EntityID, len(xs))
	for i, x := range xs {
		el[i] = EntityID(x)
	}
	return el
}

// openState opens (or creates, mode 0600) the state file, validates it and
// appends the next incarnation durably.
func openState(path string, self uint32) (*stateFile, *loadedState, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("ttcb: state file: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		err = fmt.Errorf("%w: state file %s is readable by others (mode %v)", ErrConfig, path, fi.Mode().Perm())
	}
	var data []byte
	if err == nil {
		data, err = io.ReadAll(io.LimitReader(f, 1<<30))
	}
	var st *loadedState
	var good int64
	if err == nil {
		st, good, err = parseState(data, self)
	}
	if err == nil && st.torn > 0 {
		err = f.Truncate(good)
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("ttcb: state file %s: %w", path, err)
	}
	s := &stateFile{f: f, path: path, size: good}
	st.incarnation++
	if err := s.append([]*wire.TTCBRecord{bootRecord(self, st.incarnation)}); err != nil {
		f.Close()
		return nil, nil, err
	}
	if err := syncDir(path); err != nil {
		f.Close()
		return nil, nil, err
	}
	return s, st, nil
}

func bootRecord(module uint32, inc uint64) *wire.TTCBRecord {
	return &wire.TTCBRecord{Kind: &wire.TTCBRecord_Boot{Boot: &wire.TTCBBoot{Module: module, Incarnation: inc}}}
}

// append writes records at the end and fsyncs.
func (s *stateFile) append(recs []*wire.TTCBRecord) error {
	var buf []byte
	for _, r := range recs {
		b, err := frameRecord(r)
		if err != nil {
			return err
		}
		buf = append(buf, b...)
	}
	if _, err := s.f.WriteAt(buf, s.size); err != nil {
		return fmt.Errorf("ttcb: state append: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("ttcb: state fsync: %w", err)
	}
	s.size += int64(len(buf))
	return nil
}

// rewrite replaces the file with recs (compaction): write a temporary
// file, fsync, rename over, fsync the directory.
func (s *stateFile) rewrite(recs []*wire.TTCBRecord) error {
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	ns := &stateFile{f: f, path: s.path}
	if err := ns.append(recs); err != nil {
		f.Close()
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		f.Close()
		return err
	}
	if err := syncDir(s.path); err != nil {
		f.Close()
		return err
	}
	s.f.Close()
	s.f, s.size = f, ns.size
	return nil
}

func (s *stateFile) close() error { return s.f.Close() }

func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("ttcb: fsync dir: %w", err)
	}
	return nil
}
