package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/maftia/maftia/core"
)

// ATTACKS.md rows 8, 10 and 11: refused and counted, process stays up, the
// other peers are unaffected.

// rawDial opens a TLS connection presenting cert, trusting anything.
func rawDial(t *testing.T, addr string, cert tls.Certificate) *tls.Conn {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{cert},
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// impostorCert puts victim's public key in a certificate whose private key
// is the attacker's: it can be presented, but not proven.
func impostorCert(t *testing.T, victim ed25519.PublicKey) tls.Certificate {
	_, attacker, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, victim, attacker)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: attacker}
}

func mustCert(t *testing.T, k ed25519.PrivateKey) tls.Certificate {
	c, err := SelfSignedCert(k)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRefusesUnauthenticatedPeers: a connection from a process without a
// member key, with another member's certificate but not its key, with a
// valid key but a wrong claimed ID, for another cluster, or in the wrong
// direction is refused and counted by reason; the real members stay
// connected and keep exchanging frames.
func TestRefusesUnauthenticatedPeers(t *testing.T) {
	c := newCluster(t, 4)
	// Member 1 is played by the tests below; 2, 3 and 4 are real.
	delete(c.lns, 1)
	t2 := c.start(t, 2, nil)
	t3 := c.start(t, 3, nil)
	c.start(t, 4, nil)
	eventually(t, "2–3 up", func() bool { return connected(t3, 2) })
	addr := c.peers[3].Addr
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)

	cases := []struct {
		name   string
		cert   tls.Certificate
		hello  *hello
		reason string
	}{
		{"no member key", mustCert(t, stranger), &hello{ID: 1, Cluster: "test"}, RejectUnknownKey},
		{"another member's certificate", impostorCert(t, c.peers[1].Identity), &hello{ID: 1, Cluster: "test"}, RejectHandshake},
		{"valid key, wrong claimed id", mustCert(t, c.keys[1]), &hello{ID: 2, Cluster: "test"}, RejectWrongID},
		{"wrong cluster", mustCert(t, c.keys[1]), &hello{ID: 1, Cluster: "other"}, RejectWrongCluster},
		{"higher id dialling", mustCert(t, c.keys[4]), &hello{ID: 4, Cluster: "test"}, RejectDirection},
		{"no hello", mustCert(t, c.keys[1]), nil, RejectBadHello},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := t3.rejected.get(tc.reason)
			conn := rawDial(t, addr, tc.cert)
			if tc.hello != nil {
				WriteFrame(conn, tc.hello.encode())
			} else {
				WriteFrame(conn, []byte("not a hello"))
			}
			eventually(t, "refusal counted", func() bool { return t3.rejected.get(tc.reason) == before+1 })
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := ReadFrame(conn, 1024); err == nil {
				t.Fatal("refused peer received a frame")
			}
			if peerStatus(t3, 1).Connected {
				t.Fatal("impostor registered as member 1")
			}
		})
	}
	if st := t3.Status(); st.Rejected[RejectUnknownKey] != 1 || st.Rejected[RejectWrongID] != 1 {
		t.Fatalf("status rejected: %v", st.Rejected)
	}
	t2.Send(3, []byte("still here"))
	if in := recv(t, t3); in.From != 2 || string(in.Frame) != "still here" {
		t.Fatalf("got %+v", in)
	}
}

// TestDialerRefusesWrongServer: a server at a member's address that cannot
// prove that member's pinned key is never used; dial failures are counted.
func TestDialerRefusesWrongServer(t *testing.T) {
	c := newCluster(t, 2)
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	ln := tls.NewListener(c.lns[2], &tls.Config{MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{mustCert(t, stranger)}, ClientAuth: tls.RequireAnyClientCert})
	delete(c.lns, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	t1 := c.start(t, 1, nil)
	t1.Send(2, []byte("secret"))
	eventually(t, "dial failures", func() bool { return peerStatus(t1, 2).ConnErrors[ConnDial] >= 2 })
	if st := peerStatus(t1, 2); st.Connected || st.SentFrames != 0 {
		t.Fatalf("talked to an impostor: %+v", st)
	}
	t1.Close()
	ln.Close()
	<-done
}

// attacker connects to victim as member 1 with its real key, then sends
// raw bytes.
func attacker(t *testing.T, c *cluster, victim core.NodeID) *tls.Conn {
	conn := rawDial(t, c.peers[victim].Addr, mustCert(t, c.keys[1]))
	if err := WriteFrame(conn, hello{ID: 1, Cluster: "test"}.encode()); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFrame(conn, helloMax); err != nil {
		t.Fatalf("no hello back: %v", err)
	}
	return conn
}

// TestMalformedStreamsDropConnection: an authenticated member sending
// garbage, a frame over the maximum or a truncated frame loses its
// connection (counted by reason); the victim stays up and its other peers
// are unaffected.
func TestMalformedStreamsDropConnection(t *testing.T) {
	c := newCluster(t, 3)
	delete(c.lns, 1)
	t2 := c.start(t, 2, func(cfg *Config) { cfg.MaxFrame = 1024 })
	t3 := c.start(t, 3, nil)
	eventually(t, "2–3 up", func() bool { return connected(t2, 3) })
	cases := []struct {
		name   string
		bytes  []byte
		reason string
	}{
		{"garbage", []byte("\xde\xad\xbe\xef garbage garbage"), ConnOversized},
		{"oversized", AppendFrame(nil, make([]byte, 1025)), ConnOversized},
		{"truncated", AppendFrame(nil, make([]byte, 100))[:50], ConnTruncated},
		{"truncated header", []byte{0, 0}, ConnTruncated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := peerStatus(t2, 1).ConnErrors[tc.reason]
			conn := attacker(t, c, 2)
			eventually(t, "attacker connected", func() bool { return peerStatus(t2, 1).Connected })
			conn.Write(tc.bytes)
			if tc.reason == ConnTruncated {
				conn.CloseWrite()
			}
			eventually(t, "drop counted", func() bool { return peerStatus(t2, 1).ConnErrors[tc.reason] == before+1 })
			eventually(t, "attacker disconnected", func() bool { return !peerStatus(t2, 1).Connected })
			t3.Send(2, []byte(tc.name))
			if in := recv(t, t2); in.From != 3 || string(in.Frame) != tc.name {
				t.Fatalf("other peer affected: got %+v", in)
			}
		})
	}
}

