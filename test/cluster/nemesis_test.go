package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/maftia/maftia/apps/kv"
	"github.com/maftia/maftia/apps/kv/kvtest"
)

// nemesis is one fault scenario: attacks at start (Byzantine replicas),
// and a fault applied at one third of the run and healed at two thirds.
type nemesis struct {
	name    string
	rows    string // ATTACKS.md rows
	attacks []string
	inject  func(c *cluster)
	heal    func(c *cluster)
	// evidence: a correct replica's /status must name replica 4.
	evidence bool
	// check, if set, runs just before the heal: the fault really is in place.
	check func(c *cluster) error
	// target is the faulted correct replica, which must catch up after
	// the heal (0: none).
	target int
	// packet: the scenario runs on the routed packet network
	// (netem_test.go), each replica in a namespace of its own, and its
	// fault is netem (set on the target's interface, or on every replica's
	// when target is 0). Acknowledged operations are required during the
	// fault too: it is within f, or degrades every link without cutting one.
	packet bool
	netem  netemSpec
	// hybrid: the scenario runs on a hybrid cluster (hybrid_test.go): n=3,
	// f=1, one `maftia ttcb` module per replica. MAFTIA_CLUSTER_HYBRID
	// selects these scenarios (like MAFTIA_CLUSTER_NETEM).
	hybrid bool
	// resume: measure how soon after the heal the target executes a batch
	// again (required within resumeBound), as for packet faults.
	resume bool
}

var nemeses = []nemesis{
	{name: "kill-restart", rows: "1", target: 3,
		inject: func(c *cluster) { c.kill(3) },
		heal:   func(c *cluster) { c.start(3) }},
	{name: "pause", rows: "2", target: 2,
		inject: func(c *cluster) { c.signal(2, syscall.SIGSTOP) },
		heal:   func(c *cluster) { c.signal(2, syscall.SIGCONT) }},
	{name: "partition-4", rows: "3", target: 4,
		inject: func(c *cluster) { c.isolate(4, true) },
		check:  func(c *cluster) error { return c.expectDisconnected(4, 1, 2, 3) },
		heal:   func(c *cluster) { c.isolate(4, false) }},
	{name: "partition-1", rows: "3", target: 1,
		// Replica 1 dials all its peers (the lower ID dials the higher).
		inject: func(c *cluster) { c.isolate(1, true) },
		check:  func(c *cluster) error { return c.expectDisconnected(1, 2, 3, 4) },
		heal:   func(c *cluster) { c.isolate(1, false) }},
	{name: "cut-link-2-3", rows: "3", target: 3,
		// One link down, both ends still connected to the others.
		inject: func(c *cluster) { c.link(2, 3).setCut(true) },
		check:  func(c *cluster) error { return c.expectDisconnected(2, 3) },
		heal:   func(c *cluster) { c.link(2, 3).setCut(false) }},
	{name: "asym-link-2-to-3", rows: "3", target: 3,
		// 3 hears nothing from 2 on their link; 2 still hears 3.
		inject: func(c *cluster) { c.drop(2, 3, true) },
		heal:   func(c *cluster) { c.drop(2, 3, false); c.link(2, 3).reset() }},
	{name: "asym-deaf-4", rows: "3", target: 4,
		// Replica 4 hears nothing from its peers, which still hear it;
		// the streams stay open. Healing resets the (now garbled) streams.
		inject: func(c *cluster) { c.silence(4, true, true) },
		heal:   func(c *cluster) { c.silence(4, true, false) }},
	{name: "asym-mute-4", rows: "3", target: 4,
		// Replica 4 hears its peers, but nothing it sends reaches them.
		inject: func(c *cluster) { c.silence(4, false, true) },
		heal:   func(c *cluster) { c.silence(4, false, false) }},
	{name: "slow-4", rows: "2", target: 4,
		// Every chunk to and from replica 4 waits 20 ms on its links.
		inject: func(c *cluster) { c.slow(4, 20*time.Millisecond) },
		heal:   func(c *cluster) { c.slow(4, 0) }},
	{name: "byz-corrupt-state", rows: "6", attacks: []string{"", "", "", "corrupt-state"}},
	{name: "byz-invalid-shares", rows: "7", attacks: []string{"", "", "", "invalid-shares"}, evidence: true},

	// Packet faults (netem_test.go; MAFTIA_CLUSTER_NETEM selects them).
	{name: "netem-loss", rows: "3", packet: true,
		netem: netemSpec{loss: 0.15}},
	{name: "netem-delay-4", rows: "2", packet: true, target: 4,
		netem: netemSpec{delay: 100 * time.Millisecond, jitter: 50 * time.Millisecond}},
	{name: "netem-dup-reorder", rows: "3", packet: true,
		netem: netemSpec{delay: 20 * time.Millisecond, jitter: 10 * time.Millisecond, dup: 0.05, reorder: 0.25}},
	{name: "netem-mixed", rows: "3", packet: true,
		netem: netemSpec{delay: 50 * time.Millisecond, jitter: 20 * time.Millisecond, loss: 0.10, dup: 0.05, reorder: 0.25}},
	{name: "netem-isolate-4", rows: "3", packet: true, target: 4,
		netem: netemSpec{loss: 1},
		// Blackholed, its TCP streams stay open, so /status may still
		// say connected: check instead that it fell behind replica 1.
		check: func(c *cluster) error {
			if err := c.expectDisconnected(1, 4); err != nil {
				c.t.Logf("note: %v after the blackhole of replica 4 (streams stay open until a write times out)", err)
			}
			return c.expectBehind(4)
		}},
}

