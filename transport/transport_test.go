package transport

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maftia/maftia/core"
)

// TestMeshDeliversInOrder: every member broadcasts; each receives every
// frame from every member exactly once, per sender in order, its own via
// local self-delivery.
func TestMeshDeliversInOrder(t *testing.T) {
	const n, k = 4, 200
	c := newCluster(t, n)
	trs := make([]*TLS, n+1)
	for i := 1; i <= n; i++ {
		trs[i] = c.start(t, core.NodeID(i), nil)
	}
	for i := 1; i <= n; i++ {
		eventually(t, "mesh up", func() bool { return connected(trs[i], 1, 2, 3, 4) })
	}
	for s := 0; s < k; s++ {
		for i := 1; i <= n; i++ {
			trs[i].Broadcast(binary.BigEndian.AppendUint32([]byte{byte(i)}, uint32(s)))
		}
	}
	for i := 1; i <= n; i++ {
		next := map[core.NodeID]uint32{}
		for got := 0; got < n*k; got++ {
			in := recv(t, trs[i])
			if core.NodeID(in.Frame[0]) != in.From {
				t.Fatalf("replica %d: frame from %d claims %d", i, in.From, in.Frame[0])
			}
			if seq := binary.BigEndian.Uint32(in.Frame[1:]); seq != next[in.From] {
				t.Fatalf("replica %d: from %d got seq %d, want %d", i, in.From, seq, next[in.From])
			}
			next[in.From]++
		}
	}
	if st := peerStatus(trs[1], 2); st.SentFrames != k || st.RecvFrames != k {
		t.Fatalf("1→2 counters: %+v", st)
	}
}

// TestReconnectAfterRestart: a member that restarts is reconnected to by
// lower IDs and reconnects to higher ones, with backoff; traffic resumes
// and reconnections are counted.
func TestReconnectAfterRestart(t *testing.T) {
	c := newCluster(t, 3)
	t1 := c.start(t, 1, nil)
	t2 := c.start(t, 2, nil)
	t3 := c.start(t, 3, nil)
	eventually(t, "mesh up", func() bool { return connected(t2, 1, 3) })
	t2 = c.restart(t, t2, 2)
	eventually(t, "reconnected", func() bool { return connected(t2, 1, 3) && connected(t1, 2) && connected(t3, 2) })
	eventually(t, "reconnect counted", func() bool {
		return peerStatus(t1, 2).Reconnects >= 1 && peerStatus(t3, 2).Reconnects >= 1
	})
	t1.Send(2, []byte("from 1"))
	t3.Send(2, []byte("from 3"))
	got := map[string]bool{}
	for range 2 {
		got[string(recv(t, t2).Frame)] = true
	}
	if !got["from 1"] || !got["from 3"] {
		t.Fatalf("after restart got %v", got)
	}
}

// TestSendQueueFullDropsNewest: with the peer unreachable, the bounded
// queue keeps the oldest QueueLen frames and drops (and counts) the rest;
// oversized and unknown destinations are dropped and counted too.
func TestSendQueueFullDropsNewest(t *testing.T) {
	c := newCluster(t, 2)
	c.lns[2].Close() // 2 never comes up
	t1 := c.start(t, 1, func(cfg *Config) { cfg.QueueLen = 4 })
	for i := range 10 {
		t1.Send(2, []byte{byte(i)})
	}
	t1.Send(2, make([]byte, t1.cfg.MaxFrame+1))
	t1.Send(9, []byte("nobody"))
	st := peerStatus(t1, 2)
	if st.Drops[DropQueueFull] != 6 || st.Drops[DropOversized] != 1 {
		t.Fatalf("drops %v, want 6 queue_full and 1 oversized", st.Drops)
	}
	if peerStatus(t1, 1).Drops[DropUnknown] != 1 {
		t.Fatalf("unknown destination not counted: %+v", peerStatus(t1, 1))
	}
	if st.Connected {
		t.Fatal("connected to a closed port")
	}
}

func TestSelfDeliveryIsLocal(t *testing.T) {
	c := newCluster(t, 2)
	c.lns[2].Close()
	t1 := c.start(t, 1, nil)
	t1.Send(1, []byte("me"))
	if in := recv(t, t1); in.From != 1 || string(in.Frame) != "me" {
		t.Fatalf("got %+v", in)
	}
}

func TestMetricsExported(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := newCluster(t, 2)
	t1 := c.start(t, 1, func(cfg *Config) { cfg.Registerer = reg })
	t2 := c.start(t, 2, nil)
	t1.Send(2, []byte("x"))
	recv(t, t2)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	all := strings.Join(names, " ")
	for _, want := range []string{"maftia_transport_sent_bytes_total", "maftia_transport_sent_frames_total",
		"maftia_transport_received_frames_total", "maftia_transport_dropped_frames_total",
		"maftia_transport_reconnects_total", "maftia_transport_rejected_handshakes_total"} {
		if !strings.Contains(all, want) {
			t.Errorf("metric %s missing from %s", want, all)
		}
	}
	t1.Close()
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Fatalf("metrics still registered after Close: %d families", len(mfs))
	}
}

func TestMemNetwork(t *testing.T) {
	n := NewMemNetwork(2, 1, 2, 3)
	e1 := n.Endpoint(1)
	e1.Broadcast([]byte("a"))
	for _, id := range []core.NodeID{1, 2, 3} {
		if in := recv(t, n.Endpoint(id)); in.From != 1 || !bytes.Equal(in.Frame, []byte("a")) {
			t.Fatalf("%d got %+v", id, in)
		}
	}
	n.SetLink(1, 2, false)
	e1.Send(2, []byte("lost"))
	n.SetLink(1, 2, true)
	for i := range 3 {
		e1.Send(3, []byte(fmt.Sprint(i)))
	}
	st := e1.Status()
	if st.Peers[1].Drops[DropClosed] != 1 || st.Peers[2].Drops[DropQueueFull] != 1 {
		t.Fatalf("drops: %+v", st.Peers)
	}
}
