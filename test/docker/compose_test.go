package docker

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const containerUID = 10001 // USER in deploy/Dockerfile

func run(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func must(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, err := run(t, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// requireDocker skips unless MAFTIA_DOCKER=1 and docker, docker-compose
// and the daemon are available; it builds maftia:dev once per process and
// returns the repository root.
func requireDocker(t *testing.T) string {
	t.Helper()
	if os.Getenv("MAFTIA_DOCKER") != "1" {
		t.Skip("docker deployment tests run only with MAFTIA_DOCKER=1 (they build an image and start containers)")
	}
	for _, tool := range []string{"docker", "docker-compose"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("MAFTIA_DOCKER=1 but %s is not available: %v", tool, err)
		}
	}
	if out, err := run(t, nil, "docker", "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Skipf("MAFTIA_DOCKER=1 but the docker daemon is not reachable: %v\n%s", err, out)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	imageOnce.Do(func() {
		start := time.Now()
		imageOut, imageErr = run(t, nil, filepath.Join(root, "deploy", "build-image"), "maftia:dev")
		t.Logf("image maftia:dev built in %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(imageOut))
	})
	if imageErr != nil {
		t.Fatalf("deploy/build-image: %v\n%s", imageErr, imageOut)
	}
	return root
}

var (
	imageOnce sync.Once
	imageOut  string
	imageErr  error
)

// hostBinary builds cmd/maftia for the host (keygen, kv, ttcb-config).
func hostBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "maftia")
	must(t, nil, "go", "build", "-o", bin, "github.com/maftia/maftia/cmd/maftia")
	return bin
}

// composeDown always tears the project down (and shows logs on failure).
func composeDown(t *testing.T, env, compose []string) {
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := run(t, env, "docker-compose", append(compose, "logs", "--no-color", "--tail", "30")...)
			t.Logf("container logs:\n%s", out)
		}
		out, err := run(t, env, "docker-compose", append(compose, "down", "-v", "--remove-orphans", "-t", "3")...)
		if err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
}

