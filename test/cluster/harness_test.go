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

// proxy forwards the TCP connections of one mesh link: replica j < i dials
// i (the lower ID dials the higher) at this proxy (maftia node --peer-addr),
// which forwards to i's listener. setCut closes them all and refuses new
// ones until healed; dropFwd / dropBack discard the bytes from j to i / from
// i to j while the streams stay open; delay slows every chunk.
type proxy struct {
	ln     net.Listener
	target string

	delay             atomic.Int64 // per forwarded chunk, both directions (a slow replica)
	dropFwd, dropBack atomic.Bool

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
	go func() { p.copy(u, c, &p.dropFwd); done <- struct{}{} }()
	go func() { p.copy(c, u, &p.dropBack); done <- struct{}{} }()
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
	mesh, admin string // mesh listener (the member address) and admin endpoint
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
	links    map[[2]int]*proxy // (j, i), j < i: the link j dials
	clients  int
	// net, if set, is the routed packet network (netem_test.go): each
	// replica in a namespace of its own, no proxies.
	net *packetNet
	// ttcbs, if set, are the TTCB modules of a hybrid cluster
	// (hybrid_test.go): module i serves replica i.
	ttcbs []*ttcbProc
}

// freeBase finds a block of free ports: base+i (member mesh address),
// base+1000+i (its client port), base+200+i (admin), and base+300+k for
// the proxy of each link, whose listeners it returns open.
func freeBase(t testing.TB, n int) (base int, links map[[2]int]net.Listener) {
	t.Helper()
	for try := 0; try < 50; try++ {
		base = 20000 + (os.Getpid()*7919+try*211+int(time.Now().UnixNano()/1e3))%30000
		var probes []net.Listener
		links = map[[2]int]net.Listener{}
		ok := true
		listen := func(port int) net.Listener {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				ok = false
			}
			return ln
		}
		for _, off := range []int{0, 200, 1000} {
			for i := 1; i <= n && ok; i++ {
				if ln := listen(base + off + i); ok {
					probes = append(probes, ln)
				}
			}
		}
		k := 0
		for j := 1; j <= n && ok; j++ {
			for i := j + 1; i <= n && ok; i++ {
				k++
				if ln := listen(base + 300 + k); ok {
					links[[2]int{j, i}] = ln
				}
			}
		}
		for _, ln := range probes {
			ln.Close()
		}
		if ok {
			return base, links
		}
		for _, ln := range links {
			ln.Close()
		}
	}
	t.Fatal("no free port block")
	return 0, nil
}

// newCluster writes keys for n replicas (and clients) and starts them;
// every mesh link passes through a proxy the test controls.
// attacks[i] is replica i+1's --attack (empty: correct). With pn, the
// replicas run in pn's namespaces instead, mesh links direct (no proxies).
func newCluster(t testing.TB, bin string, n, f, clients int, attacks []string, pn *packetNet) *cluster {
	t.Helper()
	return setupCluster(t, bin, n, f, clients, attacks, pn, false)
}

// setupCluster is newCluster; with hybrid, the cluster file says
// configuration: hybrid and one `maftia ttcb` process per replica runs
// before the replicas start (hybrid_test.go).
func setupCluster(t testing.TB, bin string, n, f, clients int, attacks []string, pn *packetNet, hybrid bool) *cluster {
	t.Helper()
	dir := t.TempDir()
	var hosts, admins []string
	c := &cluster{t: t, bin: bin, dir: dir, cfg: filepath.Join(dir, "keys", keys.ClusterFileName), clients: clients,
		links: map[[2]int]*proxy{}, net: pn}
	if pn != nil {
		for i := 1; i <= n; i++ { // one address per replica: the same ports everywhere
			hosts = append(hosts, pn.addr(i, meshPort))
			admins = append(admins, pn.addr(i, adminPort))
		}
	} else {
		base, lns := freeBase(t, n)
		for i := 1; i <= n; i++ {
			hosts = append(hosts, fmt.Sprintf("127.0.0.1:%d", base+i))
			admins = append(admins, fmt.Sprintf("127.0.0.1:%d", base+200+i))
		}
		for l, ln := range lns {
			c.links[l] = newProxy(ln, hosts[l[1]-1])
		}
	}
	t.Cleanup(c.shutdown)
	args := []string{"keygen", "--n", fmt.Sprint(n), "--f", fmt.Sprint(f), "--clients", fmt.Sprint(clients),
		"--hosts", strings.Join(hosts, ","), "--out", filepath.Join(dir, "keys")}
	if hybrid {
		args = append(args, "--configuration", "hybrid")
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	if hybrid {
		c.setupTTCB(n, f) // writes the modules' keys into the cluster file's hybrid section
	}
	if c.cluster, err = keys.LoadCluster(c.cfg); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		r := &replica{id: i, mesh: hosts[i-1], admin: admins[i-1],
			key: filepath.Join(dir, "keys", fmt.Sprintf("replica-%d.key", i)), data: filepath.Join(dir, fmt.Sprintf("data-%d", i)),
			logPath: filepath.Join(dir, fmt.Sprintf("replica-%d.log", i))}
		if i <= len(attacks) {
			r.attack = attacks[i-1]
		}
		c.replicas = append(c.replicas, r)
	}
	for i := range c.ttcbs {
		c.startTTCB(i + 1)
	}
	for i := 1; i <= n; i++ {
		c.start(i)
	}
	return c
}

