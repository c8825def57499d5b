package cluster

// Packet-level faults (ATTACKS.md row 3 at the IP level, issue #10 item 2):
// drop, delay with jitter, duplicate and reorder IP packets, with the knobs
// of `tc qdisc ... netem`.
//
// Topology. Every replica runs in a network namespace of its own (held open
// by a `sleep` child created with CLONE_NEWNET, so nothing outlives the
// test) whose only interface besides lo is a TUN device, tunR, with address
// P.R/24 (P a private 10.x.y prefix free on this host). The test process
// has one more TUN device, P.254/24, in its own namespace, for the clients
// and the admin endpoints. The test process holds the file descriptor of
// every TUN device and is the router between them: a packet read from one
// device is written to the device of its destination address, after the
// fault of the packet's interface is applied — lost, duplicated, delayed
// by delay ± jitter (uniformly), or, with probability reorder, sent at once
// ahead of the delayed ones (netem's reorder). A packet is subject to the
// fault of its source replica's interface if that has one, else to its
// destination's: each packet at most once, as with netem on both ends of one
// replica's link. The admin endpoints (TCP port 9000), through which the
// test observes the replicas, are a management network the faults spare.
// Non-persistent TUN devices disappear when the test closes
// them, and the namespaces when their last process exits.
//
// Why not tc netem itself: this kernel has no sch_netem (CONFIG_NET_SCH_NETEM
// is not set, `tc qdisc add ... netem` answers "Specified qdisc kind is
// unknown"); the router gives the same faults on any kernel with TUN and
// network namespaces, and its counters show that the fault was in place.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// netemSpec is one interface's packet fault, as netem's parameters.
type netemSpec struct {
	delay, jitter      time.Duration
	loss, dup, reorder float64 // probabilities in [0, 1]
}

// String is the equivalent tc netem argument list.
func (s netemSpec) String() string {
	var b []string
	if s.delay > 0 {
		d := "delay " + s.delay.String()
		if s.jitter > 0 {
			d += " " + s.jitter.String()
		}
		b = append(b, d)
	}
	pct := func(name string, p float64) {
		if p > 0 {
			b = append(b, fmt.Sprintf("%s %g%%", name, p*100))
		}
	}
	pct("loss", s.loss)
	pct("duplicate", s.dup)
	pct("reorder", s.reorder)
	return strings.Join(b, " ")
}

// lag draws one packet's delay: 0 for the reorder fraction, else
// delay ± jitter (uniform), never negative.
func (s netemSpec) lag() time.Duration {
	if s.delay <= 0 || (s.reorder > 0 && rand.Float64() < s.reorder) {
		return 0
	}
	d := s.delay
	if s.jitter > 0 {
		d += time.Duration((rand.Float64()*2 - 1) * float64(s.jitter))
	}
	return max(d, 0)
}

// packetNet is the routed TUN network of one cluster.
type packetNet struct {
	t      testing.TB
	prefix string // "10.a.b."
	pfx    [3]byte
	tuns   []*os.File // [0]: the test process (.254); [i]: replica i (.i)
	ns     []*exec.Cmd
	policy []atomic.Pointer[netemSpec] // [i]: replica i's interface (0 unused)
	closed atomic.Bool
	wg     sync.WaitGroup

	forwarded, dropped, duplicated, delayed atomic.Int64
}

const (
	hostOctet = 254
	meshPort  = 7000 // every replica's member address port (client port 8000)
	adminPort = 9000 // spared by the faults
)

// netemSupport reports why packet faults cannot run here (nil: they can).
func netemSupport() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (CAP_NET_ADMIN) for TUN devices and network namespaces")
	}
	for _, tool := range []string{"ip", "nsenter", "sleep"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("needs %s: %v", tool, err)
		}
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("needs /dev/net/tun: %v", err)
	}
	f.Close()
	return nil
}