// The hybrid scenarios (n=3: the Byzantine or faulted replica is 3).
var hybridNemeses = []nemesis{
	{name: "hybrid-healthy", hybrid: true},
	{name: "hybrid-kill-restart", rows: "1", hybrid: true, target: 3,
		inject: func(c *cluster) { c.kill(3) },
		heal:   func(c *cluster) { c.start(3) }},
	{name: "hybrid-byz-equivocate", rows: "6", hybrid: true, attacks: []string{"", "", "equivocate"}, evidence: true},
	{name: "hybrid-byz-invalid-shares", rows: "7", hybrid: true, attacks: []string{"", "", "invalid-shares"}, evidence: true},
	{name: "hybrid-ttcb-crash", rows: "1", hybrid: true, target: 3, resume: true,
		// Host 3's TTCB module crashes (SIGKILL) and restarts from its
		// state file; replica 3 keeps running but cannot order while its
		// module is down. Replicas 1 and 2 (n−f) keep the service up.
		inject: func(c *cluster) { c.killTTCB(3) },
		check:  func(c *cluster) error { return c.ttcbDown(3) },
		heal:   func(c *cluster) { c.startTTCB(3) }},
	{name: "hybrid-ttcb-cut-3", rows: "3", hybrid: true, target: 3, resume: true,
		// Host 3's TTCB module is cut off the control network (iptables
		// drops its UDP both ways); module and replica keep running. The
		// module must withhold what it cannot vouch for (tainted or
		// unknown executions, ADR 0007) rather than answer "nobody
		// proposed"; replica 3 relays the others' results meanwhile.
		inject: func(c *cluster) { c.cutTTCB(3, true) },
		check: func(c *cluster) error {
			var sum float64
			for _, name := range []string{"maftia_ttcb_module_tainted_total", "maftia_ttcb_module_unvouched_total"} {
				v, err := c.ttcbCounter(3, name)
				if err != nil {
					return err
				}
				sum += v
			}
			if sum == 0 {
				resp, _ := http.Get("http://" + c.ttcbs[2].metrics + "/metrics")
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var keep []string
				for _, l := range strings.Split(string(b), "\n") {
					if strings.HasPrefix(l, "maftia_ttcb") {
						keep = append(keep, l)
					}
				}
				return fmt.Errorf("module 3 withheld nothing while cut off the control network: %s", strings.Join(keep, "; "))
			}
			return nil
		},
		heal: func(c *cluster) { c.cutTTCB(3, false) }},
	{name: "hybrid-partition-3", rows: "3", hybrid: true, target: 3,
		// The payload network of replica 3 is cut; the TTCB control
		// network (loopback UDP, no proxy) is not.
		inject: func(c *cluster) { c.isolate(3, true) },
		check:  func(c *cluster) error { return c.expectDisconnected(3, 1, 2) },
		heal:   func(c *cluster) { c.isolate(3, false) }},
}

