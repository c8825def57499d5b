package suites

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"

	"github.com/maftia/maftia/core"
)

// prechecked runs, for every message to a child that implements
// core.Prechecker, the child's pure Precheck before Step, as the runtime's
// crypto worker pool does (here inline). Suites wrap odd-numbered replicas
// in it so that every run exercises both paths: verified-before-Step and
// verify-inline. Prechecks counts the calls (for benchmarks).
type prechecked struct {
	mux       *core.Mux
	Prechecks int
}

func (p *prechecked) Step(ev core.Event, out *core.Output) error {
	m, ok := ev.(core.Message)
	if !ok || m.Checked != nil || m.Instance.Depth() < 1 {
		return p.mux.Step(ev, out)
	}
	child, ok := p.mux.Child(m.Instance.Prefix(1))
	pc, isPC := child.(core.Prechecker)
	if !ok || !isPC {
		return p.mux.Step(ev, out)
	}
	p.Prechecks++
	c, err := pc.Precheck(m)
	if err != nil {
		var ev *core.Evidence
		if errors.As(err, &ev) {
			out.Evidence = append(out.Evidence, *ev)
		}
		return nil
	}
	m.Checked = c
	return p.mux.Step(m, out)
}

// host wraps a replica's Mux in prechecked for odd replica IDs.
func host(id core.NodeID, mux *core.Mux) core.Protocol {
	if id%2 == 1 {
		return &prechecked{mux: mux}
	}
	return mux
}

// seededReader is a deterministic byte stream (SHA-256 in counter mode)
// standing in for crypto/rand in the simulator, so the trusted dealer's
// keys are a function of the run seed and a failing seed replays exactly.
type seededReader struct {
	seed  [32]byte
	ctr   uint64
	avail []byte
}

func newSeededReader(label string, seed uint64) *seededReader {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	return &seededReader{seed: sha256.Sum256(append([]byte("maftia/sim/"+label+"/"), b[:]...))}
}

func (r *seededReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.avail) == 0 {
			var blk [40]byte
			copy(blk[:], r.seed[:])
			binary.BigEndian.PutUint64(blk[32:], r.ctr)
			r.ctr++
			sum := sha256.Sum256(blk[:])
			r.avail = sum[:]
		}
		c := copy(p[n:], r.avail)
		r.avail = r.avail[c:]
		n += c
	}
	return n, nil
}