// openTUN creates a non-persistent TUN device (IFF_TUN|IFF_NO_PI) in the
// caller's namespace; it disappears when the returned file is closed.
func openTUN(name string) (*os.File, error) {
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var ifr [40]byte // struct ifreq
	copy(ifr[:15], name)
	*(*uint16)(unsafe.Pointer(&ifr[16])) = 0x0001 | 0x1000 // IFF_TUN | IFF_NO_PI
	const tunSetIff = 0x400454ca
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetIff, uintptr(unsafe.Pointer(&ifr[0]))); e != 0 {
		syscall.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, e)
	}
	if err := syscall.SetNonblock(fd, true); err != nil { // pollable: Close unblocks Read
		syscall.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// freePrefix picks a 10.a.b.0/24 that no address or route on this host
// mentions.
func freePrefix() (string, error) {
	out, err := exec.Command("sh", "-c", "ip -4 addr show; ip -4 route show table all").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ip: %v: %s", err, out)
	}
	for try := 0; try < 100; try++ {
		v := os.Getpid()*31 + int(time.Now().UnixNano()/1e3) + try*977
		p := fmt.Sprintf("10.%d.%d.", 200+v%50, (v/50)%250+1)
		if !strings.Contains(string(out), p) && !strings.Contains(string(out), "10.0.0.0/8") {
			return p, nil
		}
	}
	return "", errors.New("no free 10.x.y.0/24 prefix")
}

// newPacketNet builds the namespaces and TUN devices of n replicas and
// starts routing; the test's cleanup tears everything down. It skips the
// test when the machine cannot do it.
func newPacketNet(t testing.TB, n int) *packetNet {
	t.Helper()
	if err := netemSupport(); err != nil {
		t.Skipf("packet faults (netem scenarios) skipped: %v", err)
	}
	prefix, err := freePrefix()
	if err != nil {
		t.Fatal(err)
	}
	p := &packetNet{t: t, prefix: prefix, tuns: make([]*os.File, n+1), ns: make([]*exec.Cmd, n+1),
		policy: make([]atomic.Pointer[netemSpec], n+1)}
	fmt.Sscanf(prefix, "%d.%d.%d.", &p.pfx[0], &p.pfx[1], &p.pfx[2])
	t.Cleanup(p.close)
	tag := os.Getpid() % 100000
	fail := func(err error) {
		t.Helper()
		t.Fatalf("packet network: %v", err)
	}
	host := fmt.Sprintf("mft%dh", tag)
	if p.tuns[0], err = openTUN(host); err != nil {
		fail(err)
	}
	for _, cmd := range [][]string{
		{"ip", "addr", "add", prefix + fmt.Sprint(hostOctet) + "/24", "dev", host},
		{"ip", "link", "set", host, "up"},
	} {
		if err := run(cmd...); err != nil {
			fail(err)
		}
	}
	for i := 1; i <= n; i++ {
		ns := exec.Command("sleep", "infinity")
		ns.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
		if err := ns.Start(); err != nil {
			fail(fmt.Errorf("namespace of replica %d: %v", i, err))
		}
		p.ns[i] = ns
		pid := fmt.Sprint(ns.Process.Pid)
		name := fmt.Sprintf("mft%dr%d", tag, i)
		if p.tuns[i], err = openTUN(name); err != nil {
			fail(err)
		}
		in := []string{"nsenter", "-t", pid, "-n", "--"}
		for _, cmd := range [][]string{
			{"ip", "link", "set", name, "netns", pid},
			append(in, "ip", "link", "set", "lo", "up"),
			append(in, "ip", "addr", "add", prefix+fmt.Sprint(i)+"/24", "dev", name),
			append(in, "ip", "link", "set", name, "up"),
		} {
			if err := run(cmd...); err != nil {
				fail(err)
			}
		}
	}
	for k := range p.tuns {
		p.wg.Add(1)
		go p.serve(k)
	}
	return p
}

// addr is replica i's address (i = 0: the test process's) with port.
func (p *packetNet) addr(i, port int) string {
	if i == 0 {
		i = hostOctet
	}
	return fmt.Sprintf("%s%d:%d", p.prefix, i, port)
}

// wrap runs a replica's command inside its namespace (nsenter execs it in
// place, so the process is the replica itself: signals reach it).
func (p *packetNet) wrap(i int, bin string, args []string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"-t", fmt.Sprint(p.ns[i].Process.Pid), "-n", "--", bin}, args...)...)
}

// set applies spec to replica i's interface (i = 0: every replica's); a
// zero spec heals it.
func (p *packetNet) set(i int, spec netemSpec) {
	var ptr *netemSpec
	if spec != (netemSpec{}) {
		ptr = &spec
	}
	for k := 1; k < len(p.policy); k++ {
		if i == 0 || i == k {
			p.policy[k].Store(ptr)
		}
	}
	what := fmt.Sprintf("replica %d's interface", i)
	if i == 0 {
		what = "every replica's interface"
	}
	if ptr == nil {
		p.t.Logf("packet faults healed on %s", what)
	} else {
		p.t.Logf("packet faults on %s: netem %s", what, spec)
	}
}

