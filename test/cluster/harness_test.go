package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/maftia/maftia/client"
	"github.com/maftia/maftia/crypto/keys"
)

// proxy forwards TCP connections to one replica's mesh listener. The
// cluster file names the proxy's address, so every connection to that
// replica from its peers passes through it; cut closes them all and
// refuses new ones until heal.
type proxy struct {
	ln     net.Listener
	target string

	delay atomic.Int64 // per forwarded chunk, both directions (a slow replica)
	// dropIn / dropOut discard the bytes flowing to / from the replica
	// while the connections stay open (an asymmetric partition).
	dropIn, dropOut atomic.Bool

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(ln net.Listener, target string) *proxy {
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p
}

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.pipe(c)
		}()
	}
}

func (p *proxy) pipe(c net.Conn) {
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.Close()
	}()
	u, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		u.Close()
		return
	}
	p.conns[u] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, u)
		p.mu.Unlock()
		u.Close()
	}()
	done := make(chan struct{}, 2)
	go func() { p.copy(u, c, &p.dropIn); done <- struct{}{} }()
	go func() { p.copy(c, u, &p.dropOut); done <- struct{}{} }()
	<-done
	c.Close()
	u.Close()
	<-done
}

// copy forwards src to dst, sleeping the current delay before each chunk
// and discarding chunks while drop is set.
func (p *proxy) copy(dst io.Writer, src io.Reader, drop *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := time.Duration(p.delay.Load()); d > 0 {
				time.Sleep(d)
			}
			if drop.Load() {
				continue
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// reset closes every forwarded connection (they reconnect at once).
func (p *proxy) reset() {
	p.setCut(true)
	p.setCut(false)
}

// setCut partitions (true) or heals (false) the replica behind the proxy.
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.setCut(true)
	p.wg.Wait()
}

// replica is one `maftia node` process (restartable).
type replica struct {
	id          int
	mesh, admin string // real mesh listener and admin endpoint
	key, data   string
	logPath     string
	attack      string

	cmd  *exec.Cmd
	done chan struct{}
}

// cluster is n replicas, their proxies and key files in one directory.
type cluster struct {
	t        testing.TB
	bin, dir string
	cfg      string
	cluster  *keys.Cluster
	replicas []*replica
	proxies  []*proxy
	clients  int
}

// listenBlock reserves ports base+off+i for every offset, so that the
// member address (proxy) and its client port (member port + 1000) are
// known free; it returns the listeners of the proxies and closes the rest.
func freeBase(t testing.TB, n int) (base int, proxies []net.Listener) {
	t.Helper()
	for try := 0; try < 50; try++ {
		base = 20000 + (os.Getpid()*7919+try*211+int(time.Now().UnixNano()/1e3))%30000
		var held []net.Listener
		ok := true
		for _, off := range []int{0, 100, 200, 1000} {
			for i := 1; i <= n && ok; i++ {
				ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+off+i))
				if err != nil {
					ok = false
					break
				}
				held = append(held, ln)
			}
		}
		if !ok {
			for _, ln := range held {
				ln.Close()
			}
			continue
		}
		for _, ln := range held[n:] {
			ln.Close()
		}
		return base, held[:n]
	}
	t.Fatal("no free port block")
	return 0, nil
}