// resumeBound: a replica healed from a packet fault executes a batch again
// within this (TCP retransmission backs off to a few seconds after a
// blackhole of a few seconds).
const resumeBound = 10 * time.Second

type row struct {
	name                  string
	acked, unknown        int
	before, during, after float64 // acknowledged ops/s in each third
	lin                   string
	lost                  int
	evidence              string
	catchUp               string
	rssGrowth             int64  // largest growth of another replica's RSS during the fault
	packets               string // packet scenarios: the router's counters during the fault
	note                  string // resume scenarios: when the target executed again
	violations            int
	elapsed               time.Duration
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// maftiaBinary builds cmd/maftia once per test process.
func maftiaBinary(t *testing.T) string {
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "maftia-cluster-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "maftia")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/maftia/maftia/cmd/maftia").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func scenarioDuration(t *testing.T) time.Duration {
	d := 18 * time.Second
	if s := os.Getenv("MAFTIA_CLUSTER_DURATION"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("MAFTIA_CLUSTER_DURATION: %v", err)
		}
		d = v
	}
	return min(max(d, 6*time.Second), 27*time.Second) // + start, final reads: ≤ 30 s a scenario
}

// TestNemesis runs every scenario on a fresh 4-replica cluster (n=4, f=1)
// and prints one table row per scenario. Select one with
// -run 'TestNemesis/partition'.
func TestNemesis(t *testing.T) {
	if os.Getenv("MAFTIA_CLUSTER") != "1" {
		t.Skip("cluster fault-injection tests run only with MAFTIA_CLUSTER=1 (they start 4 replica processes per scenario)")
	}
	bin := maftiaBinary(t)
	d := scenarioDuration(t)
	var rows []row
	for _, nm := range append(nemeses[:len(nemeses):len(nemeses)], hybridNemeses...) {
		if nm.packet && !netemSelected(nm.name) || nm.hybrid && !hybridSelected(nm.name) {
			continue
		}
		t.Run(nm.name, func(t *testing.T) {
			if nm.name == "hybrid-ttcb-cut-3" {
				if why := canCutTTCB(); why != "" {
					t.Skipf("cannot cut a TTCB module off its control network here (%s)", why)
				}
			}
			r := runScenario(t, bin, nm, d)
			rows = append(rows, r)
			if r.violations > 0 {
				t.Errorf("%s: %d violations (linearizability %s, %d lost acknowledged writes)", nm.name, r.violations, r.lin, r.lost)
			}
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "nemesis table (n=4, f=1; hybrid-*: n=3, f=1, 3 TTCB modules, Δ=%v; 4 clients on 3 keys + 1 unique-key writer, %v per scenario; ops/s acknowledged before / during / after the fault)\n", hybridDelta, d)
	fmt.Fprintf(&b, "%-26s %6s %7s %7s %7s %7s %-9s %5s %-8s %-8s %7s %5s %8s\n", "scenario", "acked", "unknown", "before", "during", "after", "porcupine", "lost", "evidence", "catch-up", "rssΔMiB", "viol", "elapsed")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-26s %6d %7d %7.1f %7.1f %7.1f %-9s %5d %-8s %-8s %7.1f %5d %8s\n", r.name, r.acked, r.unknown, r.before, r.during, r.after, r.lin, r.lost, r.evidence, r.catchUp, float64(r.rssGrowth)/(1<<20), r.violations, r.elapsed.Round(100*time.Millisecond))
	}
	for _, r := range rows {
		if r.packets != "" {
			fmt.Fprintf(&b, "%-26s during the fault: %s\n", r.name, r.packets)
		}
		if r.note != "" {
			fmt.Fprintf(&b, "%-26s %s\n", r.name, r.note)
		}
	}
	t.Log("\n" + b.String())
}

func runScenario(t *testing.T, bin string, nm nemesis, d time.Duration) row {
	start := time.Now()
	var pn *packetNet
	if nm.packet {
		pn = newPacketNet(t, 4) // skips the scenario where it cannot run
		nm.inject = func(c *cluster) { c.net.set(nm.target, nm.netem) }
		nm.heal = func(c *cluster) { c.net.set(nm.target, netemSpec{}) }
	}
	n := 4
	if nm.hybrid {
		n = 3
	}
	c := setupCluster(t, bin, n, 1, 6, nm.attacks, pn, nm.hybrid)
	c.waitMesh()
	if nm.hybrid {
		c.warmUp(c.dial(6), 20*time.Second) // until epoch 0 has passed and batches are ordered
	}
	var cs []kvtest.Submitter
	for id := 1; id <= 4; id++ {
		cs = append(cs, c.dial(id))
	}
	h := kvtest.NewHistory()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); kvtest.Run(ctx, h, cs, 3, 4*time.Second) }()

	// A fifth client writes unique keys u-<n>; every acknowledged one must
	// be readable at the end (S2: nothing acknowledged is lost).
	var acked []string
	go func() { defer wg.Done(); acked = writeUnique(ctx, c.dial(5)) }()

	third := d / 3
	t0 := h.Elapsed()
	time.Sleep(third)
	t1 := h.Elapsed()
	var pkts0 counts
	if pn != nil {
		pkts0 = pn.counts()
	}
	if nm.inject != nil {
		nm.inject(c)
	}
	rss0 := map[int]int64{}
	for id := 1; id <= n; id++ {
		if id != nm.target {
			rss0[id] = c.rss(id)
		}
	}
	time.Sleep(third - (h.Elapsed() - t1))
	if nm.check != nil {
		if err := nm.check(c); err != nil {
			t.Errorf("fault not in place: %v", err)
		}
	}
	t2 := h.Elapsed()
	r := row{name: nm.name}
	if pn != nil {
		// The fault was in place: the router applied it to packets.
		d := pn.counts().sub(pkts0)
		r.packets = d.String()
		if d.dropped+d.duplicated+d.delayed == 0 {
			t.Errorf("netem %s: no packet was faulted (%s)", nm.netem, d)
		}
	}
	for id, before := range rss0 {
		r.rssGrowth = max(r.rssGrowth, c.rss(id)-before)
	}
	// Packet faults on one replica: how soon after the heal it executes
	// again (its position moves past the one it had at the heal).
	resumed := make(chan time.Duration, 1)
	if (pn != nil || nm.resume) && nm.target != 0 {
		p0, err := c.position(nm.target)
		if err != nil {
			t.Errorf("position of replica %d at the heal: %v", nm.target, err)
		}
		healed := time.Now()
		go func() {
			for err == nil && time.Since(healed) < resumeBound {
				if p, e := c.position(nm.target); e == nil && p > p0 {
					resumed <- time.Since(healed)
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			resumed <- -1
		}()
	}
	if nm.heal != nil {
		nm.heal(c)
	}
	wg.Wait()
	t3 := h.Elapsed()

	// Final reads by a fresh client join the history.
	fc := c.dial(6)
	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer rcancel()
	for i := range 3 {
		if err := h.Read(rctx, 5, fc, fmt.Sprintf("k%d", i)); err != nil {
			t.Errorf("final read of k%d: %v", i, err)
		}
	}
	lost, err := lostWrites(rctx, fc, acked, t)
	if err != nil {
		t.Errorf("final range: %v", err)
	}
	lin, ok, unknown := h.Linearizable(30 * time.Second)
	rate := func(a, b time.Duration) float64 {
		n, _ := h.Window(a, b)
		if b <= a {
			return 0
		}
		return float64(n) / (b - a).Seconds()
	}
	r.acked, r.unknown, r.lin, r.lost = ok+len(acked), unknown, string(lin), lost
	r.before, r.during, r.after = rate(t0, t1), rate(t1, t2), rate(t2, t3)
	if lin != porcupine.Ok {
		r.violations++
	}
	r.violations += lost
	r.evidence = "-"
	if st, err := c.status(1); err == nil {
		r.evidence = fmt.Sprint(len(st.Evidence))
		if !nm.evidence && nm.attacks == nil && len(st.Evidence) != 0 {
			t.Errorf("evidence among correct replicas: %v", st.Evidence)
		}
		if nm.evidence && len(st.Evidence) == 0 {
			// An equivocating replica may send its tampered twin only to
			// the other correct replicas (half of its peers): look there.
			found := false
			for id := 2; id <= n; id++ {
				if id <= len(nm.attacks) && nm.attacks[id-1] != "" {
					continue
				}
				if st, err := c.status(id); err == nil && len(st.Evidence) > 0 {
					r.evidence += fmt.Sprintf(",r%d:%d", id, len(st.Evidence))
					found = true
				}
			}
			if !found {
				t.Errorf("no evidence at any correct replica against the Byzantine replica")
			}
		}
	}
	r.catchUp = "-"
	if nm.target != 0 {
		r.catchUp = catchUp(t, c, nm.target, fc)
	}
	// ATTACKS row 2: the others' memory stays bounded while one replica
	// is paused or slow (generous bound: the transport queues are bounded).
	if r.rssGrowth > 256<<20 {
		t.Errorf("a correct replica's RSS grew by %d MiB during the fault", r.rssGrowth>>20)
	}
	// Progress during a packet fault: it is within f or degrades every link
	// without cutting one, so operations are still acknowledged.
	if n, _ := h.Window(t1, t2); nm.packet && n == 0 {
		t.Errorf("no operation acknowledged during the packet fault (netem %s)", nm.netem)
	}
	// Progress after the fault is healed (liveness after restart/heal).
	if n, _ := h.Window(t2, t3); n == 0 {
		t.Errorf("no operation acknowledged after the fault was healed")
	}
	if ok < 10 {
		t.Errorf("only %d operations acknowledged: no progress", ok)
	}
	r.elapsed = time.Since(start)
	t.Logf("%s: %d acked, %d unknown, %.1f/%.1f/%.1f ops/s before/during/after, porcupine %s, %d lost acknowledged writes, evidence %s",
		nm.name, r.acked, r.unknown, r.before, r.during, r.after, r.lin, r.lost, r.evidence)
	if pn != nil {
		// How soon after the heal the first operation was acknowledged
		// (the bound checked above is the after third, d/3).
		first := "none"
		for x := 100 * time.Millisecond; t2+x <= t3+100*time.Millisecond; x += 100 * time.Millisecond {
			if n, _ := h.Window(t2, t2+x); n > 0 {
				first = "< " + x.String()
				break
			}
		}
		r.packets += ", first ack after the heal " + first
		if nm.target != 0 {
			if d := <-resumed; d < 0 {
				t.Errorf("replica %d did not execute a batch within %v of the heal", nm.target, resumeBound)
				r.packets += fmt.Sprintf(", replica %d not executing again within %v", nm.target, resumeBound)
			} else {
				r.packets += fmt.Sprintf(", replica %d executing again %v after the heal", nm.target, d.Round(100*time.Millisecond))
			}
		}
		t.Logf("%s: netem %s during the fault: %s", nm.name, nm.netem, r.packets)
	} else if nm.resume && nm.target != 0 {
		if d := <-resumed; d < 0 {
			t.Errorf("replica %d did not execute a batch within %v of the heal", nm.target, resumeBound)
			r.note = fmt.Sprintf("replica %d not executing again within %v of the heal", nm.target, resumeBound)
		} else {
			r.note = fmt.Sprintf("replica %d executing again %v after the heal", nm.target, d.Round(100*time.Millisecond))
		}
		t.Logf("%s: %s", nm.name, r.note)
	}
	return r
}

// warmUp writes one key until it is acknowledged (at most d).
func (c *cluster) warmUp(s kvtest.Submitter, d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		res, err := kv.Client{S: s}.Put(ctx, []byte("warm-up"), []byte("1"))
		cancel()
		if err == nil && res.Ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no write acknowledged within %v of the start (last error %v)", d, err)
		}
	}
}