// counts is a snapshot of the router's counters.
type counts struct{ forwarded, dropped, duplicated, delayed int64 }

func (p *packetNet) counts() counts {
	return counts{p.forwarded.Load(), p.dropped.Load(), p.duplicated.Load(), p.delayed.Load()}
}

func (c counts) sub(o counts) counts {
	return counts{c.forwarded - o.forwarded, c.dropped - o.dropped, c.duplicated - o.duplicated, c.delayed - o.delayed}
}

func (c counts) String() string {
	return fmt.Sprintf("%d packets routed, %d dropped, %d duplicated, %d delayed", c.forwarded, c.dropped, c.duplicated, c.delayed)
}

// index maps a destination address to its TUN device (-1: not ours).
func (p *packetNet) index(ip []byte) int {
	if [3]byte(ip[:3]) != p.pfx {
		return -1
	}
	switch o := int(ip[3]); {
	case o == hostOctet:
		return 0
	case o >= 1 && o < len(p.tuns):
		return o
	}
	return -1
}

// serve routes the IPv4 packets read from device k until it is closed.
func (p *packetNet) serve(k int) {
	defer p.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, err := p.tuns[k].Read(buf)
		if err != nil {
			return
		}
		pkt := buf[:n]
		if n < 20 || pkt[0]>>4 != 4 { // IPv6 neighbour chatter etc.: not routed
			continue
		}
		dst := p.index(pkt[16:20])
		if dst < 0 || dst == k {
			continue
		}
		var spec *netemSpec
		if admin(pkt) {
			p.forward(dst, pkt, nil)
			continue
		}
		if k > 0 {
			spec = p.policy[k].Load()
		}
		if spec == nil && dst > 0 {
			spec = p.policy[dst].Load()
		}
		p.forward(dst, pkt, spec)
	}
}

// admin reports whether pkt is TCP from or to the admin port.
func admin(pkt []byte) bool {
	ihl := int(pkt[0]&0x0f) * 4
	if pkt[9] != syscall.IPPROTO_TCP || len(pkt) < ihl+4 {
		return false
	}
	sport := int(pkt[ihl])<<8 | int(pkt[ihl+1])
	dport := int(pkt[ihl+2])<<8 | int(pkt[ihl+3])
	return sport == adminPort || dport == adminPort
}

func (p *packetNet) forward(dst int, pkt []byte, spec *netemSpec) {
	p.forwarded.Add(1)
	if spec == nil {
		p.tuns[dst].Write(pkt)
		return
	}
	if spec.loss > 0 && rand.Float64() < spec.loss {
		p.dropped.Add(1)
		return
	}
	copies := 1
	if spec.dup > 0 && rand.Float64() < spec.dup {
		p.duplicated.Add(1)
		copies = 2
	}
	for range copies {
		d := spec.lag()
		if d <= 0 {
			p.tuns[dst].Write(pkt)
			continue
		}
		p.delayed.Add(1)
		b := append([]byte(nil), pkt...)
		time.AfterFunc(d, func() {
			if !p.closed.Load() {
				p.tuns[dst].Write(b)
			}
		})
	}
}

// close stops routing, removes the devices and ends the namespaces.
func (p *packetNet) close() {
	p.closed.Store(true)
	for _, f := range p.tuns {
		if f != nil {
			f.Close()
		}
	}
	p.wg.Wait()
	for _, ns := range p.ns {
		if ns != nil && ns.Process != nil {
			ns.Process.Kill()
			ns.Wait()
		}
	}
}

// netemSelected reports whether the netem scenario name runs:
// MAFTIA_CLUSTER_NETEM unset or "all" runs every one, "none" none, else a
// comma-separated list of names.
func netemSelected(name string) bool {
	return selected(os.Getenv("MAFTIA_CLUSTER_NETEM"), name)
}

