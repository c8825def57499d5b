package keys

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// HybridSchedule is the epoch schedule of the hybrid ordering engine
// (package hybrid, docs/adr/0004-hybrid-schedules.md): every replica
// computes the TTCB block agreements' tstarts from it and the agreed
// results alone, so it must be identical at every replica. It sits in the
// cluster file's `hybrid:` section, like addresses outside the key digest
// (moving the start does not invalidate the key files); the runtime binds
// it into the mesh's cluster identifier instead (ScheduleDigest), so
// replicas configured with different schedules refuse each other rather
// than order with different executions.
type HybridSchedule struct {
	// Start is the tstart of epoch 0 in TTCB global time (Unix time). A
	// start in the past only costs weak epochs while the schedule catches
	// up (the window doubles, capped); pick a time shortly after the
	// replicas will be up.
	Start time.Time
	// TBA is the TTCB's block-agreement bound T_TBA ((f+2)·Δ plus an
	// fsync, see ttcb.Config.TBABound) or more; Window is the base gap
	// between one epoch's results and the next epoch's tstart (time for
	// PROPOSE messages to arrive). Retention is at most the TTCB modules'
	// result retention.
	TBA, Window, Retention time.Duration
	// Modules are the public keys of the TTCB modules of hosts 1..n
	// (optional): with them a replica whose module withheld a result
	// accepts it from any one replica relaying the module's attestation,
	// instead of from f+1 replicas reporting it alike.
	Modules []ed25519.PublicKey
}

// DefaultHybridSchedule is a schedule for the default TTCB timing
// (Δ = 20 ms, f = 1: T_TBA = 60 ms plus an fsync) starting at start.
func DefaultHybridSchedule(start time.Time) *HybridSchedule {
	return &HybridSchedule{Start: start.UTC().Truncate(time.Millisecond), TBA: 100 * time.Millisecond,
		Window: 20 * time.Millisecond, Retention: 10 * time.Minute}
}

// Check validates the schedule.
func (h *HybridSchedule) Check() error {
	switch {
	case h.Start.UnixNano() <= 0:
		return fmt.Errorf("%w: hybrid start %v is not after 1970", ErrMalformed, h.Start)
	case h.TBA <= 0 || h.Window <= 0 || h.Retention <= 0:
		return fmt.Errorf("%w: hybrid tba, window and retention must be positive", ErrMalformed)
	case h.Retention < 10*(h.TBA+h.Window):
		return fmt.Errorf("%w: hybrid retention %v shorter than ten epochs", ErrMalformed, h.Retention)
	}
	for i, k := range h.Modules {
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: hybrid module key %d", ErrMalformed, i+1)
		}
	}
	return nil
}

// ScheduleDigest binds the schedule to the cluster digest: the hybrid
// runtime uses it as the mesh's cluster identifier.
func (h *HybridSchedule) ScheduleDigest(cluster [32]byte) [32]byte {
	b := append([]byte("maftia/keys/hybrid-schedule/v1"), cluster[:]...)
	for _, v := range []int64{h.Start.UnixNano(), int64(h.TBA), int64(h.Window), int64(h.Retention)} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return sha256.Sum256(b)
}

type hybridYAML struct {
	Start     string        `yaml:"start"`
	TBA       time.Duration `yaml:"tba"`
	Window    time.Duration `yaml:"window"`
	Retention time.Duration `yaml:"retention"`
	Modules   []string      `yaml:"ttcb_modules,omitempty"`
}

func (h *HybridSchedule) toYAML() *hybridYAML {
	y := &hybridYAML{Start: h.Start.UTC().Format(time.RFC3339Nano), TBA: h.TBA, Window: h.Window, Retention: h.Retention}
	for _, k := range h.Modules {
		y.Modules = append(y.Modules, hex.EncodeToString(k))
	}
	return y
}

func (y *hybridYAML) parse() (*HybridSchedule, error) {
	start, err := time.Parse(time.RFC3339Nano, y.Start)
	if err != nil {
		return nil, fmt.Errorf("%w: hybrid start %q: want RFC 3339 time", ErrMalformed, y.Start)
	}
	h := &HybridSchedule{Start: start, TBA: y.TBA, Window: y.Window, Retention: y.Retention}
	for i, s := range y.Modules {
		k, err := hex.DecodeString(s)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: hybrid ttcb_modules[%d] is not a hex Ed25519 public key", ErrMalformed, i)
		}
		h.Modules = append(h.Modules, ed25519.PublicKey(k))
	}
	return h, h.Check()
}