// TestComposeAsyncCluster: image, keys, 4-replica compose cluster, a put
// and a get from the host, teardown (always, via t.Cleanup).
func TestComposeAsyncCluster(t *testing.T) {
	root := requireDocker(t)
	start := time.Now()
	dir := t.TempDir()
	bin := hostBinary(t, dir)

	// A subnet and host ports unlikely to collide with other runs; on a
	// collision anyway (a shared Docker host), try others.
	pid := os.Getpid()
	uid := containerUID
	if os.Getuid() != 0 {
		uid = os.Getuid() // cannot chown: run the containers as the caller
	}
	var (
		subnet, portPrefix, keysDir, project string
		addrs, env, compose                  []string
	)
	for try := 0; ; try++ {
		subnet = fmt.Sprintf("172.29.%d", 10+(pid+37*try)%200)
		portPrefix = fmt.Sprint(300 + (pid+13*try)%100) // client ports <prefix>0<i>, admin <prefix>1<i>
		var hosts []string
		addrs = nil
		for i := 1; i <= 4; i++ {
			hosts = append(hosts, fmt.Sprintf("%s.%d:7000", subnet, 10+i))
			addrs = append(addrs, fmt.Sprintf("127.0.0.1:%s0%d", portPrefix, i))
		}
		keysDir = filepath.Join(dir, fmt.Sprintf("keys-%d", try))
		must(t, nil, bin, "keygen", "--n", "4", "--f", "1", "--clients", "1", "--hosts", strings.Join(hosts, ","), "--out", keysDir)
		dataDir := filepath.Join(dir, fmt.Sprintf("data-%d", try))
		for i := 1; i <= 4; i++ {
			d := filepath.Join(dataDir, fmt.Sprint(i))
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{d, filepath.Join(keysDir, fmt.Sprintf("replica-%d.key", i))} {
				if err := os.Chown(p, uid, uid); err != nil && os.Getuid() == 0 {
					t.Fatal(err)
				}
			}
		}
		project = fmt.Sprintf("maftiatest%dt%d", pid, try)
		env = []string{"MAFTIA_KEYS=" + keysDir, "MAFTIA_DATA=" + dataDir, "MAFTIA_SUBNET_PREFIX=" + subnet,
			"MAFTIA_PORT_PREFIX=" + portPrefix, fmt.Sprintf("MAFTIA_UID=%d", uid), fmt.Sprintf("MAFTIA_GID=%d", uid)}
		compose = []string{"-f", filepath.Join(root, "deploy", "compose-async.yml"), "-p", project}
		composeDown(t, env, compose)
		out, err := run(t, env, "docker-compose", append(compose, "up", "-d")...)
		if err == nil {
			break
		}
		collision := strings.Contains(out, "overlap") || strings.Contains(out, "already allocated") || strings.Contains(out, "address already in use")
		if !collision || try == 2 {
			t.Fatalf("docker-compose up: %v\n%s", err, out)
		}
		t.Logf("subnet %s.0/24 or ports %s0x taken, trying others: %s", subnet, portPrefix, strings.TrimSpace(out))
		run(t, env, "docker-compose", append(compose, "down", "-v", "--remove-orphans", "-t", "1")...)
	}
	t.Logf("compose project %s up (subnet %s.0/24, client ports %s)", project, subnet, strings.Join(addrs, ","))

	kv := func(args ...string) (string, error) {
		base := []string{"kv", "--config", filepath.Join(keysDir, "cluster.yaml"), "--key", filepath.Join(keysDir, "client-1.key"),
			"--addresses", strings.Join(addrs, ","), "--timeout", "10s"}
		return run(t, nil, bin, append(base, args...)...)
	}
	// The first operation waits for the mesh (diallers back off up to 5 s).
	firstPut(t, kv, "hello-from-the-host")
	// The admin endpoint is published on loopback only and shows no
	// evidence among the four correct replicas.
	noEvidence(t, portPrefix)

	// Docker nemeses, one fault at a time (f = 1): replica 4's container
	// SIGKILLed, then replica 3 disconnected from the mesh network; the
	// service answers during each fault and after it is healed.
	service := func(name string) string {
		return strings.TrimSpace(must(t, env, "docker-compose", append(compose, "ps", "-q", name)...))
	}
	network := project + "_mesh"
	must(t, env, "docker-compose", append(compose, "kill", "replica4")...)
	putGet(t, kv, "during-kill", "v1")
	must(t, env, "docker-compose", append(compose, "start", "replica4")...)
	putGet(t, kv, "after-kill", "v2")
	r3 := service("replica3")
	must(t, nil, "docker", "network", "disconnect", network, r3)
	// In place: the container has no network left. (Replica 1's /status
	// may still call 3 connected for a while: a blackholed peer sends no
	// RST, and the transport only notices when a write times out.)
	if n := strings.TrimSpace(must(t, nil, "docker", "inspect", "-f", "{{len .NetworkSettings.Networks}}", r3)); n != "0" {
		t.Fatalf("replica 3 still on %s networks after disconnect", n)
	}
	putGet(t, kv, "during-partition", "v3")
	must(t, nil, "docker", "network", "connect", "--ip", subnet+".13", network, r3)
	putGet(t, kv, "after-partition", "v4")
	for k, v := range map[string]string{"greeting": "hello-from-the-host", "during-kill": "v1", "during-partition": "v3"} {
		getValue(t, kv, k, v)
	}
	t.Logf("put/get answered with replica 4 killed, after its restart, with replica 3 partitioned and after the heal")
	t.Logf("4-replica compose cluster served put/get from the host in %v", time.Since(start).Round(time.Millisecond))
}

// kvFunc runs one maftia kv command against the cluster.
type kvFunc func(...string) (string, error)