// end is one replica's end of a link: the flags that drop what it
// receives and what it sends on that link.
type end struct {
	p           *proxy
	deaf, muted *atomic.Bool
}

// ends lists replica k's ends of its links.
func (c *cluster) ends(k int) []end {
	var out []end
	for l, p := range c.links {
		switch k {
		case l[1]: // k is dialled: j → k is forward
			out = append(out, end{p, &p.dropFwd, &p.dropBack})
		case l[0]:
			out = append(out, end{p, &p.dropBack, &p.dropFwd})
		}
	}
	return out
}

// link is the proxy between replicas a and b.
func (c *cluster) link(a, b int) *proxy { return c.links[[2]int{min(a, b), max(a, b)}] }

// isolate cuts (or heals) every link of replica k.
func (c *cluster) isolate(k int, cut bool) {
	for _, e := range c.ends(k) {
		e.p.setCut(cut)
	}
}

// drop discards (or again forwards) what flows from replica a to b,
// keeping the stream open.
func (c *cluster) drop(from, to int, on bool) {
	p := c.link(from, to)
	if from < to {
		p.dropFwd.Store(on)
	} else {
		p.dropBack.Store(on)
	}
}

// silence drops (on) what replica k receives (deaf) or sends (!deaf) on
// every link, streams kept open; clearing it resets k's streams.
func (c *cluster) silence(k int, deaf, on bool) {
	for _, e := range c.ends(k) {
		flag := e.muted
		if deaf {
			flag = e.deaf
		}
		flag.Store(on)
	}
	if !on {
		c.resetLinks(k)
	}
}

// slow delays every chunk on replica k's links by d (0: no delay).
func (c *cluster) slow(k int, d time.Duration) {
	for _, e := range c.ends(k) {
		e.p.delay.Store(int64(d))
	}
}

// resetLinks closes every stream of replica k (after dropped bytes have
// garbled them; they reconnect at once).
func (c *cluster) resetLinks(k int) {
	for _, e := range c.ends(k) {
		e.p.reset()
	}
}

func (c *cluster) shutdown() {
	for _, r := range c.replicas {
		if r.cmd != nil && r.cmd.Process != nil {
			r.cmd.Process.Signal(syscall.SIGCONT)
			r.cmd.Process.Kill()
			<-r.done
		}
	}
	for _, m := range c.ttcbs {
		if m.cmd != nil && m.cmd.Process != nil {
			m.cmd.Process.Kill()
			<-m.done
		}
	}
	if len(c.ttcbs) > 0 {
		os.RemoveAll(filepath.Dir(c.ttcbs[0].socket))
	}
	for _, p := range c.links {
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
		for _, m := range c.ttcbs {
			b, _ := os.ReadFile(m.logPath)
			if len(b) > 2000 {
				b = b[len(b)-2000:]
			}
			c.t.Logf("--- TTCB module %d log (tail) ---\n%s", m.id, b)
		}
	}
}

// start launches replica id (again, after kill) and waits until healthy.
func (c *cluster) start(id int) {
	c.t.Helper()
	r := c.replicas[id-1]
	args := []string{"node", "--config", c.cfg, "--key", r.key, "--data", r.data, "--admin", r.admin, "--log-level", logLevel()}
	for l, p := range c.links {
		if l[0] == id {
			args = append(args, "--peer-addr", fmt.Sprintf("%d=%s", l[1], p.ln.Addr()))
		}
	}
	if r.attack != "" {
		args = append(args, "--attack", r.attack)
	}
	if len(c.ttcbs) >= id {
		m := c.ttcbs[id-1]
		args = append(args, "--ttcb-socket", m.socket, "--ttcb-module-key", m.pubFile, "--ttcb-entity-key", m.entityKey)
	}
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.net != nil {
		r.cmd = c.net.wrap(id, c.bin, args)
	} else {
		r.cmd = exec.Command(c.bin, args...)
	}
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	orphanKill(r.cmd)
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

// logLevel is the replicas' --log-level: MAFTIA_CLUSTER_LOG_LEVEL or warn.
func logLevel() string {
	if v := os.Getenv("MAFTIA_CLUSTER_LOG_LEVEL"); v != "" {
		return v
	}
	return "warn"
}

// orphanKill makes the kernel SIGKILL cmd if the test process dies (a
// `go test -timeout` panic skips the cleanups that would stop it).
// Under nsenter (netem scenarios) the signal reaches nsenter only.
func orphanKill(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if cmd.SysProcAttr.Pdeathsig == 0 {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
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
