package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/transport"
	"github.com/maftia/maftia/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Inputs understood by echoCore.
type (
	setTimer struct {
		name  string
		after uint64
	}
	cancelTimer struct{ name string }
	askService  struct{ v string }
	failNow     struct{}
)

// echoCore is a trivial best-effort broadcast used to test the runtime: an
// input []byte is persisted then broadcast; a received message is
// delivered as "from:payload"; "bad" payloads are accused as malformed.
type echoCore struct{}

func (echoCore) Step(ev core.Event, out *core.Output) error {
	switch e := ev.(type) {
	case core.Input:
		switch v := e.Value.(type) {
		case []byte:
			out.PersistRecord(e.Instance, "sent", v)
			out.Broadcast(e.Instance, v)
		case setTimer:
			out.SetTimer(e.Instance, v.name, v.after)
		case cancelTimer:
			out.CancelTimer(e.Instance, v.name)
		case askService:
			out.Request(e.Instance, "echo", 7, v.v)
		case failNow:
			return errors.New("invariant broken")
		}
	case core.Message:
		if string(e.Payload) == "bad" {
			out.Accuse(e.From, core.Malformed, e.Instance, "bad payload")
			return nil
		}
		out.Deliver(e.Instance, fmt.Sprintf("%d:%s", e.From, e.Payload))
	case core.TimerFired:
		out.Deliver(e.Instance, "timer:"+e.Timer)
	case core.ServiceReply:
		out.Deliver(e.Instance, fmt.Sprintf("reply:%d:%v", e.Tag, e.Reply))
	}
	return nil
}

// collector gathers deliveries.
type collector struct {
	mu  sync.Mutex
	got []core.Delivery
}

func (c *collector) deliver(d core.Delivery) {
	c.mu.Lock()
	c.got = append(c.got, d)
	c.mu.Unlock()
}

func (c *collector) values() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s []string
	for _, d := range c.got {
		s = append(s, fmt.Sprint(d.Value))
	}
	return s
}