// TestNetemSpec: the fault knobs behave as netem's (no processes, no
// privileges): tc-style description, delay within delay ± jitter, the
// reorder fraction sent at once, nothing delayed without a delay.
func TestNetemSpec(t *testing.T) {
	s := netemSpec{delay: 50 * time.Millisecond, jitter: 20 * time.Millisecond, loss: 0.1, dup: 0.05, reorder: 0.25}
	if got, want := s.String(), "delay 50ms 20ms loss 10% duplicate 5% reorder 25%"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	const n = 20000
	immediate := 0
	for range n {
		d := s.lag()
		if d == 0 {
			immediate++
		} else if d < 30*time.Millisecond || d > 70*time.Millisecond {
			t.Fatalf("lag %v outside 50ms ± 20ms", d)
		}
	}
	if f := float64(immediate) / n; f < 0.23 || f > 0.27 {
		t.Errorf("%.3f of packets sent at once, want reorder 0.25", f)
	}
	if d := (netemSpec{loss: 1, reorder: 0.5}).lag(); d != 0 {
		t.Errorf("no delay configured, lag %v", d)
	}
	if d := (netemSpec{delay: 10 * time.Millisecond, jitter: time.Second}).lag(); d < 0 {
		t.Errorf("negative lag %v", d)
	}
}

// udpEcho answers every datagram on addr with the same bytes (run inside a
// replica namespace by TestPacketNetFaults).
func udpEcho(addr string) int {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return 1
		}
		pc.WriteTo(buf[:n], from)
	}
}

// TestPacketNetFaults shows the router applies each knob (root only): a
// UDP echo in replica 1's namespace, probed from the test process, with
// loss, duplication and delay on replica 1's interface (each applies to
// the probe and to the echo).
func TestPacketNetFaults(t *testing.T) {
	if os.Getenv("MAFTIA_CLUSTER") != "1" {
		t.Skip("runs only with MAFTIA_CLUSTER=1 (creates a network namespace and TUN devices)")
	}
	pn := newPacketNet(t, 1)
	echo := pn.wrap(1, os.Args[0], []string{"-test.run=^$"})
	echo.Env = append(os.Environ(), "MAFTIA_UDP_ECHO="+pn.addr(1, 7000))
	if err := echo.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { echo.Process.Kill(); echo.Wait() }()
	conn, err := net.Dial("udp", pn.addr(1, 7000))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// probe sends n datagrams 2 ms apart and counts the echoes within
	// wait, and the slowest round trip.
	probe := func(n int, wait time.Duration) (got int, slowest time.Duration) {
		var mu sync.Mutex
		sent := map[string]time.Time{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 64)
			for {
				conn.SetReadDeadline(time.Now().Add(wait))
				k, err := conn.Read(buf)
				if err != nil {
					return
				}
				got++
				mu.Lock()
				slowest = max(slowest, time.Since(sent[string(buf[:k])]))
				mu.Unlock()
			}
		}()
		for i := range n {
			mu.Lock()
			sent[fmt.Sprint(i)] = time.Now()
			mu.Unlock()
			conn.Write([]byte(fmt.Sprint(i)))
			time.Sleep(2 * time.Millisecond)
		}
		<-done
		return got, slowest
	}
	// The echo server may take a moment to start: wait for one answer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, _ := probe(1, 200*time.Millisecond); got > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no echo from replica 1's namespace")
		}
	}
	if got, rtt := probe(100, 300*time.Millisecond); got != 100 || rtt > 100*time.Millisecond {
		t.Fatalf("no fault: %d of 100 echoed, slowest %v", got, rtt)
	}
	pn.set(1, netemSpec{loss: 0.3}) // 0.7 × 0.7 = 49% come back
	if got, _ := probe(400, 300*time.Millisecond); got < 150 || got > 245 {
		t.Errorf("loss 30%% each way: %d of 400 echoed, want about 196", got)
	}
	pn.set(1, netemSpec{dup: 1}) // every probe twice, every echo twice
	if got, _ := probe(50, 300*time.Millisecond); got != 200 {
		t.Errorf("duplicate 100%%: %d echoes of 50 probes, want 200", got)
	}
	pn.set(1, netemSpec{delay: 60 * time.Millisecond, jitter: 20 * time.Millisecond})
	if got, rtt := probe(50, 500*time.Millisecond); got != 50 || rtt < 80*time.Millisecond || rtt > 250*time.Millisecond {
		t.Errorf("delay 60ms 20ms each way: %d of 50 echoed, slowest round trip %v (want 80–160 ms plus scheduling)", got, rtt)
	}
	pn.set(1, netemSpec{loss: 1})
	if got, _ := probe(50, 300*time.Millisecond); got != 0 {
		t.Errorf("loss 100%%: %d echoed", got)
	}
	pn.set(1, netemSpec{})
	if got, _ := probe(50, 300*time.Millisecond); got != 50 {
		t.Errorf("healed: %d of 50 echoed", got)
	}
	t.Logf("router: %s", pn.counts())
}
