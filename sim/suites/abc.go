package suites

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/maftia/maftia/abc"
	"github.com/maftia/maftia/agreement/mvba"
	"github.com/maftia/maftia/broadcast/avid"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/tenc"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/wire"
	"google.golang.org/protobuf/proto"
)

func init() {
	register("abc", func(o Options) *sim.Suite { return ABC(o).Suite })
	register("scabc", func(o Options) *sim.Suite { return SCABC(o).Suite })
}

// ABCRoot is the instance the abc suite's replicas run.
var ABCRoot = core.Root("order")

// ABCSuite is the atomic-broadcast suite plus the cores of the current run.
type ABCSuite struct {
	*sim.Suite
	coin     *coinKeys
	proof    *tsig.PublicKey
	proofSKs []*tsig.SecretShare
	cores    map[core.NodeID]*abc.ABC
	// Causal mode: clients encrypt under dec (threshold f+1).
	causal  bool
	dec     *tenc.PublicKey
	decSKs  []*tenc.SecretShare
	encRand *seededReader
	// Requests is how many client requests a run submits (default 2n).
	Requests int
	// BatchSize overrides abc's default when positive.
	BatchSize int
}

// Core returns replica id's atomic broadcast in the current run.
func (s *ABCSuite) Core(id core.NodeID) *abc.ABC { return s.cores[id] }

// The suite's clients authenticate requests with a keyed hash that
// Byzantine replicas cannot compute (standing in for client signatures,
// which smr tests with real keys): "req:<body>:<tag>".
var clientKey = []byte("maftia/sim/abc/client-key")

func clientRequest(body string) []byte {
	tag := sha256.Sum256(append(append([]byte{}, clientKey...), body...))
	return fmt.Appendf(nil, "req:%s:%x", body, tag[:6])
}

func validRequest(r []byte) bool {
	s := string(r)
	if !strings.HasPrefix(s, "req:") {
		return false
	}
	i := strings.LastIndexByte(s, ':')
	if i <= 4 {
		return false
	}
	return bytes.Equal(clientRequest(s[4:i]), r)
}

// ABC is the suite for atomic broadcast. Each run submits requests from
// simulated clients, each to a random set of at least f+1 correct replicas
// (and sometimes to Byzantine ones). Attacks: "censor" never includes
// requests, "forger" adds forged and replayed requests to its batches.
func ABC(o Options) *ABCSuite {
	s := &ABCSuite{cores: map[core.NodeID]*abc.ABC{}}
	s.Suite = &sim.Suite{
		Name:       "abc",
		Resilience: core.Async,
		Setup: func(g core.Group, seed uint64) error {
			ck, err := dealCoin(g.N(), g.F(), seed)
			if err != nil {
				return err
			}
			pk, sks, err := tsig.Deal(newSeededReader("abc-proof", seed), g.N(), g.F()+1, []byte("MAFTIA-SIM-ABC-PROOF"))
			if err != nil {
				return err
			}
			s.coin, s.proof, s.proofSKs, s.cores = ck, pk, sks, map[core.NodeID]*abc.ABC{}
			if s.causal {
				if s.dec, s.decSKs, err = tenc.Deal(newSeededReader("abc-dec", seed), g.N(), g.F()+1); err != nil {
					return err
				}
				s.encRand = newSeededReader("abc-enc", seed)
			}
			return nil
		},
		NewReplica: func(id core.NodeID, g core.Group) (core.Protocol, error) { return s.newCore(o, id, g, nil) },
		// Recover restarts a replica from its records: a fresh core that
		// sits out the epochs below its durable mark (docs/adr/0008).
		// Broken "amnesia" ignores the records, as abc did before.
		Recover: func(id core.NodeID, g core.Group, recs []core.Record) (core.Protocol, error) {
			if o.Broken == "amnesia" {
				recs = nil
			}
			return s.newCore(o, id, g, recs)
		},
		Start: func(c *sim.Cluster) {
			k := s.Requests
			if k == 0 {
				k = 2 * c.Group.N()
			}
			correct := c.Correct()
			for i := 0; i < k; i++ {
				req := s.request(fmt.Sprintf("c%d-%d", i%3, i))
				c.Rng.Shuffle(len(correct), func(a, b int) { correct[a], correct[b] = correct[b], correct[a] })
				holders := correct[:c.Group.F()+1+c.Rng.IntN(len(correct)-c.Group.F())]
				for _, id := range holders {
					c.Input(id, core.Input{Instance: ABCRoot, Value: req})
				}
				for _, id := range byzantineIDs(c) {
					if c.Rng.IntN(2) == 0 {
						c.Input(id, core.Input{Instance: ABCRoot, Value: req})
					}
				}
			}
		},
		Describe: describeABC,
		Mutate:   mutateABC,
		AltInput: func(rng *rand.Rand, in core.Input) core.Input {
			return core.Input{Instance: in.Instance, Value: clientRequest(fmt.Sprintf("twin-%d", rng.IntN(1000)))}
		},
		Attacks:    []sim.Behaviour{abcCensor{}, abcForger{}, abcBadPoint{}},
		Check:      checkABC,
		Terminated: abcTerminated,
		Units: func(c *sim.Cluster) int {
			if correct := c.Correct(); len(correct) > 0 {
				return len(abcLog(c, correct[0]))
			}
			return 0
		},
	}
	return s
}

