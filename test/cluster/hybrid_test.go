package cluster

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maftia/maftia/crypto/keys"
)

// The hybrid configuration as processes (issue 9, ADR 0006): n `maftia
// ttcb` modules, one per host, with their UDP control network on loopback
// (outside the mesh proxies: the wormhole's control network is a separate
// network, which payload partitions do not touch), and n `maftia node`
// replicas, replica i using module i's Unix socket.

// hybridDelta is the modules' Δ: this shared 2-core machine stalls for
// tens of milliseconds (up to ~190 ms measured, ADR 0006), and a stall
// longer than the bound is a timing failure that withholds a result.
const hybridDelta = 100 * time.Millisecond

// hybridStartIn is how far after the modules are configured epoch 0 of
// the schedule lies (the replicas start within it).
const hybridStartIn = 2 * time.Second

// ttcbProc is one `maftia ttcb` process (restartable with its state file).
type ttcbProc struct {
	id                           int
	config, socket, logPath      string
	pubFile, entityKey, stateDir string
	control, metrics             string // UDP control address; /metrics address (maftia ttcb --metrics)

	cmd  *exec.Cmd
	done chan struct{}
}

// setupTTCB writes n module configurations (module keys and entity keys
// by `maftia ttcb keygen`, pairwise control keys, free loopback UDP
// control ports, Δ = hybridDelta) and puts the schedule — start
// hybridStartIn from now, tba = (f+2)·Δ + 40 ms, the modules' public keys —
// into the cluster file's hybrid section.
func (c *cluster) setupTTCB(n, f int) {
	t := c.t
	t.Helper()
	// Unix socket paths are limited to 108 bytes: a short directory.
	sockDir, err := os.MkdirTemp("", "mttcb")
	if err != nil {
		t.Fatal(err)
	}
	ctl := make([]string, n)
	for i := range ctl {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		ctl[i] = u.LocalAddr().String()
		u.Close()
	}
	pair := map[[2]int]string{}
	for i := 1; i <= n; i++ {
		for j := i + 1; j <= n; j++ {
			k, err := randomHex(32)
			if err != nil {
				t.Fatal(err)
			}
			pair[[2]int{i, j}], pair[[2]int{j, i}] = k, k
		}
	}
	keygen := func(out string) string {
		b, err := exec.Command(c.bin, "ttcb", "keygen", "--out", out).Output()
		if err != nil {
			t.Fatalf("maftia ttcb keygen: %v", err)
		}
		return strings.TrimSpace(string(b))
	}
	var modules []string
	for i := 1; i <= n; i++ {
		d := filepath.Join(c.dir, fmt.Sprintf("ttcb-%d", i))
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		m := &ttcbProc{id: i, config: filepath.Join(d, "ttcb.yaml"), socket: filepath.Join(sockDir, fmt.Sprintf("%d.sock", i)),
			logPath: filepath.Join(c.dir, fmt.Sprintf("ttcb-%d.log", i)), pubFile: filepath.Join(d, "module.pub"),
			entityKey: filepath.Join(d, "entity.key"), stateDir: d, control: ctl[i-1], metrics: freeTCP(t)}
		mpub := keygen(filepath.Join(d, "module.key"))
		epub := keygen(m.entityKey)
		modules = append(modules, mpub)
		if err := os.WriteFile(m.pubFile, []byte(mpub+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		var keysFile, yml strings.Builder
		for j := 1; j <= n; j++ {
			if j != i {
				fmt.Fprintf(&keysFile, "%d %s\n", j, pair[[2]int{i, j}])
			}
		}
		if err := os.WriteFile(filepath.Join(d, "control.keys"), []byte(keysFile.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&yml, "id: %d\nf: %d\nsocket: %s\nstate_file: state\nkey_file: module.key\ncontrol_keys_file: control.keys\ndelta: %v\nmodules:\n",
			i, f, m.socket, hybridDelta)
		for j := 1; j <= n; j++ {
			fmt.Fprintf(&yml, "  - {id: %d, control: %q}\n", j, ctl[j-1])
		}
		fmt.Fprintf(&yml, "entities:\n  - {id: %d, public_key: %s}\n", i, epub)
		if err := os.WriteFile(m.config, []byte(yml.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		c.ttcbs = append(c.ttcbs, m)
	}
	cl, err := keys.LoadCluster(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Hybrid == nil {
		t.Fatal("keygen --configuration hybrid wrote no hybrid section")
	}
	cl.Hybrid.Start = time.Now().Add(hybridStartIn).UTC().Truncate(time.Millisecond)
	cl.Hybrid.TBA = time.Duration(f+2)*hybridDelta + 40*time.Millisecond
	cl.Hybrid.Modules = nil
	for _, s := range modules {
		k, err := decodeKey(s)
		if err != nil {
			t.Fatal(err)
		}
		cl.Hybrid.Modules = append(cl.Hybrid.Modules, k)
	}
	b, err := keys.MarshalCluster(cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startTTCB launches module id (again, after killTTCB: same state file,
// a new incarnation) and waits for its socket.
func (c *cluster) startTTCB(id int) {
	c.t.Helper()
	m := c.ttcbs[id-1]
	os.Remove(m.socket) // a SIGKILLed module leaves its socket file behind
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	m.cmd = exec.Command(c.bin, "ttcb", "--config", m.config, "--metrics", m.metrics)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	orphanKill(m.cmd)
	if err := m.cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatal(err)
	}
	m.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); logf.Close(); close(done) }(m.cmd, m.done)
	c.waitFor(fmt.Sprintf("TTCB module %d socket", id), 10*time.Second, func() bool {
		_, err := os.Stat(m.socket)
		return err == nil
	})
}

// killTTCB SIGKILLs module id and waits for it to exit.
func (c *cluster) killTTCB(id int) {
	m := c.ttcbs[id-1]
	m.cmd.Process.Kill()
	<-m.done
}

// ttcbDown checks that module id is not answering on its socket.
func (c *cluster) ttcbDown(id int) error {
	conn, err := net.Dial("unix", c.ttcbs[id-1].socket)
	if err == nil {
		conn.Close()
		return fmt.Errorf("TTCB module %d still accepts connections", id)
	}
	return nil
}

// freeTCP returns a free loopback TCP address.
func freeTCP(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// cutTTCB cuts module id off the TTCB control network (on) or heals it:
// iptables drops every loopback UDP datagram to or from its control port.
// The module and its replica keep running; the payload network is intact.
func (c *cluster) cutTTCB(id int, on bool) {
	c.t.Helper()
	_, port, err := net.SplitHostPort(c.ttcbs[id-1].control)
	if err != nil {
		c.t.Fatal(err)
	}
	op := "-I"
	if !on {
		op = "-D"
	}
	for _, dir := range []string{"--dport", "--sport"} {
		if out, err := exec.Command("iptables", op, "OUTPUT", "-o", "lo", "-p", "udp", dir, port, "-j", "DROP").CombinedOutput(); err != nil {
			c.t.Errorf("iptables %s OUTPUT %s %s: %v: %s", op, dir, port, err, out)
		}
	}
}

// canCutTTCB reports why cutTTCB cannot work here ("" if it can).
func canCutTTCB() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	if err := exec.Command("iptables", "-S", "OUTPUT").Run(); err != nil {
		return fmt.Sprintf("iptables unusable: %v", err)
	}
	return ""
}

// ttcbCounter reads one counter of module id's /metrics.
func (c *cluster) ttcbCounter(id int, name string) (float64, error) {
	resp, err := http.Get("http://" + c.ttcbs[id-1].metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("module %d: no %s in /metrics", id, name)
}

func hybridSelected(name string) bool {
	return selected(os.Getenv("MAFTIA_CLUSTER_HYBRID"), name)
}

// selected reads a scenario selection: "" or all (every scenario), none,
// or a comma-separated list of names.
func selected(v, name string) bool {
	switch v {
	case "", "all":
		return true
	case "none", "0", "off":
		return false
	}
	for _, s := range strings.Split(v, ",") {
		if strings.TrimSpace(s) == name {
			return true
		}
	}
	return false
}

// TestHybridSetup: the TTCB configuration the harness writes is one that
// `maftia node` accepts — the cluster file loads with the modules' keys,
// the schedule's tba covers (f+2)·Δ (no processes are started).
func TestHybridSetup(t *testing.T) {
	if os.Getenv("MAFTIA_CLUSTER") != "1" {
		t.Skip("runs only with MAFTIA_CLUSTER=1 (builds cmd/maftia)")
	}
	bin := maftiaBinary(t)
	c := &cluster{t: t, bin: bin, dir: t.TempDir()}
	c.cfg = filepath.Join(c.dir, "keys", keys.ClusterFileName)
	out, err := exec.Command(bin, "keygen", "--n", "3", "--f", "1", "--configuration", "hybrid", "--out", filepath.Join(c.dir, "keys")).CombinedOutput()
	if err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	c.setupTTCB(3, 1)
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(c.ttcbs[0].socket)) })
	cl, err := keys.LoadCluster(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Configuration != keys.Hybrid || len(cl.Hybrid.Modules) != 3 {
		t.Fatalf("configuration %s, %d module keys", cl.Configuration, len(cl.Hybrid.Modules))
	}
	if cl.Hybrid.TBA < 3*hybridDelta {
		t.Errorf("tba %v < (f+2)·Δ", cl.Hybrid.TBA)
	}
	for _, m := range c.ttcbs {
		b, err := os.ReadFile(m.config)
		if err != nil || !strings.Contains(string(b), "delta: 100ms") {
			t.Errorf("module %d config: %v\n%s", m.id, err, b)
		}
	}
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func decodeKey(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("maftia ttcb keygen printed %q, not a hex Ed25519 public key", s)
	}
	return ed25519.PublicKey(b), nil
}
