package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/keys"
)

// freeAddr returns a 127.0.0.1 address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is one `maftia node` process and the deliveries it printed.
type proc struct {
	id    core.NodeID
	admin string
	cmd   *exec.Cmd
	mu    sync.Mutex
	got   map[string]bool // delivered values
	done  chan struct{}
	logs  *bytes.Buffer
}

// freeMeshAddr is a free loopback address whose client port (+1000) is
// free too.
func freeMeshAddr(t *testing.T) string {
	t.Helper()
	for range 50 {
		a := freeAddr(t)
		ln, err := net.Listen("tcp", (keys.Member{Address: a}).ClientAddress())
		if err == nil {
			ln.Close()
			return a
		}
	}
	t.Fatal("no free pair of loopback ports")
	return ""
}

func (p *proc) has(v string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.got[v]
}

type testCluster struct {
	t          *testing.T
	bin, dir   string
	cfg        string
	procs      map[core.NodeID]*proc
	logsMu     sync.Mutex
	adminAddrs map[core.NodeID]string
	service    string // --service of maftia node
}

func newTestCluster(t *testing.T, n, f int) *testCluster {
	return newServiceCluster(t, n, f, 0, "rbc")
}

// newServiceCluster builds the binary and a key set with clients; replicas
// run `maftia node --service service`.
func newServiceCluster(t *testing.T, n, f, clients int, service string) *testCluster {
	dir := t.TempDir()
	bin := filepath.Join(dir, "maftia")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	c := &testCluster{t: t, bin: bin, dir: dir, procs: map[core.NodeID]*proc{}, adminAddrs: map[core.NodeID]string{}, service: service}
	var hosts []string
	for i := 1; i <= n; i++ {
		c.adminAddrs[core.NodeID(i)] = freeAddr(t)
		hosts = append(hosts, freeMeshAddr(t))
	}
	kg := exec.Command(bin, "keygen", "--n", fmt.Sprint(n), "--f", fmt.Sprint(f), "--hosts", strings.Join(hosts, ","),
		"--clients", fmt.Sprint(clients), "--out", filepath.Join(dir, "keys"))
	if out, err := kg.CombinedOutput(); err != nil {
		t.Fatalf("maftia keygen: %v\n%s", err, out)
	}
	c.cfg = filepath.Join(dir, "keys", "cluster.yaml")
	t.Cleanup(func() {
		for _, p := range c.procs {
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range c.procs {
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			for id, p := range c.procs {
				t.Logf("--- replica %d log (tail):\n%s", id, tail(p.logs.String(), 3000))
			}
		}
	})
	return c
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// start launches replica id and waits until its admin endpoint is healthy.
func (c *testCluster) start(id core.NodeID) *proc {
	t := c.t
	p := &proc{id: id, admin: c.adminAddrs[id], got: map[string]bool{}, done: make(chan struct{}), logs: &bytes.Buffer{}}
	p.cmd = exec.Command(c.bin, "node", "--config", c.cfg, "--key", filepath.Join(c.dir, "keys", fmt.Sprintf("replica-%d.key", id)),
		"--admin", p.admin, "--service", c.service,
		"--data", filepath.Join(c.dir, fmt.Sprintf("data-%d", id)))
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = &lockedWriter{mu: &c.logsMu, w: p.logs}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var d delivery
			if json.Unmarshal(sc.Bytes(), &d) == nil {
				p.mu.Lock()
				p.got[d.Value] = true
				p.mu.Unlock()
			}
		}
		p.cmd.Wait()
	}()
	c.procs[id] = p
	waitFor(t, fmt.Sprintf("replica %d healthy", id), 15*time.Second, func() bool {
		resp, err := http.Get("http://" + p.admin + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out (%v) waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *testCluster) broadcast(id core.NodeID, v string) {
	c.t.Helper()
	resp, err := http.Post("http://"+c.procs[id].admin+"/broadcast", "text/plain", strings.NewReader(v))
	if err != nil {
		c.t.Fatalf("broadcast at %d: %v", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("broadcast at %d: %s %s", id, resp.Status, b)
	}
}

// round broadcasts k values from each of senders and waits until every
// replica in receivers delivered all of them.
func (c *testCluster) round(name string, k int, senders, receivers []core.NodeID, within time.Duration) {
	c.t.Helper()
	var want []string
	for i := range k {
		for _, s := range senders {
			v := fmt.Sprintf("%s/%d/%d", name, s, i)
			c.broadcast(s, v)
			want = append(want, v)
		}
	}
	start := time.Now()
	for _, r := range receivers {
		p := c.procs[r]
		waitFor(c.t, fmt.Sprintf("replica %d to deliver round %s", r, name), within, func() bool {
			for _, v := range want {
				if !p.has(v) {
					return false
				}
			}
			return true
		})
	}
	c.t.Logf("round %s: %d broadcasts delivered at %v in %v", name, len(want), receivers, time.Since(start).Round(time.Millisecond))
}

type nodeStatus struct {
	Members []struct {
		ID         core.NodeID `json:"id"`
		Connected  bool        `json:"connected"`
		Reconnects uint64      `json:"reconnects"`
	} `json:"members"`
	Evidence map[string]any `json:"evidence"`
}

func (c *testCluster) status(id core.NodeID) (st nodeStatus) {
	c.t.Helper()
	resp, err := http.Get("http://" + c.procs[id].admin + "/status")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		c.t.Fatal(err)
	}
	return st
}

// waitMesh waits until every listed replica reports every member
// connected (diallers may be backing off for up to 5 s).
func (c *testCluster) waitMesh(ids []core.NodeID) {
	c.t.Helper()
	for _, id := range ids {
		waitFor(c.t, fmt.Sprintf("replica %d connected to all", id), 20*time.Second, func() bool {
			for _, m := range c.status(id).Members {
				if !m.Connected {
					return false
				}
			}
			return true
		})
	}
}

// TestProcessesReliableBroadcastWithCrashRestart runs four `maftia node`
// processes over real TLS on loopback (n=4, f=1). Every replica's
// broadcasts reach every replica; replica 4 is SIGKILLed and the other
// three keep delivering each other's broadcasts (n−f are enough); replica
// 4 is restarted, rejoins the mesh, and all four deliver again.
// ATTACKS.md row 1.
func TestProcessesReliableBroadcastWithCrashRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped under -short")
	}
	start := time.Now()
	c := newTestCluster(t, 4, 1)
	all := []core.NodeID{1, 2, 3, 4}
	for _, id := range all {
		c.start(id)
	}
	c.waitMesh(all)
	c.round("before", 5, all, all, 20*time.Second)

	p4 := c.procs[4]
	if err := p4.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p4.done
	time.Sleep(time.Second) // let the dialers' backoff grow
	c.round("crashed", 5, []core.NodeID{1, 2, 3}, []core.NodeID{1, 2, 3}, 20*time.Second)

	c.start(4)
	c.round("restarted", 5, all, all, 30*time.Second)

	c.waitMesh(all)
	st := c.status(1)
	for _, m := range st.Members {
		if m.ID == 4 && m.Reconnects < 1 {
			t.Errorf("replica 1 counted no reconnection to 4")
		}
	}
	if len(st.Evidence) != 0 {
		t.Errorf("evidence among correct replicas: %v", st.Evidence)
	}
	t.Logf("4 processes, 1 SIGKILL + restart, 55 broadcasts, %v", time.Since(start).Round(time.Millisecond))
}