func describeABC(inst core.InstanceID, p []byte) string {
	switch {
	case strings.Contains(string(inst), "/avid:"):
		return "AVID " + avid.Describe(p)
	case strings.Contains(string(inst), "/mvba"):
		return "MVBA " + mvba.Describe(inst, p)
	}
	return abc.Describe(p)
}

// mutateABC corrupts STORED digests and EPOCH answers; child messages get
// random bytes in place (their own suites mutate them in depth).
func mutateABC(rng *rand.Rand, inst core.InstanceID, p []byte) []byte {
	m, err := abc.Decode(p)
	if err != nil {
		return randomJunk(rng)
	}
	switch m.Kind {
	case wire.ABC_STORED:
		if len(m.Digest) == 32 {
			m.Digest = bytes.Clone(m.Digest)
			m.Digest[rng.IntN(32)] ^= 1
		}
		if rng.IntN(2) == 0 {
			m.Sender = uint32(1 + rng.IntN(7))
		}
	case wire.ABC_EPOCH:
		m.Requests = append(m.Requests, clientRequest(fmt.Sprintf("evil-%d", rng.IntN(100)))[:10])
		m.Epoch += uint64(rng.IntN(2))
	case wire.ABC_FETCH:
		m.Epoch += 1 + uint64(rng.IntN(3))
	case wire.ABC_DECRYPT:
		for i := range m.Shares {
			if len(m.Shares[i]) > 0 && rng.IntN(2) == 0 {
				m.Shares[i] = bytes.Clone(m.Shares[i])
				m.Shares[i][len(m.Shares[i])-1-rng.IntN(8)] ^= 1
			}
		}
	}
	b, _ := proto.Marshal(m)
	return b
}