// retryKV runs a kv command, retrying for up to 60 s (connections to a
// replica that just failed or came back are re-established).
func retryKV(t *testing.T, kv kvFunc, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := kv(args...)
		if err == nil {
			return strings.TrimSpace(out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("maftia kv %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		time.Sleep(time.Second)
	}
}

// getValue reads key and checks its value.
// firstPut puts greeting=value, retrying for up to 90 s while the
// cluster comes up, and reads it back.
func firstPut(t *testing.T, kv kvFunc, value string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err := kv("put", "greeting", value)
		if err == nil {
			t.Logf("put: %s", strings.TrimSpace(out))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("maftia kv put against the compose cluster: %v\n%s", err, out)
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("get: %s", getValue(t, kv, "greeting", value))
}

// noEvidence checks replica 1's admin /status (published on loopback)
// names no replica.
func noEvidence(t *testing.T, portPrefix string) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%s11/status", portPrefix))
	if err != nil {
		t.Fatalf("admin /status: %v", err)
	}
	var st struct {
		Evidence map[string]any `json:"evidence"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("admin /status: %v", err)
	}
	if len(st.Evidence) != 0 {
		t.Errorf("evidence among correct replicas: %v", st.Evidence)
	}
}

func getValue(t *testing.T, kv kvFunc, key, want string) string {
	t.Helper()
	out := retryKV(t, kv, "get", key)
	var got struct {
		Found bool    `json:"found"`
		Value *string `json:"value"`
	}
	if err := json.Unmarshal([]byte(out[strings.LastIndex(out, "\n")+1:]), &got); err != nil {
		t.Fatalf("get output %q: %v", out, err)
	}
	if !got.Found || got.Value == nil || *got.Value != want {
		t.Fatalf("get %s = %s, want %s", key, out, want)
	}
	return out
}

func putGet(t *testing.T, kv kvFunc, key, value string) {
	t.Helper()
	retryKV(t, kv, "put", key, value)
	getValue(t, kv, key, value)
}

// TestComposeHybridCluster: the hybrid compose file end to end — keys
// (keygen --configuration hybrid), the TTCB side (deploy/ttcb-config, Δ =
// 100 ms, module keys appended to cluster.yaml), 3 TTCB modules on their
// internal control network and 3 replicas on the payload network; put/get
// from the host, then host 3's TTCB container SIGKILLed (put/get during)
// and started again (put/get after); teardown always.
func TestComposeHybridCluster(t *testing.T) {
	root := requireDocker(t)
	start := time.Now()
	dir := t.TempDir()
	bin := hostBinary(t, dir)
	pid := os.Getpid()
	uid := containerUID
	if os.Getuid() != 0 {
		uid = os.Getuid() // cannot chown: run the containers as the caller
	}
	var (
		ctlNet, payload, portPrefix, keysDir, project string
		addrs, env, compose                           []string
	)
	for try := 0; ; try++ {
		ctlNet = fmt.Sprintf("172.30.%d", 10+(pid+37*try)%200)
		payload = fmt.Sprintf("172.31.%d", 10+(pid+37*try)%200)
		portPrefix = fmt.Sprint(400 + (pid+13*try)%100)
		var hosts []string
		addrs = nil
		for i := 1; i <= 3; i++ {
			hosts = append(hosts, fmt.Sprintf("%s.%d:7000", payload, 10+i))
			addrs = append(addrs, fmt.Sprintf("127.0.0.1:%s0%d", portPrefix, i))
		}
		keysDir = filepath.Join(dir, fmt.Sprintf("keys-%d", try))
		must(t, nil, bin, "keygen", "--configuration", "hybrid", "--n", "3", "--f", "1", "--clients", "1",
			"--hosts", strings.Join(hosts, ","), "--hybrid-start", "15s", "--out", keysDir)
		ttcbDir := filepath.Join(dir, fmt.Sprintf("ttcb-%d", try))
		must(t, []string{"MAFTIA_TTCB_DELTA=100ms"}, filepath.Join(root, "deploy", "ttcb-config"), bin, ttcbDir, "3", "1", ctlNet,
			filepath.Join(keysDir, "cluster.yaml"))
		dataDir := filepath.Join(dir, fmt.Sprintf("data-%d", try))
		for i := 1; i <= 3; i++ {
			if err := os.MkdirAll(filepath.Join(dataDir, fmt.Sprint(i)), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		if os.Getuid() == 0 {
			owner := fmt.Sprintf("%d:%d", uid, uid)
			must(t, nil, "chown", "-R", owner, ttcbDir, dataDir)
			for i := 1; i <= 3; i++ {
				must(t, nil, "chown", owner, filepath.Join(keysDir, fmt.Sprintf("replica-%d.key", i)))
			}
		}
		project = fmt.Sprintf("maftiahybrid%dt%d", pid, try)
		env = []string{"MAFTIA_KEYS=" + keysDir, "MAFTIA_TTCB=" + ttcbDir, "MAFTIA_DATA=" + dataDir,
			"MAFTIA_TTCB_SUBNET_PREFIX=" + ctlNet, "MAFTIA_SUBNET_PREFIX=" + payload, "MAFTIA_PORT_PREFIX=" + portPrefix,
			fmt.Sprintf("MAFTIA_UID=%d", uid), fmt.Sprintf("MAFTIA_GID=%d", uid)}
		compose = []string{"-f", filepath.Join(root, "deploy", "compose-hybrid.yml"), "-p", project}
		composeDown(t, env, compose)
		out, err := run(t, env, "docker-compose", append(compose, "up", "-d")...)
		if err == nil {
			break
		}
		collision := strings.Contains(out, "overlap") || strings.Contains(out, "already allocated") || strings.Contains(out, "address already in use")
		if !collision || try == 2 {
			t.Fatalf("docker-compose up: %v\n%s", err, out)
		}
		t.Logf("subnets %s/%s or ports %s0x taken, trying others: %s", ctlNet, payload, portPrefix, strings.TrimSpace(out))
		run(t, env, "docker-compose", append(compose, "down", "-v", "--remove-orphans", "-t", "1")...)
	}
	t.Logf("compose project %s up (control %s.0/24, payload %s.0/24, client ports %s)", project, ctlNet, payload, strings.Join(addrs, ","))
	if v := strings.TrimSpace(must(t, nil, "docker", "network", "inspect", "-f", "{{.Internal}}", project+"_control")); v != "true" {
		t.Errorf("control network internal = %s, want true", v)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		logs := must(t, env, "docker-compose", append(compose, "logs", "--no-color", "ttcb1", "ttcb2", "ttcb3")...)
		if strings.Count(logs, "ttcb module joined") >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("3 TTCB modules did not join within 60 s")
		}
		time.Sleep(time.Second)
	}

	kv := func(args ...string) (string, error) {
		base := []string{"kv", "--config", filepath.Join(keysDir, "cluster.yaml"), "--key", filepath.Join(keysDir, "client-1.key"),
			"--addresses", strings.Join(addrs, ","), "--timeout", "10s"}
		return run(t, nil, bin, append(base, args...)...)
	}
	// The first put waits for the schedule's epoch 0 and the mesh.
	firstPut(t, kv, "hello-hybrid")
	noEvidence(t, portPrefix)

	// Host 3's TTCB module crashes: replicas 1 and 2 (n−f) keep answering.
	must(t, env, "docker-compose", append(compose, "kill", "ttcb3")...)
	putGet(t, kv, "during-ttcb-crash", "v1")
	must(t, env, "docker-compose", append(compose, "start", "ttcb3")...)
	putGet(t, kv, "after-ttcb-restart", "v2")
	getValue(t, kv, "greeting", "hello-hybrid")
	getValue(t, kv, "during-ttcb-crash", "v1")
	for i := 1; i <= 3; i++ {
		t.Logf("replica %d: %s", i, position(fmt.Sprintf("127.0.0.1:%s1%d", portPrefix, i)))
	}
	t.Logf("3-replica hybrid compose cluster served put/get from the host (also with TTCB module 3 killed and after its restart) in %v",
		time.Since(start).Round(time.Millisecond))
}

// position reads maftia_smr_position_batches from an admin endpoint.
func position(admin string) string {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + admin + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "maftia_smr_position_batches ") {
			return line
		}
	}
	return "no maftia_smr_position_batches"
}