// writeUnique puts keys u-000000, u-000001, ... until ctx ends (at most
// 10 000) and returns those acknowledged.
func writeUnique(ctx context.Context, s kvtest.Submitter) (acked []string) {
	w := kv.Client{S: s}
	for n := 0; ctx.Err() == nil && n < 10_000; n++ {
		k := fmt.Sprintf("u-%06d", n)
		octx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		res, err := w.Put(octx, []byte(k), []byte(k))
		cancel()
		if err == nil && res.Ok {
			acked = append(acked, k)
		}
	}
	return acked
}

// lostWrites reads every u- key with one range and counts the
// acknowledged ones missing or with another value (S2). If the range
// fails, every acknowledged write counts as lost.
func lostWrites(ctx context.Context, s kvtest.Submitter, acked []string, t testing.TB) (int, error) {
	res, err := kv.Client{S: s}.Range(ctx, []byte("u-"), []byte("u."), 0)
	if err != nil {
		return len(acked), err
	}
	if len(acked) > kv.MaxRangeLimit {
		t.Logf("note: %d unique writes, the range check covers the first %d", len(acked), kv.MaxRangeLimit)
		acked = acked[:kv.MaxRangeLimit]
	}
	have := map[string]bool{}
	for _, p := range res.Pairs {
		have[string(p.Key)] = string(p.Value) == string(p.Key)
	}
	lost := 0
	for _, k := range acked {
		if !have[k] {
			lost++
			if lost <= 5 {
				t.Logf("acknowledged write %s lost (S2)", k)
			}
		}
	}
	return lost, nil
}

