package ttcb

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer collects a child's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Three TTCB modules as separate `maftia ttcb` processes on loopback: the
// control network on its own UDP ports, the local interface on Unix
// sockets. Entities on each host agree; a client pinning the wrong module
// key is refused; a module killed with SIGKILL and restarted rejoins with
// a new incarnation and re-serves what it had persisted, identically.
func TestProcessesThreeModules(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped under -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "maftia")
	build := exec.Command("go", "build", "-o", bin, "github.com/maftia/maftia/cmd/maftia")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	const n = 3
	ports := make([]string, n)
	for i := range ports {
		ports[i] = freeUDP(t)
	}
	ctl := map[[2]int][]byte{}
	for i := 1; i <= n; i++ {
		for j := i + 1; j <= n; j++ {
			k := make([]byte, 32)
			_, _ = rand.Read(k)
			ctl[[2]int{i, j}], ctl[[2]int{j, i}] = k, k
		}
	}
	modPubs := make([]ed25519.PublicKey, n)
	entPrivs := make([]ed25519.PrivateKey, n)
	cfgPaths := make([]string, n)
	for i := 1; i <= n; i++ {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		modPubs[i-1] = pub
		keyFile := filepath.Join(dir, fmt.Sprintf("m%d.key", i))
		if err := WritePrivateKey(keyFile, priv); err != nil {
			t.Fatal(err)
		}
		keys := map[uint32][]byte{}
		for j := 1; j <= n; j++ {
			if j != i {
				keys[uint32(j)] = ctl[[2]int{i, j}]
			}
		}
		ctlFile := filepath.Join(dir, fmt.Sprintf("m%d.ctl", i))
		if err := WriteControlKeys(ctlFile, keys); err != nil {
			t.Fatal(err)
		}
		epub, epriv, _ := ed25519.GenerateKey(rand.Reader)
		entPrivs[i-1] = epriv
		var mods strings.Builder
		for j := 1; j <= n; j++ {
			fmt.Fprintf(&mods, "  - {id: %d, control: %q}\n", j, ports[j-1])
		}
		yml := fmt.Sprintf(`id: %d
f: 1
socket: m%d.sock
state_file: m%d.state
key_file: m%d.key
control_keys_file: m%d.ctl
delta: 150ms
sync_period: 50ms
modules:
%sentities:
  - {id: %d, public_key: %s}
`, i, i, i, i, i, mods.String(), i, hex.EncodeToString(epub))
		cfgPaths[i-1] = filepath.Join(dir, fmt.Sprintf("m%d.yaml", i))
		if err := os.WriteFile(cfgPaths[i-1], []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	procs := make([]*exec.Cmd, n)
	logs := make([]*syncBuffer, n)
	startProc := func(i int) {
		logs[i] = &syncBuffer{}
		cmd := exec.Command(bin, "ttcb", "--config", cfgPaths[i])
		cmd.Stderr, cmd.Stdout = logs[i], logs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[i] = cmd
	}
	stopProc := func(i int, sig syscall.Signal) {
		if procs[i] == nil {
			return
		}
		_ = procs[i].Process.Signal(sig)
		done := make(chan error, 1)
		go func() { done <- procs[i].Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = procs[i].Process.Kill()
			<-done
		}
		procs[i] = nil
	}
	for i := range n {
		startProc(i)
	}
	t.Cleanup(func() {
		for i := range n {
			stopProc(i, syscall.SIGTERM)
		}
		if t.Failed() {
			for i := range n {
				t.Logf("module %d log:\n%s", i+1, logs[i].String())
			}
		}
	})
	ctx := ctxT(t, 50*time.Second)
	dial := func(i int) *Client {
		t.Helper()
		for range 400 {
			c, err := Dial(ctx, filepath.Join(dir, fmt.Sprintf("m%d.sock", i+1)), modPubs[i], EntityID(i+1), entPrivs[i])
			if err == nil {
				return c
			}
			time.Sleep(25 * time.Millisecond)
		}
		t.Fatalf("module %d never accepted entity %d", i+1, i+1)
		return nil
	}
	clients := make([]*Client, n)
	for i := range n {
		clients[i] = dial(i)
		defer func() { clients[i].Close() }()
	}
	// Wrong module key: refused.
	wrong, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := Dial(ctx, filepath.Join(dir, "m1.sock"), wrong, 1, entPrivs[0]); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("wrong module key: %v", err)
	}
	elist := []EntityID{1, 2, 3}
	agree := func() ([]TBAResult, []Tag, error) {
		now, err := clients[0].GetTimestamp(ctx)
		if err != nil {
			return nil, nil, err
		}
		tstart := now + uint64(300*time.Millisecond)
		res := make([]TBAResult, n)
		tags := make([]Tag, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, cl := range clients {
			wg.Go(func() {
				p, err := cl.Propose(ctx, elist, tstart, DecisionMajority, val(byte(1+i%2)))
				if err != nil {
					errs[i] = err
					return
				}
				tags[i] = p.Tag
				res[i], errs[i] = cl.Decide(ctx, p.Tag)
			})
		}
		wg.Wait()
		return res, tags, errors.Join(errs...)
	}
	var res []TBAResult
	var tags []Tag
	var err error
	for try := range 40 { // until all modules have joined (and synchrony held)
		if res, tags, err = agree(); err == nil {
			break
		}
		t.Logf("try %d: %v", try, err)
		time.Sleep(100 * time.Millisecond)
		for i := range n {
			if _, e := clients[i].GetTimestamp(ctx); e != nil {
				clients[i].Close()
				clients[i] = dial(i)
			}
		}
	}
	if err != nil {
		t.Fatalf("no agreement: %v", err)
	}
	for i := range n {
		if res[i].Unattested() != res[0].Unattested() {
			t.Fatalf("AGREEMENT VIOLATED: %+v vs %+v", res[i], res[0])
		}
	}
	if !res[0].Decided || res[0].Value != val(1) || res[0].ProposedOK != 0b101 || res[0].ProposedAny != 0b111 {
		t.Fatalf("result %+v", res[0])
	}
	// SIGKILL module 3, restart it: it comes back with a new incarnation
	// and re-serves its persisted result identically.
	clients[2].Close()
	stopProc(2, syscall.SIGKILL)
	startProc(2)
	clients[2] = dial(2)
	r, err := clients[2].TryDecide(ctx, tags[2])
	if err != nil || r.Unattested() != res[0].Unattested() {
		t.Fatalf("after SIGKILL+restart: %+v %v, want %+v", r, err, res[0])
	}
	if l := logs[2].String(); !strings.Contains(l, "incarnation=") || strings.Contains(l, "incarnation=1 ") {
		t.Fatalf("restarted module did not come back with a new incarnation:\n%s", l)
	}
}
