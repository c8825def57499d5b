package ttcb

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Peer is a TTCB module in the configuration.
type Peer struct {
	ID      uint32
	Control string // UDP host:port of its control-network endpoint (loopback in tests)
}

// LocalEntity is a payload process allowed to use this module.
type LocalEntity struct {
	ID        EntityID
	PublicKey ed25519.PublicKey
}

// Config configures one TTCB module.
type Config struct {
	ID          uint32
	Peers       []Peer            // all modules, this one included; IDs 1..n
	F           int               // module crashes tolerated; agreements use f+1 rounds
	ControlKeys map[uint32][]byte // pairwise HMAC keys shared with each other module (≥ 32 bytes)
	Key         ed25519.PrivateKey
	Entities    []LocalEntity
	Socket      string // Unix socket of the local interface (created 0600)
	StateFile   string

	Delta      time.Duration // round length Δ ≥ control delay bound δ + precision π
	Slack      time.Duration // round messages stamped later than boundary+Slack are late (0: Δ/2)
	SyncPeriod time.Duration // clock synchronization and heartbeat period
	Retention  time.Duration // results kept after their deadline
	Horizon    time.Duration // tstart at most this far ahead

	RateEvery    time.Duration // admission control: one request per RateEvery per entity...
	RateBurst    int           // ...with this burst
	MaxExecs     int
	MaxPerEntity int
	MaxSessions  int
	MaxMeasures  int
	// MaxTimingFailures: a module with more own timing failures than this
	// within 64 slots fails itself (each one only withholds the affected
	// executions).
	MaxTimingFailures int

	ClockSkew time.Duration // fault injection for tests: offset of the local clock
	Logger    *slog.Logger
}

// DefaultConfig returns the timing and limit defaults; the caller fills in
// identities, addresses, keys and paths.
func DefaultConfig() Config {
	return Config{
		F: 1, Delta: 20 * time.Millisecond, SyncPeriod: 100 * time.Millisecond,
		Retention: 10 * time.Minute, Horizon: time.Minute,
		RateEvery: 50 * time.Microsecond, RateBurst: 2000,
		MaxExecs: 100_000, MaxPerEntity: 8192, MaxSessions: 64, MaxMeasures: 1024, MaxTimingFailures: 16,
	}
}

// Check validates the configuration.
func (c *Config) Check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	n := len(c.Peers)
	if n < 1 || n > 64 {
		return bad("%d modules (1..64)", n)
	}
	seen := map[uint32]bool{}
	for _, p := range c.Peers {
		if p.ID < 1 || int(p.ID) > n || seen[p.ID] {
			return bad("module IDs must be 1..%d, distinct (got %d)", n, p.ID)
		}
		seen[p.ID] = true
		if _, err := net.ResolveUDPAddr("udp", p.Control); err != nil {
			return bad("module %d control address %q: %v", p.ID, p.Control, err)
		}
		if p.ID != c.ID && len(c.ControlKeys[p.ID]) < 32 {
			return bad("no 32-byte control key shared with module %d", p.ID)
		}
	}
	if !seen[c.ID] {
		return bad("module ID %d not among the modules", c.ID)
	}
	if c.F < 0 || c.F >= n && n > 1 {
		return bad("f=%d with n=%d modules", c.F, n)
	}
	if len(c.Key) != ed25519.PrivateKeySize {
		return bad("module private key missing")
	}
	for _, e := range c.Entities {
		if e.ID == 0 || len(e.PublicKey) != ed25519.PublicKeySize {
			return bad("entity %d: bad ID or public key", e.ID)
		}
	}
	if c.Socket == "" || c.StateFile == "" {
		return bad("socket and state file paths are required")
	}
	if c.Delta <= 0 || c.SyncPeriod <= 0 || c.Retention <= 0 || c.Horizon <= 0 {
		return bad("non-positive timing parameter")
	}
	if c.Slack < 0 || c.Slack > c.Delta {
		return bad("slack %v not in [0, Δ=%v] (0: Δ/2)", c.Slack, c.Delta)
	}
	if c.RateBurst < 1 || c.MaxTimingFailures < 0 || c.MaxExecs < 1 || c.MaxPerEntity < 1 || c.MaxSessions < 1 || c.MaxMeasures < 1 {
		return bad("non-positive limit")
	}
	return nil
}

// TBABound is T_TBA: a result is decided by tstart + TBABound (plus the
// fsync of the result): one slot to reach the first round boundary and
// f+1 flooding rounds.
func (c *Config) TBABound() time.Duration { return time.Duration(c.F+2) * c.Delta }
