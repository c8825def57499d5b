package transport

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maftia/maftia/core"
)

// Peer is one member of the cluster as the configuration pins it.
type Peer struct {
	Addr     string            // host:port it listens on (127.0.0.1 in tests)
	Identity ed25519.PublicKey // pinned Ed25519 identity key
}

// Config configures a TLS transport. It is independent of key files: the
// caller (cmd/maftia) loads the cluster file and the private key and fills
// it in. Zero values of the tuning fields take DefaultConfig's values.
type Config struct {
	Self      core.NodeID
	ClusterID string
	Identity  ed25519.PrivateKey
	// Peers lists every member, Self included (its Addr is the listen
	// address, its Identity must match Identity's public key).
	Peers map[core.NodeID]Peer

	MaxFrame   int // largest frame accepted or sent, bytes
	QueueLen   int // per-peer send queue, frames; full → drop newest
	InboundLen int // shared receive channel capacity, frames

	// Inbound flood limit per peer: a token bucket in frames and bytes per
	// second; a reader over its budget stops reading (TCP pushes back on
	// the sender) until the bucket refills, and counts a throttle event.
	RateFrames  float64
	BurstFrames float64
	RateBytes   float64
	BurstBytes  float64

	HandshakeTimeout time.Duration // TLS handshake plus hello exchange
	WriteTimeout     time.Duration // one write or flush; a stuck peer is dropped
	BackoffMin       time.Duration // first reconnection delay
	BackoffMax       time.Duration // cap of the exponential backoff
	MaxHandshakes    int           // concurrent inbound handshakes; more are refused

	Logger     *slog.Logger          // nil: slog.Default()
	Registerer prometheus.Registerer // nil: metrics are not registered
}

// DefaultConfig returns the tuning defaults (identity and peers unset).
func DefaultConfig() Config {
	return Config{
		MaxFrame:         4 << 20,
		QueueLen:         4096,
		InboundLen:       4096,
		RateFrames:       50_000,
		BurstFrames:      10_000,
		RateBytes:        256 << 20,
		BurstBytes:       64 << 20,
		HandshakeTimeout: 5 * time.Second,
		WriteTimeout:     10 * time.Second,
		BackoffMin:       50 * time.Millisecond,
		BackoffMax:       5 * time.Second,
		MaxHandshakes:    64,
	}
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("transport: invalid configuration")

// withDefaults fills zero tuning fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	orDefault(&c.MaxFrame, d.MaxFrame)
	orDefault(&c.QueueLen, d.QueueLen)
	orDefault(&c.InboundLen, d.InboundLen)
	orDefault(&c.MaxHandshakes, d.MaxHandshakes)
	orDefault(&c.RateFrames, d.RateFrames)
	orDefault(&c.BurstFrames, d.BurstFrames)
	orDefault(&c.RateBytes, d.RateBytes)
	orDefault(&c.BurstBytes, d.BurstBytes)
	orDefault(&c.HandshakeTimeout, d.HandshakeTimeout)
	orDefault(&c.WriteTimeout, d.WriteTimeout)
	orDefault(&c.BackoffMin, d.BackoffMin)
	orDefault(&c.BackoffMax, d.BackoffMax)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// orDefault sets *v to d if *v is the zero value.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Check validates the configuration.
func (c Config) Check() error {
	self, ok := c.Peers[c.Self]
	switch {
	case !ok:
		return fmt.Errorf("%w: self %d is not among the peers", ErrConfig, c.Self)
	case len(c.Identity) != ed25519.PrivateKeySize:
		return fmt.Errorf("%w: identity is not an Ed25519 private key", ErrConfig)
	case !self.Identity.Equal(c.Identity.Public()):
		return fmt.Errorf("%w: identity does not match the key pinned for %d", ErrConfig, c.Self)
	case len(c.ClusterID) == 0 || len(c.ClusterID) > MaxClusterID:
		return fmt.Errorf("%w: cluster id must have 1..%d bytes", ErrConfig, MaxClusterID)
	case c.MaxFrame < 64 || c.MaxFrame > 1<<30:
		return fmt.Errorf("%w: MaxFrame %d out of range", ErrConfig, c.MaxFrame)
	case c.QueueLen < 1 || c.InboundLen < 1:
		return fmt.Errorf("%w: queue lengths must be positive", ErrConfig)
	}
	seen := make(map[string]core.NodeID)
	for id, p := range c.Peers {
		if id == core.Everyone {
			return fmt.Errorf("%w: node id 0 is reserved", ErrConfig)
		}
		if len(p.Identity) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: peer %d has no Ed25519 identity", ErrConfig, id)
		}
		if other, dup := seen[string(p.Identity)]; dup {
			return fmt.Errorf("%w: peers %d and %d share an identity key", ErrConfig, other, id)
		}
		seen[string(p.Identity)] = id
		if p.Addr == "" {
			return fmt.Errorf("%w: peer %d has no address", ErrConfig, id)
		}
	}
	return nil
}
