package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/maftia/maftia/crypto/keys"
)

// Local is a cluster of replicas in this process, on real loopback
// sockets with real TLS (maftia demo, up, bench and the end-to-end
// tests). Replica i is Servers[i-1].
type Local struct {
	Dir     string
	Cluster *keys.Cluster
	Privs   []*keys.Private
	Clients []*keys.ClientPrivate
	Attacks map[uint32]Attack
	Logger  *slog.Logger
	// Durable: each replica keeps a Pebble store in Dir/data-<id>.
	Durable bool
	// BatchSize and CheckpointEvery are handed to every replica (0: the defaults).
	BatchSize       int
	CheckpointEvery uint64
	// IdleProbe and Retain are handed to every replica (Config.IdleProbe,
	// Config.Retain; 0: the defaults).
	IdleProbe time.Duration
	Retain    uint64

	mu      sync.Mutex
	modules []*localTTCB // hybrid: one TTCB module per replica
	sockDir string
	servers []*Server
	cancels []context.CancelFunc
	dones   []chan error
	lns     [][2]net.Listener // peer, client listeners reserved at creation
}

// NewLocal generates a key set for n replicas on 127.0.0.1 with free
// ports and `clients` client identities, and writes it into dir
// (cluster.yaml, replica-<id>.key, client-<id>.key).
func NewLocal(dir string, n, f, clients int, log *slog.Logger) (*Local, error) {
	return NewLocalConfig(dir, keys.Async, n, f, clients, log)
}

// NewLocalConfig is NewLocal for either configuration. A hybrid cluster
// also gets one TTCB module per replica (started by StartAll), and an
// epoch schedule starting two seconds from now.
func NewLocalConfig(dir string, configuration keys.Configuration, n, f, clients int, log *slog.Logger) (*Local, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Local{Dir: dir, Attacks: map[uint32]Attack{}, Logger: log}
	var hosts []string
	for range n {
		pl, cl, err := reservePorts()
		if err != nil {
			l.closeListeners()
			return nil, err
		}
		l.lns = append(l.lns, [2]net.Listener{pl, cl})
		hosts = append(hosts, pl.Addr().String())
	}
	c, privs, err := keys.Generate(rand.Reader, n, f, hosts, string(configuration))
	if err != nil {
		l.closeListeners()
		return nil, err
	}
	if c.Hybrid != nil {
		c.Hybrid.Start = time.Now().Add(2 * time.Second).UTC().Truncate(time.Millisecond)
		c.Hybrid.TBA = time.Duration(f+2)*localDelta() + 40*time.Millisecond // T_TBA plus an fsync
		if err := l.setupTTCB(n, f); err != nil {
			l.closeListeners()
			return nil, err
		}
		for _, m := range l.modules {
			c.Hybrid.Modules = append(c.Hybrid.Modules, m.cfg.Key.Public().(ed25519.PublicKey))
		}
	}
	cls, err := c.AddClients(rand.Reader, clients)
	if err != nil {
		l.closeListeners()
		return nil, err
	}
	if err := keys.WriteDir(dir, c, privs, cls...); err != nil {
		l.closeListeners()
		return nil, err
	}
	l.Cluster, l.Privs, l.Clients = c, privs, cls
	l.servers = make([]*Server, n)
	l.cancels = make([]context.CancelFunc, n)
	l.dones = make([]chan error, n)
	return l, nil
}

// reservePorts listens on a free loopback port p and on the client port
// keys.Member.ClientAddress derives from it.
func reservePorts() (net.Listener, net.Listener, error) {
	for range 50 {
		pl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		m := keys.Member{Address: pl.Addr().String()}
		cl, err := net.Listen("tcp", m.ClientAddress())
		if err == nil {
			return pl, cl, nil
		}
		pl.Close()
	}
	return nil, nil, errors.New("server: no free pair of loopback ports")
}

func (l *Local) closeListeners() {
	for _, p := range l.lns {
		for _, ln := range p {
			if ln != nil {
				ln.Close()
			}
		}
	}
}

// Start starts replica id (again, after Stop: with its durable state if
// Durable).
func (l *Local) Start(id uint32) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := id - 1
	if l.servers[i] != nil {
		return fmt.Errorf("server: replica %d already running", id)
	}
	pl, cl := l.lns[i][0], l.lns[i][1]
	l.lns[i] = [2]net.Listener{}
	var err error
	m := l.Cluster.Members[i]
	if pl == nil {
		if pl, err = listenRetry(m.Address); err != nil {
			return err
		}
	}
	if cl == nil {
		if cl, err = listenRetry(m.ClientAddress()); err != nil {
			pl.Close()
			return err
		}
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pl.Close()
		cl.Close()
		return err
	}
	cfg := Config{Cluster: l.Cluster, Private: l.Privs[i], PeerListener: pl, ClientListener: cl, AdminListener: al,
		Attack: l.Attacks[id], Logger: l.Logger, BatchSize: l.BatchSize, CheckpointEvery: l.CheckpointEvery,
		IdleProbe: l.IdleProbe, Retain: l.Retain, TTCB: l.ttcbFor(id)}
	if l.Durable {
		cfg.DataDir = filepath.Join(l.Dir, fmt.Sprintf("data-%d", id))
	}
	s, err := New(cfg)
	if err != nil {
		pl.Close()
		cl.Close()
		al.Close()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	l.servers[i], l.cancels[i], l.dones[i] = s, cancel, done
	return nil
}

func listenRetry(addr string) (net.Listener, error) {
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, err
}

// StartAll starts every TTCB module (hybrid) and every replica.
func (l *Local) StartAll() error {
	for i := range l.modules {
		if err := l.StartTTCB(uint32(i + 1)); err != nil {
			l.StopAll()
			return err
		}
	}
	for _, m := range l.Cluster.Members {
		if err := l.Start(m.ID); err != nil {
			l.StopAll()
			return err
		}
	}
	return nil
}

// Stop stops replica id abruptly: its context is cancelled, its sockets
// closed, and nothing is flushed beyond what each step already made
// durable (the effect of a crash on the log; the process survives).
func (l *Local) Stop(id uint32) error {
	l.mu.Lock()
	i := id - 1
	s, cancel, done := l.servers[i], l.cancels[i], l.dones[i]
	l.servers[i], l.cancels[i], l.dones[i] = nil, nil, nil
	l.mu.Unlock()
	if s == nil {
		return nil
	}
	cancel()
	return <-done
}

// StopAll stops every replica and releases reserved ports.
func (l *Local) StopAll() {
	for _, m := range l.Cluster.Members {
		l.Stop(m.ID)
	}
	for i := range l.modules {
		l.StopTTCB(uint32(i + 1))
	}
	l.mu.Lock()
	l.closeListeners()
	if l.sockDir != "" {
		os.RemoveAll(l.sockDir)
	}
	l.mu.Unlock()
}

// Server returns replica id's server (nil if stopped).
func (l *Local) Server(id uint32) *Server {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.servers[id-1]
}

// ClusterFile is the path of the cluster description.
func (l *Local) ClusterFile() string { return filepath.Join(l.Dir, keys.ClusterFileName) }
