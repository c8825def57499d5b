package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/transport"
	"github.com/maftia/maftia/wire"
)

// TestTLSImpersonationIsEvidence: over the real TLS mesh, member 1 (played
// raw by the test, with its genuine key) sends an envelope claiming to come
// from member 3. Replica 2 drops it, counts it and accuses 1 — not 3 — and
// keeps delivering member 3's genuine messages. ATTACKS.md row 11.
func TestTLSImpersonationIsEvidence(t *testing.T) {
	g := core.MustGroup(4, 1, core.Async)
	keys := map[core.NodeID]ed25519.PrivateKey{}
	lns := map[core.NodeID]net.Listener{}
	peers := map[core.NodeID]transport.Peer{}
	for _, id := range g.Members() {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		keys[id], lns[id] = priv, ln
		peers[id] = transport.Peer{Addr: ln.Addr().String(), Identity: pub}
	}
	lns[1].Close() // member 1 is the attacker
	lns[4].Close() // member 4 is down
	ctx, cancel := context.WithCancel(context.Background())
	cols := map[core.NodeID]*collector{}
	var nodes []*Node
	var trs []*transport.TLS
	errc := make(chan error, 2)
	for _, id := range []core.NodeID{2, 3} {
		cfg := transport.DefaultConfig()
		cfg.Self, cfg.ClusterID, cfg.Identity, cfg.Peers, cfg.Logger = id, "c", keys[id], peers, quiet
		cfg.BackoffMin, cfg.BackoffMax = 5*time.Millisecond, 50*time.Millisecond
		tr, err := transport.NewWithListener(cfg, lns[id])
		if err != nil {
			t.Fatal(err)
		}
		trs = append(trs, tr)
		cols[id] = &collector{}
		nd, err := New(Config{Self: id, Group: g, Protocol: echoCore{}, Transport: tr, Deliver: cols[id].deliver, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
		go func() { errc <- nd.Run(ctx) }()
	}
	defer func() {
		cancel()
		<-errc
		<-errc
		for _, tr := range trs {
			tr.Close()
		}
	}()

	cert, err := transport.SelfSignedCert(keys[1])
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", peers[2].Addr, &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hello := append([]byte("maftia-hello/1"), 0, 0, 0, 1, 0, 1, 'c')
	transport.WriteFrame(conn, hello)
	if _, err := transport.ReadFrame(conn, 512); err != nil {
		t.Fatalf("no hello back: %v", err)
	}
	forged, _ := wire.EncodeEnvelope(wire.Msg{Sender: 3, Instance: "b:9", Payload: []byte("forged")})
	transport.WriteFrame(conn, forged)

	eventually(t, "forgery counted", func() bool { return nodes[0].Status().Counters.Dropped[DropSenderMismatch] == 1 })
	st := nodes[0].Status()
	if st.Evidence[1][core.Unexpected] != 1 || len(st.Evidence[3]) != 0 {
		t.Fatalf("evidence %v: want one against 1, none against 3", st.Evidence)
	}
	if err := nodes[1].Submit(ctx, core.Input{Instance: "b:1", Value: []byte("genuine")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "genuine delivered", func() bool { return cols[2].has("3:genuine") })
	if cols[2].has("3:forged") {
		t.Fatal("forged envelope delivered")
	}
}