func (c *collector) has(v string) bool {
	for _, got := range c.values() {
		if got == v {
			return true
		}
	}
	return false
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type testNode struct {
	*Node
	col  *collector
	ep   transport.Transport
	errc chan error
}

// startNodes runs n replicas of proto() over an in-memory network.
func startNodes(t *testing.T, n int, proto func() core.Protocol, edit func(*Config)) (*transport.MemNetwork, []*testNode) {
	t.Helper()
	ids := core.MustGroup(n, (n-1)/3, core.Async).Members()
	net := transport.NewMemNetwork(1024, ids...)
	nodes := make([]*testNode, n+1)
	ctx, cancel := context.WithCancel(context.Background())
	for _, id := range ids {
		col := &collector{}
		cfg := Config{Self: id, Group: core.MustGroup(n, (n-1)/3, core.Async), Protocol: proto(),
			Transport: net.Endpoint(id), Deliver: col.deliver, Logger: quiet, Tick: time.Millisecond,
			Services: map[string]Service{"echo": ServiceFunc(func(r core.ServiceRequest) any { return r.Request })}}
		if edit != nil {
			edit(&cfg)
		}
		nd, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tn := &testNode{Node: nd, col: col, ep: cfg.Transport, errc: make(chan error, 1)}
		go func() { tn.errc <- nd.Run(ctx) }()
		eventually(t, "running", func() bool { return nd.running.Load() })
		nodes[id] = tn
	}
	t.Cleanup(func() {
		cancel()
		for _, tn := range nodes[1:] {
			<-tn.errc
		}
	})
	return net, nodes
}

func submit(t *testing.T, nd *Node, inst core.InstanceID, v any) {
	t.Helper()
	if err := nd.Submit(context.Background(), core.Input{Instance: inst, Value: v}); err != nil {
		t.Fatal(err)
	}
}

func TestBroadcastReachesAllIncludingSelf(t *testing.T) {
	_, nodes := startNodes(t, 4, func() core.Protocol { return echoCore{} }, nil)
	for i := 1; i <= 4; i++ {
		submit(t, nodes[i].Node, core.RootN("b", uint64(i)), []byte("v"+strconv.Itoa(i)))
	}
	for i := 1; i <= 4; i++ {
		eventually(t, "all delivered", func() bool { return len(nodes[i].col.values()) == 4 })
		for j := 1; j <= 4; j++ {
			if !nodes[i].col.has(fmt.Sprintf("%d:v%d", j, j)) {
				t.Fatalf("replica %d lacks %d's message: %v", i, j, nodes[i].col.values())
			}
		}
	}
	st := nodes[1].Status()
	if st.Counters.Persisted != 1 || st.Counters.Sent != 4 || st.Counters.Delivered != 4 {
		t.Fatalf("counters %+v", st.Counters)
	}
}

// recorder logs persists and sends in one sequence.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) add(s string) { r.mu.Lock(); r.log = append(r.log, s); r.mu.Unlock() }

type recStorage struct {
	*MemStorage
	r *recorder
}

func (s recStorage) SaveRecords(recs []core.Record) error {
	for _, rec := range recs {
		s.r.add("persist " + string(rec.Value))
	}
	return s.MemStorage.SaveRecords(recs)
}

type recTransport struct {
	transport.Transport
	r *recorder
}

func (t recTransport) SendMany(to []core.NodeID, frame []byte) {
	env, _ := wire.DecodeEnvelope(frame, 4, 1<<20)
	t.r.add("send " + string(env.Payload))
	t.Transport.SendMany(to, frame)
}

// TestPersistBeforeSend: every record of an Output is durable before any
// message of that Output leaves the replica (DESIGN §3).
func TestPersistBeforeSend(t *testing.T) {
	rec := &recorder{}
	_, nodes := startNodes(t, 4, func() core.Protocol { return echoCore{} }, func(c *Config) {
		if c.Self == 1 {
			c.Storage = recStorage{NewMemStorage(), rec}
			c.Transport = recTransport{c.Transport, rec}
		}
	})
	for i := range 50 {
		submit(t, nodes[1].Node, core.RootN("b", uint64(i)), []byte(strconv.Itoa(i)))
	}
	eventually(t, "delivered", func() bool { return len(nodes[2].col.values()) == 50 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	persisted := map[string]bool{}
	for _, e := range rec.log {
		op, v, _ := strings.Cut(e, " ")
		if op == "persist" {
			persisted[v] = true
		} else if !persisted[v] {
			t.Fatalf("sent %q before persisting it; log %v", v, rec.log)
		}
	}
}

// TestMalformedAndForgedEnvelopesAreEvidence: garbage from a peer and an
// envelope whose sender is not the authenticated peer are dropped, counted
// and recorded as evidence against that peer; a core's own Accuse is
// counted per accused and kind; all shown in /status and /metrics.
func TestMalformedAndForgedEnvelopesAreEvidence(t *testing.T) {
	net, nodes := startNodes(t, 4, func() core.Protocol { return echoCore{} }, nil)
	byz := net.Endpoint(4)
	byz.Send(1, []byte("\xff\xffgarbage"))
	forged, _ := wire.EncodeEnvelope(wire.Msg{Sender: 2, Instance: "b:1", Payload: []byte("forged")})
	byz.Send(1, forged)
	bad, _ := wire.EncodeEnvelope(wire.Msg{Sender: 4, Instance: "b:1", Payload: []byte("bad")})
	byz.Send(1, bad)
	good, _ := wire.EncodeEnvelope(wire.Msg{Sender: 3, Instance: "b:2", Payload: []byte("fine")})
	net.Endpoint(3).Send(1, good)

	n1 := nodes[1]
	eventually(t, "good delivered", func() bool { return n1.col.has("3:fine") })
	eventually(t, "evidence", func() bool { return len(n1.Status().RecentEvidence) == 3 })
	st := n1.Status()
	want := map[core.EvidenceKind]uint64{core.Malformed: 2, core.Unexpected: 1}
	for k, v := range want {
		if st.Evidence[4][k] != v {
			t.Fatalf("evidence against 4: %v, want %v", st.Evidence[4], want)
		}
	}
	if st.Counters.Dropped[DropMalformed] != 1 || st.Counters.Dropped[DropSenderMismatch] != 1 {
		t.Fatalf("dropped %v", st.Counters.Dropped)
	}
	if n1.col.has("2:forged") || len(st.Evidence[2]) != 0 {
		t.Fatal("forged envelope delivered or blamed on the impersonated replica")
	}

	srv := httptest.NewServer(n1.AdminHandler())
	defer srv.Close()
	body := get(t, srv.URL+"/metrics")
	for _, want := range []string{`maftia_node_evidence_total{accused="4",kind="malformed",replica="1"} 2`,
		`maftia_node_evidence_total{accused="4",kind="unexpected",replica="1"} 1`,
		`maftia_node_dropped_messages_total{reason="sender_mismatch",replica="1"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var js Status
	if err := json.Unmarshal([]byte(get(t, srv.URL+"/status")), &js); err != nil {
		t.Fatal(err)
	}
	if js.Replica != 1 || js.Evidence[4][core.Malformed] != 2 || len(js.Members) != 4 || !js.Running {
		t.Fatalf("/status: %+v", js)
	}
	if h := get(t, srv.URL+"/healthz"); h != "ok\n" {
		t.Fatalf("/healthz %q", h)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestTimersFireAndCancel(t *testing.T) {
	_, nodes := startNodes(t, 1, func() core.Protocol { return echoCore{} }, nil)
	nd := nodes[1]
	inst := core.Root("t")
	submit(t, nd.Node, inst, setTimer{"a", 5})
	submit(t, nd.Node, inst, setTimer{"b", 1})
	submit(t, nd.Node, inst, setTimer{"c", 50})
	submit(t, nd.Node, inst, cancelTimer{"c"})
	eventually(t, "timers", func() bool { return len(nd.col.values()) == 2 })
	if v := nd.col.values(); v[0] != "timer:b" || v[1] != "timer:a" {
		t.Fatalf("fired %v", v)
	}
	time.Sleep(80 * time.Millisecond)
	if nd.col.has("timer:c") {
		t.Fatal("cancelled timer fired")
	}
}

func TestServiceRequestReply(t *testing.T) {
	_, nodes := startNodes(t, 1, func() core.Protocol { return echoCore{} }, nil)
	submit(t, nodes[1].Node, core.Root("s"), askService{"hi"})
	eventually(t, "reply", func() bool { return nodes[1].col.has("reply:7:hi") })
}

func TestCoreErrorHaltsReplica(t *testing.T) {
	_, nodes := startNodes(t, 1, func() core.Protocol { return echoCore{} }, nil)
	submit(t, nodes[1].Node, core.Root("x"), failNow{})
	select {
	case err := <-nodes[1].errc:
		if err == nil || !strings.Contains(err.Error(), "invariant broken") {
			t.Fatalf("Run returned %v", err)
		}
		nodes[1].errc <- err // for cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("replica did not halt")
	}
	st := nodes[1].Status()
	if st.Running || st.Halted == "" {
		t.Fatalf("status %+v", st)
	}
	if err := nodes[1].Submit(context.Background(), core.Input{Instance: "x"}); !errors.Is(err, ErrStopped) {
		t.Fatalf("submit after halt: %v", err)
	}
}

// checkedCore verifies "seq:N" payloads in Precheck (slowly, at random, to
// shuffle the workers) and checks in Step that each sender's messages come
// in order with their Checked results.
type checkedCore struct {
	mu    sync.Mutex // only for the test to read next; Step runs on one goroutine
	next  map[core.NodeID]int
	wrong int
}

func (c *checkedCore) Precheck(m core.Message) (any, error) {
	time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
	if bytes.Equal(m.Payload, []byte("forged")) {
		return nil, &core.Evidence{Accused: m.From, Kind: core.InvalidProof, Instance: m.Instance, Detail: "bad signature"}
	}
	seq, err := strconv.Atoi(strings.TrimPrefix(string(m.Payload), "seq:"))
	if err != nil {
		return nil, err
	}
	return seq, nil
}

func (c *checkedCore) Step(ev core.Event, out *core.Output) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch e := ev.(type) {
	case core.Input:
		out.Broadcast(e.Instance, e.Value.([]byte))
	case core.Message:
		if e.From == 0 {
			return nil
		}
		seq, ok := e.Checked.(int)
		if !ok && e.From != 1 { // own messages are not prechecked
			c.wrong++
			return nil
		}
		if !ok {
			return nil
		}
		if seq != c.next[e.From] {
			c.wrong++
		}
		c.next[e.From] = seq + 1
	}
	return nil
}

// TestPrecheckPreservesPerSenderOrder: with Precheck on a worker pool of
// several goroutines and random check times, each sender's messages still
// reach Step in the order received, carrying their Checked value; a
// message whose Precheck returns Evidence is dropped and counted.
func TestPrecheckPreservesPerSenderOrder(t *testing.T) {
	const k = 300
	cores := map[core.NodeID]*checkedCore{}
	var mu sync.Mutex
	id := core.NodeID(0)
	net, nodes := startNodes(t, 4, func() core.Protocol {
		mu.Lock()
		defer mu.Unlock()
		id++
		c := &checkedCore{next: map[core.NodeID]int{}}
		cores[id] = c
		return c
	}, func(c *Config) { c.Workers = 4 })
	_ = nodes
	for s := range k {
		for _, from := range []core.NodeID{2, 3, 4} {
			f, _ := wire.EncodeEnvelope(wire.Msg{Sender: from, Instance: "p:1", Payload: []byte(fmt.Sprintf("seq:%d", s))})
			net.Endpoint(from).Send(1, f)
		}
		if s%64 == 0 { // let the bounded queue drain
			time.Sleep(2 * time.Millisecond)
		}
	}
	forged, _ := wire.EncodeEnvelope(wire.Msg{Sender: 3, Instance: "p:1", Payload: []byte("forged")})
	net.Endpoint(3).Send(1, forged)
	c1 := cores[1]
	eventually(t, "all stepped", func() bool {
		c1.mu.Lock()
		defer c1.mu.Unlock()
		return c1.next[2] == k && c1.next[3] == k && c1.next[4] == k
	})
	eventually(t, "forged counted", func() bool { return nodes[1].Status().Evidence[3][core.InvalidProof] == 1 })
	c1.mu.Lock()
	defer c1.mu.Unlock()
	if c1.wrong != 0 {
		t.Fatalf("%d messages out of order or unchecked", c1.wrong)
	}
}

func TestConfigRefused(t *testing.T) {
	net := transport.NewMemNetwork(1, 1, 2)
	g := core.MustGroup(4, 1, core.Async)
	for name, cfg := range map[string]Config{
		"no protocol":   {Self: 1, Group: g, Transport: net.Endpoint(1)},
		"no transport":  {Self: 1, Group: g, Protocol: echoCore{}},
		"self not in g": {Self: 5, Group: g, Protocol: echoCore{}, Transport: net.Endpoint(1)},
		"wrong self":    {Self: 2, Group: g, Protocol: echoCore{}, Transport: net.Endpoint(1)},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err=%v", name, err)
		}
	}
}

// slowStorage takes an fsync-like 10 ms per commit and counts commits.
type slowStorage struct {
	*MemStorage
	mu      sync.Mutex
	commits int
}

func (s *slowStorage) SaveRecords(recs []core.Record) error {
	time.Sleep(10 * time.Millisecond)
	s.mu.Lock()
	s.commits++
	s.mu.Unlock()
	return s.MemStorage.SaveRecords(recs)
}

// TestBatchingGroupsCommits: with a storage that costs 10 ms per commit,
// 200 inputs submitted at once are made durable in far fewer commits than
// steps (events queued while a commit runs share the next one), and every
// record is saved before its message is delivered anywhere.
func TestBatchingGroupsCommits(t *testing.T) {
	st := &slowStorage{MemStorage: NewMemStorage()}
	_, nodes := startNodes(t, 4, func() core.Protocol { return echoCore{} }, func(c *Config) {
		if c.Self == 1 {
			c.Storage = st
		}
	})
	const k = 200
	for i := range k {
		submit(t, nodes[1].Node, core.RootN("b", uint64(i)), []byte(strconv.Itoa(i)))
	}
	eventually(t, "delivered", func() bool { return len(nodes[2].col.values()) == k })
	st.mu.Lock()
	commits := st.commits
	st.mu.Unlock()
	if st.Writes() != k {
		t.Fatalf("%d records saved, want %d", st.Writes(), k)
	}
	t.Logf("%d inputs, %d records, %d commits", k, st.Writes(), commits)
	if commits > k/4 {
		t.Fatalf("%d commits for %d inputs: not batched", commits, k)
	}
}