// TestFloodIsThrottled: a member flooding valid frames is held to its
// inbound budget (the reader pauses; TCP pushes back on the flooder) and
// counted, while another peer's frames still get through promptly.
func TestFloodIsThrottled(t *testing.T) {
	c := newCluster(t, 3)
	delete(c.lns, 1)
	t2 := c.start(t, 2, func(cfg *Config) {
		cfg.RateFrames, cfg.BurstFrames = 2000, 200
	})
	t3 := c.start(t, 3, nil)
	eventually(t, "2–3 up", func() bool { return connected(t2, 3) })
	conn := attacker(t, c, 2)

	stop := make(chan struct{})
	flooded := make(chan int)
	go func() { // bounded: at most 2 s and 1e6 frames
		n := 0
		payload := AppendFrame(nil, make([]byte, 32))
		deadline := time.Now().Add(2 * time.Second)
		for ; n < 1_000_000 && time.Now().Before(deadline); n++ {
			select {
			case <-stop:
				flooded <- n
				return
			default:
			}
			conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := conn.Write(payload); err != nil {
				continue // pushed back
			}
		}
		flooded <- n
	}()
	// Consumer drains everything; frames from 3 must arrive within the
	// flood.
	start := time.Now()
	var from1 int
	got3 := 0
	for i := 0; got3 < 20; {
		if time.Since(start) > 10*time.Second {
			t.Fatal("peer 3 starved")
		}
		if i < 20 && time.Since(start) > 200*time.Millisecond {
			t3.Send(2, []byte{byte(i)})
			i++
		}
		select {
		case in := <-t2.Receive():
			if in.From == 1 {
				from1++
			} else {
				got3++
			}
		case <-time.After(time.Millisecond):
		}
	}
	latency := time.Since(start)
	close(stop)
	n := <-flooded
	elapsed := time.Since(start).Seconds()
	st := peerStatus(t2, 1)
	t.Logf("flooder wrote %d frames; victim accepted %d in %.2fs (budget 2000/s + 200 burst); throttled %d times; peer 3's 20 frames in %v",
		n, from1, elapsed, st.Throttled, latency)
	if st.Throttled == 0 {
		t.Fatal("flood not throttled")
	}
	if limit := 200 + 2000*elapsed*1.5 + 100; float64(from1) > limit {
		t.Fatalf("accepted %d flood frames, budget allows about %.0f", from1, limit)
	}
}

// TestNewerConnectionReplacesOlder: a second authenticated connection from
// the same member replaces the first (the member restarted); the old one is
// closed and the replacement counted.
func TestNewerConnectionReplacesOlder(t *testing.T) {
	c := newCluster(t, 2)
	delete(c.lns, 1)
	t2 := c.start(t, 2, nil)
	old := attacker(t, c, 2)
	eventually(t, "first connection", func() bool { return peerStatus(t2, 1).Connected })
	fresh := attacker(t, c, 2)
	eventually(t, "replacement counted", func() bool { return peerStatus(t2, 1).ConnErrors[ConnReplaced] == 1 })
	old.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := ReadFrame(old, 1024); err == nil {
		t.Fatal("old connection still delivers frames")
	}
	t2.Send(1, []byte("to the new one"))
	fresh.SetReadDeadline(time.Now().Add(5 * time.Second))
	if f, err := ReadFrame(fresh, 1024); err != nil || string(f) != "to the new one" {
		t.Fatalf("replacement got %q, %v", f, err)
	}
	if st := peerStatus(t2, 1); st.Reconnects != 1 || !st.Connected {
		t.Fatalf("status %+v", st)
	}
}

// TestPeerThatStopsReadingIsDropped: a member that stops reading (paused,
// or hostile) cannot block its writer: after WriteTimeout the connection is
// dropped and counted, and the frames beyond the bounded queue are dropped
// and counted instead of buffered (ATTACKS.md row 2).
func TestPeerThatStopsReadingIsDropped(t *testing.T) {
	c := newCluster(t, 2)
	delete(c.lns, 1)
	t2 := c.start(t, 2, func(cfg *Config) {
		cfg.WriteTimeout, cfg.QueueLen, cfg.MaxFrame = 200*time.Millisecond, 64, 1<<20
	})
	attacker(t, c, 2) // never reads
	eventually(t, "connected", func() bool { return peerStatus(t2, 1).Connected })
	big := make([]byte, 256<<10)
	for range 400 { // 100 MiB offered, far beyond socket buffers
		t2.Send(1, big)
	}
	eventually(t, "write timeout drops the connection", func() bool { return peerStatus(t2, 1).ConnErrors[ConnIO] >= 1 })
	if st := peerStatus(t2, 1); st.Drops[DropQueueFull] == 0 {
		t.Fatalf("queue overflow not counted: %+v", st)
	}
}
