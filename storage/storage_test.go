package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/maftia/maftia/core"
)

func open(t *testing.T, dir string, fs vfs.FS) *Store {
	t.Helper()
	s, err := Open(dir, Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRecordsLogCheckpointsRoundTrip(t *testing.T) {
	s := open(t, "db", vfs.NewMem())
	defer s.Close()
	recs := []core.Record{
		{Instance: "rbc:1", Key: "ready", Value: []byte("h1")},
		{Instance: "rbc:1/sub", Key: "echo", Value: []byte("h2")},
		{Instance: "rbc:10", Key: "ready", Value: []byte("h3")},
	}
	if err := s.SaveRecords(recs); err != nil {
		t.Fatal(err)
	}
	got, err := s.Records("rbc:1")
	if err != nil || len(got) != 2 || got[0].Key != "ready" || got[1].Instance != "rbc:1/sub" {
		t.Fatalf("Records(rbc:1) = %+v, %v (must not include rbc:10)", got, err)
	}
	if err := s.DeleteRecords("rbc:1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Records(""); len(got) != 1 || got[0].Instance != "rbc:10" {
		t.Fatalf("after delete: %+v", got)
	}

	for i := uint64(1); i <= 5; i++ {
		if err := s.AppendLog(i, []byte(fmt.Sprint("batch", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AppendLog(3, []byte("batch3")); err != nil {
		t.Fatalf("idempotent append: %v", err)
	}
	if err := s.AppendLog(3, []byte("other")); !errors.Is(err, ErrConflict) {
		t.Fatalf("history rewrite: %v", err)
	}
	if err := s.TruncateLog(3); err != nil {
		t.Fatal(err)
	}
	var seen []uint64
	_ = s.LogRange(0, 100, func(seq uint64, _ []byte) error { seen = append(seen, seq); return nil })
	if fmt.Sprint(seen) != "[3 4 5]" {
		t.Fatalf("log after truncate: %v", seen)
	}
	if last, ok, _ := s.LastLog(); !ok || last != 5 {
		t.Fatalf("LastLog = %d %v", last, ok)
	}

	if _, err := s.LatestCheckpoint(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty checkpoint: %v", err)
	}
	for _, seq := range []uint64{10, 20} {
		if err := s.SaveCheckpoint(Checkpoint{Seq: seq, Digest: []byte("d"), Snapshot: []byte("state"), Certificate: []byte("sig")}); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := s.LatestCheckpoint()
	if err != nil || cp.Seq != 20 || string(cp.Snapshot) != "state" || string(cp.Certificate) != "sig" {
		t.Fatalf("checkpoint %+v %v", cp, err)
	}
	if err := s.PutMeta("executed", []byte{7}); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Meta("executed"); err != nil || !bytes.Equal(v, []byte{7}) {
		t.Fatalf("meta %v %v", v, err)
	}
}

// ATTACKS row 1: a crash at any moment, including between a write and its
// fsync, loses nothing that was acknowledged.
func TestCrashBetweenWriteAndFsyncKeepsAcknowledgedWrites(t *testing.T) {
	for trial := 0; trial < 8; trial++ {
		fs := vfs.NewCrashableMem()
		s := open(t, "db", fs)
		acked := 0
		for i := uint64(1); i <= 50; i++ {
			if err := s.AppendLog(i, []byte(fmt.Sprint("entry", i))); err != nil {
				t.Fatal(err)
			}
			acked = int(i)
		}
		// Crash: unsynced data survives with probability 50%.
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(uint64(trial), 1))})
		_ = s.Close()
		r := open(t, "db", crashed)
		for i := 1; i <= acked; i++ {
			v, err := r.Log(uint64(i))
			if err != nil || string(v) != fmt.Sprint("entry", i) {
				t.Fatalf("trial %d: acknowledged entry %d lost after crash: %q %v", trial, i, v, err)
			}
		}
		_ = r.Close()
	}
}

// ATTACKS row 14: a bit flip in a stored value is reported as ErrCorrupt.
func TestBitFlipInValueIsDetected(t *testing.T) {
	s := open(t, "db", vfs.NewMem())
	defer s.Close()
	if err := s.AppendLog(1, []byte("precious")); err != nil {
		t.Fatal(err)
	}
	k := seqKey(prefixLog, 1)
	raw := seal(k, []byte("precious"))
	raw[len(raw)-1] ^= 0x01
	if err := s.db.Set(k, raw, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Log(1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bit flip not detected: %v", err)
	}
}

// ATTACKS row 14: damaged files on disk: the store refuses to open (or to
// read) with a clear error; it never panics and never silently loses
// acknowledged data by recreating itself.
func TestDamagedFilesRefuseOrDetect(t *testing.T) {
	for _, damage := range []string{"truncate", "flip"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, nil)
			for i := uint64(1); i <= 200; i++ {
				if err := s.AppendLog(i, bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.db.Flush(); err != nil { // push entries into an sstable
				t.Fatal(err)
			}
			_ = s.Close()
			files, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
			if len(files) == 0 {
				t.Fatal("no sstable written")
			}
			b, _ := os.ReadFile(files[0])
			if damage == "truncate" {
				b = b[:len(b)/2]
			} else {
				for i := 100; i < len(b)-100; i += 97 {
					b[i] ^= 0x5a
				}
			}
			if err := os.WriteFile(files[0], b, 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := Open(dir, Options{})
			if err != nil {
				t.Logf("refused to open: %v", err)
				return
			}
			defer r.Close()
			bad := 0
			err = r.LogRange(0, 1000, func(uint64, []byte) error { return nil })
			for i := uint64(1); i <= 200; i++ {
				if _, e := r.Log(i); e != nil {
					bad++
				}
			}
			if err == nil && bad == 0 {
				t.Fatal("damage went unnoticed")
			}
			t.Logf("damage detected on read: scan err=%v, %d entries unreadable", err, bad)
		})
	}
}

// FuzzDecodeCheckpoint: stored checkpoint bytes never panic the decoder.
func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add(encodeCheckpoint(Checkpoint{Digest: []byte("d"), Snapshot: []byte("s"), Certificate: []byte("c")}))
	f.Add([]byte{0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := decodeCheckpoint(1, b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeCheckpoint(cp), b) {
			t.Fatal("decode/encode not inverse")
		}
	})
}

// FuzzUnseal: arbitrary stored bytes either verify or give ErrCorrupt.
func FuzzUnseal(f *testing.F) {
	f.Add([]byte("k"), seal([]byte("k"), []byte("v")))
	f.Fuzz(func(t *testing.T, k, stored []byte) {
		if _, err := unseal(k, stored); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
	})
}
