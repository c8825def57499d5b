package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/maftia/maftia/ttcb"
)

// localTTCB is one in-process TTCB module of a hybrid Local cluster: a
// real module (Unix socket, UDP control network on loopback, state file),
// so the replicas exercise exactly the path they use in production.
type localTTCB struct {
	cfg    ttcb.Config
	entity ed25519.PrivateKey // the co-located replica's entity key
	cancel context.CancelFunc
	done   chan error
}

// DefaultLocalTTCBDelta is the TTCB round length of a Local cluster
// unless NewLocalConfig's caller sets MAFTIA_TTCB_DELTA: every replica,
// module and client shares one machine (often 2 cores), whose scheduling
// stalls (tens of ms, measured) would otherwise be timing failures that
// withhold results. A real deployment's modules run Δ = 20 ms.
const DefaultLocalTTCBDelta = 100 * time.Millisecond

// localDelta reads MAFTIA_TTCB_DELTA (a Go duration) or the default.
func localDelta() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("MAFTIA_TTCB_DELTA")); err == nil && d >= time.Millisecond {
		return d
	}
	return DefaultLocalTTCBDelta
}

// setupTTCB configures one module per replica: module and entity keys,
// pairwise control-network keys and free loopback UDP ports. Sockets live
// in a short directory of their own (Unix socket paths are limited to
// 108 bytes).
func (l *Local) setupTTCB(n, f int) error {
	sockDir, err := os.MkdirTemp("", "mttcb")
	if err != nil {
		return err
	}
	l.sockDir = sockDir
	delta := localDelta()
	peers := make([]ttcb.Peer, n)
	for i := range peers {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
		peers[i] = ttcb.Peer{ID: uint32(i + 1), Control: u.LocalAddr().String()}
		u.Close()
	}
	ctl := map[[2]uint32][]byte{}
	for i := uint32(1); i <= uint32(n); i++ {
		for j := i + 1; j <= uint32(n); j++ {
			k := make([]byte, 32)
			if _, err := rand.Read(k); err != nil {
				return err
			}
			ctl[[2]uint32{i, j}], ctl[[2]uint32{j, i}] = k, k
		}
	}
	for i := range n {
		id := uint32(i + 1)
		_, mkey, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		epub, ekey, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		cfg := ttcb.DefaultConfig()
		cfg.ID, cfg.F, cfg.Peers, cfg.Key = id, f, peers, mkey
		cfg.Delta = delta
		cfg.ControlKeys = map[uint32][]byte{}
		for j := uint32(1); j <= uint32(n); j++ {
			if j != id {
				cfg.ControlKeys[j] = ctl[[2]uint32{id, j}]
			}
		}
		cfg.Entities = []ttcb.LocalEntity{{ID: ttcb.EntityID(id), PublicKey: epub}}
		cfg.Socket = filepath.Join(sockDir, fmt.Sprintf("%d.sock", id))
		cfg.StateFile = filepath.Join(l.Dir, fmt.Sprintf("ttcb-%d.state", id))
		cfg.Logger = l.Logger
		l.modules = append(l.modules, &localTTCB{cfg: cfg, entity: ekey})
	}
	return nil
}

// StartTTCB starts (or restarts, with a new incarnation) TTCB module id of
// a hybrid cluster.
func (l *Local) StartTTCB(id uint32) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if int(id) < 1 || int(id) > len(l.modules) {
		return fmt.Errorf("server: no TTCB module %d", id)
	}
	m := l.modules[id-1]
	if m.cancel != nil {
		return fmt.Errorf("server: TTCB module %d already running", id)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan error, 1)
	// As `maftia ttcb` does: a module that failed itself on a timing
	// failure is restarted with a new incarnation.
	go func(done chan error) { done <- ttcb.Supervise(ctx, m.cfg, 1000, nil) }(m.done)
	return nil
}

// StopTTCB crashes TTCB module id (its state file keeps what it made
// durable).
func (l *Local) StopTTCB(id uint32) error {
	l.mu.Lock()
	if int(id) < 1 || int(id) > len(l.modules) || l.modules[id-1].cancel == nil {
		l.mu.Unlock()
		return nil
	}
	m := l.modules[id-1]
	cancel, done := m.cancel, m.done
	m.cancel, m.done = nil, nil
	l.mu.Unlock()
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ttcb.ErrClosed) {
		return err
	}
	return nil
}

// ttcbFor is replica id's TTCB configuration (nil for async clusters).
func (l *Local) ttcbFor(id uint32) *TTCBConfig {
	if len(l.modules) == 0 {
		return nil
	}
	m := l.modules[id-1]
	return &TTCBConfig{Socket: m.cfg.Socket, ModuleKey: m.cfg.Key.Public().(ed25519.PublicKey), EntityKey: m.entity}
}