func randomJunk(rng *rand.Rand) []byte {
	b := make([]byte, rng.IntN(40))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// reorderCore is a deliberately broken atomic broadcast: it delivers each
// batch's requests in reverse order (at even replicas), which the
// total-order checker must catch.
type reorderCore struct{ inner *abc.ABC }

func (r reorderCore) Step(ev core.Event, out *core.Output) error {
	from := len(out.Deliveries)
	if err := r.inner.Step(ev, out); err != nil {
		return err
	}
	for _, d := range out.Deliveries[from:] {
		if b, ok := d.Value.(*wire.Batch); ok {
			slices.Reverse(b.Requests)
		}
	}
	return nil
}

// abcCensor is a replica that never puts any request in its batches (it
// drops every client request it is given) but otherwise follows the
// protocol: the others' requests must still be delivered.
type abcCensor struct{}

func (abcCensor) Name() string { return "censor" }
func (abcCensor) Wrap(id core.NodeID, inner core.Protocol, _ *sim.ByzContext) core.Protocol {
	return censorCore{inner}
}

type censorCore struct{ inner core.Protocol }

func (c censorCore) Step(ev core.Event, out *core.Output) error {
	if _, isInput := ev.(core.Input); isInput {
		return nil
	}
	return c.inner.Step(ev, out)
}

// abcForger adds a forged request and replays of earlier requests to its
// queue, so its batches carry duplicates and forgeries.
type abcForger struct{}

func (abcForger) Name() string { return "forger" }
func (abcForger) Wrap(id core.NodeID, inner core.Protocol, x *sim.ByzContext) core.Protocol {
	return &forgerCore{inner: inner, rng: x.Rng}
}

type forgerCore struct {
	inner core.Protocol
	rng   *rand.Rand
	seen  [][]byte
}

func (f *forgerCore) Step(ev core.Event, out *core.Output) error {
	if in, ok := ev.(core.Input); ok {
		req, _ := in.Value.([]byte)
		f.seen = append(f.seen, req)
		forged := []byte(fmt.Sprintf("req:forged-%d:%012x", f.rng.IntN(1000), f.rng.Uint64()))
		for _, r := range [][]byte{forged, req, f.seen[f.rng.IntN(len(f.seen))]} {
			_ = f.inner.Step(core.Input{Instance: in.Instance, Value: r}, out)
		}
		return nil
	}
	return f.inner.Step(ev, out)
}

var causalLabel = []byte("maftia/sim/scabc")

// request is what a simulated client submits: the authenticated request,
// encrypted under the group's key in causal mode.
func (s *ABCSuite) request(body string) []byte {
	r := clientRequest(body)
	if !s.causal {
		return r
	}
	ct, err := tenc.Encrypt(s.encRand, s.dec, causalLabel, r)
	if err != nil {
		panic(err) // deterministic reader and dealt key: cannot fail
	}
	return ct.Marshal()
}

// SCABC is the suite for secure causal atomic broadcast: clients encrypt
// their requests; replicas order ciphertexts and decrypt after ordering.
// Extra attacks: "withhold" never releases decryption shares, and the
// generic "wrong" behaviour corrupts them.
func SCABC(o Options) *ABCSuite {
	s := ABC(o)
	s.causal = true
	s.Suite.Name = "scabc"
	s.Suite.Attacks = append(s.Suite.Attacks, abcWithhold{})
	s.Suite.Terminated = func(c *sim.Cluster) bool { return s.causalTerminated(c) }
	return s
}

// abcWithhold follows the protocol but never sends a decryption share.
type abcWithhold struct{}

func (abcWithhold) Name() string { return "withhold" }
func (abcWithhold) Wrap(id core.NodeID, inner core.Protocol, _ *sim.ByzContext) core.Protocol {
	return &rewriteCore{inner: inner, rewrite: func(snd core.Send) (core.Send, bool) {
		m, err := abc.Decode(snd.Payload)
		return snd, err != nil || m.Kind != wire.ABC_DECRYPT
	}}
}

// rewriteCore runs a correct core and passes each of its sends through
// rewrite, which may change it or drop it (false); the core's errors are
// not reported (a Byzantine replica has no invariants).
type rewriteCore struct {
	inner   core.Protocol
	scratch core.Output
	rewrite func(core.Send) (core.Send, bool)
}

func (w *rewriteCore) Step(ev core.Event, out *core.Output) error {
	w.scratch.Reset()
	_ = w.inner.Step(ev, &w.scratch)
	for _, snd := range w.scratch.Sends {
		if snd, ok := w.rewrite(snd); ok {
			out.Sends = append(out.Sends, snd)
		}
	}
	out.Persist = append(out.Persist, w.scratch.Persist...)
	out.Deliveries = append(out.Deliveries, w.scratch.Deliveries...)
	return nil
}

// causalTerminated: every request (plaintext) given to f+1 correct
// replicas was delivered, decrypted, by every correct replica.
func (s *ABCSuite) causalTerminated(c *sim.Cluster) bool {
	holders := map[string]int{}
	plain := map[string][]byte{}
	for _, id := range c.Correct() {
		for _, in := range c.Inputs(id) {
			if r, ok := in.Value.([]byte); ok {
				holders[string(r)]++
				if _, done := plain[string(r)]; !done {
					plain[string(r)] = s.decryptForTest(r)
				}
			}
		}
	}
	var first int
	for i, id := range c.Correct() {
		have := map[string]bool{}
		log := abcLog(c, id)
		for _, r := range log {
			have[string(r)] = true
		}
		for r, h := range holders {
			if h > c.Group.F() && !have[string(plain[r])] {
				return false
			}
		}
		if i == 0 {
			first = len(log)
		} else if len(log) != first {
			return false
		}
	}
	return true
}

// decryptForTest opens a client ciphertext with f+1 of the dealt shares.
func (s *ABCSuite) decryptForTest(r []byte) []byte {
	ct, err := tenc.UnmarshalCiphertext(r)
	if err != nil {
		return nil
	}
	checked, err := s.dec.Check(ct, causalLabel)
	if err != nil {
		return nil
	}
	var shares []tenc.Share
	for i := 0; i < s.dec.Threshold(); i++ {
		sh, err := tenc.DecryptShare(newSeededReader("test", 0), s.decSKs[i], checked)
		if err != nil {
			return nil
		}
		shares = append(shares, sh)
	}
	p, _, err := tenc.Combine(s.dec, checked, shares)
	if err != nil {
		return nil
	}
	return p
}

// abcLog is the request sequence a replica delivered.
func abcLog(c *sim.Cluster, id core.NodeID) [][]byte {
	var log [][]byte
	for _, d := range c.Deliveries(id) {
		if b, ok := d.Value.(*wire.Batch); ok {
			log = append(log, b.Requests...)
		}
	}
	return log
}

func checkABC(c *sim.Cluster) []string {
	var v []string
	correct := c.Correct()
	var longest [][]byte
	var longestAt core.NodeID
	for _, id := range correct {
		log := abcLog(c, id)
		seen := map[string]bool{}
		var lastSeq uint64
		for _, d := range c.Deliveries(id) {
			b, ok := d.Value.(*wire.Batch)
			if !ok {
				v = append(v, fmt.Sprintf("replica %d delivered %T", id, d.Value))
				continue
			}
			if b.Seq != lastSeq+1 {
				v = append(v, fmt.Sprintf("total order: replica %d delivered batch %d after %d", id, b.Seq, lastSeq))
			}
			lastSeq = b.Seq
		}
		for _, r := range log {
			if seen[string(r)] {
				v = append(v, fmt.Sprintf("integrity: replica %d delivered %q twice", id, r))
			}
			seen[string(r)] = true
			if !validRequest(r) {
				v = append(v, fmt.Sprintf("integrity: replica %d delivered forged request %q", id, r))
			}
		}
		// Agreement and total order: every log is a prefix of the longest.
		if len(log) > len(longest) {
			longest, longestAt = log, id
		}
	}
	for _, id := range correct {
		log := abcLog(c, id)
		for i := range log {
			if !bytes.Equal(log[i], longest[i]) {
				v = append(v, fmt.Sprintf("total order: position %d is %q at %d but %q at %d", i, log[i], id, longest[i], longestAt))
				break
			}
		}
	}
	return v
}

// abcTerminated: every request given to f+1 correct replicas was delivered
// by every correct replica, and all correct logs are equal.
func abcTerminated(c *sim.Cluster) bool {
	holders := map[string]int{}
	for _, id := range c.Correct() {
		for _, in := range c.Inputs(id) {
			if r, ok := in.Value.([]byte); ok {
				holders[string(r)]++
			}
		}
	}
	var first [][]byte
	for i, id := range c.Correct() {
		log := abcLog(c, id)
		have := map[string]bool{}
		for _, r := range log {
			have[string(r)] = true
		}
		for r, h := range holders {
			if h > c.Group.F() && !have[r] {
				return false
			}
		}
		if i == 0 {
			first = log
		} else if len(log) != len(first) {
			return false
		}
	}
	return true
}

// ClientRequestForTest authenticates a request body the way the suite's
// simulated clients do.
func ClientRequestForTest(body string) []byte { return clientRequest(body) }

// CausalKeysForTest exposes the current run's decryption key set, so tests
// can play a Byzantine replica that tries to read requests early.
func (s *ABCSuite) CausalKeysForTest() (*tenc.PublicKey, []*tenc.SecretShare, []byte) {
	return s.dec, s.decSKs, causalLabel
}

// RequestForTest is what the suite's clients submit for body.
func (s *ABCSuite) RequestForTest(body string) []byte { return s.request(body) }

// newCore builds replica id's atomic broadcast, recovered from recs when
// restarting.
func (s *ABCSuite) newCore(o Options, id core.NodeID, g core.Group, recs []core.Record) (core.Protocol, error) {
	p := abc.DefaultParams(g, id, s.coin.coin, s.coin.sks[id-1], s.proof, s.proofSKs[id-1], validRequest)
	if s.BatchSize > 0 {
		p.BatchSize = s.BatchSize
	} else {
		p.BatchSize = 4
	}
	if s.causal {
		p.Decrypt, p.DecryptKey, p.Label = s.dec, s.decSKs[id-1], causalLabel
		p.Rand = newSeededReader(fmt.Sprintf("abc-dleq-%d", id), uint64(id))
	}
	a, err := abc.New(ABCRoot, p)
	if err != nil {
		return nil, err
	}
	if err := a.Recover(recs); err != nil {
		return nil, err
	}
	if o.Broken == "reorder" && id%2 == 0 {
		return reorderCore{a}, nil
	}
	if _, seen := s.cores[id]; !seen || recs != nil {
		s.cores[id] = a // the first core built for id (Twins build two), or the restarted one
	}
	return a, nil
}

// abcBadPoint follows the protocol but replaces the point of each STORED
// proof share it sends with the point of the previous one (a valid group
// element signed on another statement), keeping the share's header: the
// share passes every structural check and fails only the pairing check,
// so the proof it is interpolated into is wrong and the batched check of
// an epoch's proofs must find it, name the sender and recombine.
type abcBadPoint struct{}

func (abcBadPoint) Name() string { return "bad-point" }
func (abcBadPoint) Wrap(id core.NodeID, inner core.Protocol, _ *sim.ByzContext) core.Protocol {
	var prev []byte // the point of the previous STORED share sent
	return &rewriteCore{inner: inner, rewrite: func(snd core.Send) (core.Send, bool) {
		m, err := abc.Decode(snd.Payload)
		if err != nil || m.Kind != wire.ABC_STORED || len(m.Share) != tsig.ShareSize {
			return snd, true
		}
		point := bytes.Clone(m.Share[tsig.ShareSize-tsig.G1Size:])
		if prev != nil && !bytes.Equal(prev, point) {
			m.Share = append(bytes.Clone(m.Share[:tsig.ShareSize-tsig.G1Size]), prev...)
			snd.Payload, _ = proto.MarshalOptions{Deterministic: true}.Marshal(m)
		}
		prev = point
		return snd, true
	}}
}