// position is a replica's executed batch count (maftia_smr_position_batches).
func (c *cluster) position(id int) (float64, error) {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + c.replicas[id-1].admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "maftia_smr_position_batches "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("replica %d: no maftia_smr_position_batches in /metrics", id)
}

// catchUp waits (≤ 20 s, writing a key now and then so epochs move on)
// until the faulted replica has executed as many batches as replica 1 had
// when the wait began, and reports how long it took (liveness after a
// restart or heal, ATTACKS rows 1–3).
func catchUp(t *testing.T, c *cluster, id int, s kvtest.Submitter) string {
	want, err := c.position(1)
	if err != nil {
		t.Errorf("catch-up: %v", err)
		return "error"
	}
	start := time.Now()
	for i := 0; ; i++ {
		got, err := c.position(id)
		if err == nil && got >= want {
			return time.Since(start).Round(100 * time.Millisecond).String()
		}
		if time.Since(start) > 20*time.Second {
			t.Errorf("replica %d did not catch up: batch %v, replica 1 was at %v", id, got, want)
			return "no"
		}
		if i%4 == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			kv.Client{S: s}.Put(ctx, []byte("tick"), []byte(fmt.Sprint(i)))
			cancel()
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestMain removes the binary maftiaBinary built.
func TestMain(m *testing.M) {
	if addr := os.Getenv("MAFTIA_UDP_ECHO"); addr != "" {
		os.Exit(udpEcho(addr)) // TestPacketNetFaults' peer, inside a namespace
	}
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// expectBehind checks that replica k has executed fewer batches than
// replica 1 (it is cut off while the others go on).
func (c *cluster) expectBehind(k int) error {
	pk, err := c.position(k)
	if err != nil {
		return err
	}
	p1, err := c.position(1)
	if err != nil {
		return err
	}
	if pk >= p1 {
		return fmt.Errorf("replica %d at batch %v, not behind replica 1 at %v", k, pk, p1)
	}
	return nil
}

// expectDisconnected checks that replica k's transport reports each of
// peers disconnected.
func (c *cluster) expectDisconnected(k int, peers ...int) error {
	st, err := c.status(k)
	if err != nil {
		return err
	}
	for _, m := range st.Members {
		for _, p := range peers {
			if int(m.ID) == p && m.Connected {
				return fmt.Errorf("replica %d still connected to %d", k, p)
			}
		}
	}
	return nil
}