// newCluster writes keys for n replicas (and clients) whose member
// addresses are proxies in front of the replicas' real mesh listeners.
// attacks[i] is replica i+1's --attack (empty: correct).
func newCluster(t testing.TB, bin string, n, f, clients int, attacks []string) *cluster {
	t.Helper()
	dir := t.TempDir()
	base, pls := freeBase(t, n)
	var hosts []string
	for i := 1; i <= n; i++ {
		hosts = append(hosts, fmt.Sprintf("127.0.0.1:%d", base+i))
	}
	out, err := exec.Command(bin, "keygen", "--n", fmt.Sprint(n), "--f", fmt.Sprint(f), "--clients", fmt.Sprint(clients),
		"--hosts", strings.Join(hosts, ","), "--out", filepath.Join(dir, "keys")).CombinedOutput()
	if err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	c := &cluster{t: t, bin: bin, dir: dir, cfg: filepath.Join(dir, "keys", keys.ClusterFileName), clients: clients}
	if c.cluster, err = keys.LoadCluster(c.cfg); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		r := &replica{id: i, mesh: fmt.Sprintf("127.0.0.1:%d", base+100+i), admin: fmt.Sprintf("127.0.0.1:%d", base+200+i),
			key: filepath.Join(dir, "keys", fmt.Sprintf("replica-%d.key", i)), data: filepath.Join(dir, fmt.Sprintf("data-%d", i)),
			logPath: filepath.Join(dir, fmt.Sprintf("replica-%d.log", i))}
		if i <= len(attacks) {
			r.attack = attacks[i-1]
		}
		c.replicas = append(c.replicas, r)
		c.proxies = append(c.proxies, newProxy(pls[i-1], r.mesh))
	}
	t.Cleanup(c.shutdown)
	for i := 1; i <= n; i++ {
		c.start(i)
	}
	return c
}

func (c *cluster) shutdown() {
	for _, r := range c.replicas {
		if r.cmd != nil && r.cmd.Process != nil {
			r.cmd.Process.Signal(syscall.SIGCONT)
			r.cmd.Process.Kill()
			<-r.done
		}
	}
	for _, p := range c.proxies {
		p.close()
	}
	if c.t.Failed() {
		for _, r := range c.replicas {
			b, _ := os.ReadFile(r.logPath)
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			c.t.Logf("--- replica %d log (tail) ---\n%s", r.id, b)
		}
	}
}

// start launches replica id (again, after kill) and waits until healthy.
func (c *cluster) start(id int) {
	c.t.Helper()
	r := c.replicas[id-1]
	args := []string{"node", "--config", c.cfg, "--key", r.key, "--data", r.data, "--admin", r.admin, "--listen", r.mesh, "--log-level", "warn"}
	if r.attack != "" {
		args = append(args, "--attack", r.attack)
	}
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	r.cmd = exec.Command(c.bin, args...)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); logf.Close(); close(done) }(r.cmd, r.done)
	c.waitFor(fmt.Sprintf("replica %d healthy", id), 20*time.Second, func() bool {
		resp, err := http.Get("http://" + r.admin + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// kill SIGKILLs replica id and waits for it to exit.
func (c *cluster) kill(id int) {
	r := c.replicas[id-1]
	r.cmd.Process.Kill()
	<-r.done
}

func (c *cluster) signal(id int, s syscall.Signal) {
	if err := c.replicas[id-1].cmd.Process.Signal(s); err != nil {
		c.t.Errorf("signal %v to replica %d: %v", s, id, err)
	}
}

func (c *cluster) waitFor(what string, d time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out (%v) waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type status struct {
	Members []struct {
		ID        uint32 `json:"id"`
		Connected bool   `json:"connected"`
	} `json:"members"`
	Evidence map[string]any `json:"evidence"`
}

func (c *cluster) status(id int) (status, error) {
	var st status
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + c.replicas[id-1].admin + "/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, errors.New(resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitMesh waits until every replica reports every member connected.
func (c *cluster) waitMesh() {
	c.t.Helper()
	for _, r := range c.replicas {
		c.waitFor(fmt.Sprintf("replica %d connected to all", r.id), 20*time.Second, func() bool {
			st, err := c.status(r.id)
			if err != nil {
				return false
			}
			for _, m := range st.Members {
				if !m.Connected {
					return false
				}
			}
			return true
		})
	}
}

// dial opens a client with identity id (1-based, ≤ clients).
func (c *cluster) dial(id int) *client.Client {
	c.t.Helper()
	k, err := keys.LoadClientPrivate(filepath.Join(c.dir, "keys", keys.ClientKeyFile(uint32(id))), c.cluster)
	if err != nil {
		c.t.Fatal(err)
	}
	cl, err := client.Dial(c.cluster, k, client.Options{Retry: 300 * time.Millisecond})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// rss is the resident set of replica id's process, bytes (Linux).
func (c *cluster) rss(id int) int64 {
	r := c.replicas[id-1]
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}
