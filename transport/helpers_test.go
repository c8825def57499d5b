package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/maftia/maftia/core"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// cluster is n members on 127.0.0.1 with fresh identities; listeners are
// opened up front so every port is known.
type cluster struct {
	keys  map[core.NodeID]ed25519.PrivateKey
	lns   map[core.NodeID]net.Listener
	peers map[core.NodeID]Peer
}

func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	c := &cluster{keys: map[core.NodeID]ed25519.PrivateKey{}, lns: map[core.NodeID]net.Listener{}, peers: map[core.NodeID]Peer{}}
	for i := 1; i <= n; i++ {
		id := core.NodeID(i)
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c.keys[id], c.lns[id] = priv, ln
		c.peers[id] = Peer{Addr: ln.Addr().String(), Identity: pub}
	}
	t.Cleanup(func() {
		for _, ln := range c.lns {
			ln.Close()
		}
	})
	return c
}

func (c *cluster) config(id core.NodeID) Config {
	cfg := DefaultConfig()
	cfg.Self, cfg.ClusterID, cfg.Identity, cfg.Peers = id, "test", c.keys[id], c.peers
	cfg.BackoffMin, cfg.BackoffMax = 5*time.Millisecond, 100*time.Millisecond
	cfg.Logger = quiet
	return cfg
}

// start runs member id on its pre-opened listener.
func (c *cluster) start(t testing.TB, id core.NodeID, edit func(*Config)) *TLS {
	t.Helper()
	cfg := c.config(id)
	if edit != nil {
		edit(&cfg)
	}
	ln := c.lns[id]
	delete(c.lns, id)
	tr, err := NewWithListener(cfg, ln)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// restart closes tr and starts member id again on the same address.
func (c *cluster) restart(t testing.TB, tr *TLS, id core.NodeID) *TLS {
	t.Helper()
	tr.Close()
	var ln net.Listener
	var err error
	for i := 0; i < 100; i++ {
		if ln, err = net.Listen("tcp", c.peers[id].Addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.lns[id] = ln
	return c.start(t, id, nil)
}

// eventually polls cond for up to 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func connected(tr Transport, ids ...core.NodeID) bool {
	st := tr.Status()
	for _, p := range st.Peers {
		for _, id := range ids {
			if p.ID == id && !p.Connected {
				return false
			}
		}
	}
	return true
}

// recv waits up to 10 s for one inbound frame.
func recv(t testing.TB, tr Transport) Inbound {
	t.Helper()
	select {
	case in := <-tr.Receive():
		return in
	case <-time.After(10 * time.Second):
		t.Fatal("timed out receiving")
		return Inbound{}
	}
}

func peerStatus(tr Transport, id core.NodeID) PeerStatus {
	for _, p := range tr.Status().Peers {
		if p.ID == id {
			return p
		}
	}
	return PeerStatus{}
}
