package ttcb

import (
	"bytes"
	"fmt"
	"sync"
)

// Decision names the decision function of a block agreement.
type Decision uint32

// Decision functions. The real service and the Model call the same code
// (Apply), so a protocol tested against the Model sees the service's
// semantics.
const (
	// DecisionMajority decides the value proposed by a strict majority of
	// the elist (more than len(elist)/2 entities); otherwise no decision.
	DecisionMajority Decision = 1
	// DecisionRMulticast decides the value proposed by elist[0], the
	// sender of a reliable multicast (Correia et al., SRDS 2002);
	// otherwise no decision.
	DecisionRMulticast Decision = 2
	// DecisionPlurality decides the most proposed value, ties broken by
	// the smallest value; no decision only when nobody proposed.
	DecisionPlurality Decision = 3
)

// DecisionFunc computes the decided value from the proposals of one
// execution: props[i] is elist[i]'s value and proposed has bit i set when
// elist[i] proposed. It must be deterministic and depend only on its
// arguments.
type DecisionFunc func(elist []EntityID, props []Value, proposed Mask) (Value, bool)

var (
	decMu     sync.RWMutex
	decisions = map[Decision]DecisionFunc{
		DecisionMajority:   majority,
		DecisionRMulticast: rmulticast,
		DecisionPlurality:  plurality,
	}
)

// RegisterDecision adds a decision function (extensibility). It must be
// called identically on every TTCB module and in the Model before use;
// registering an existing name is an error.
func RegisterDecision(d Decision, fn DecisionFunc) error {
	decMu.Lock()
	defer decMu.Unlock()
	if _, ok := decisions[d]; ok || d == 0 || fn == nil {
		return fmt.Errorf("%w: decision %d already registered or invalid", ErrConfig, d)
	}
	decisions[d] = fn
	return nil
}

func knownDecision(d Decision) bool {
	decMu.RLock()
	defer decMu.RUnlock()
	_, ok := decisions[d]
	return ok
}

// Apply runs decision function d over an execution's proposals and returns
// the result (without Tag). Unknown d gives no decision.
func Apply(d Decision, elist []EntityID, props []Value, proposed Mask) TBAResult {
	decMu.RLock()
	fn := decisions[d]
	decMu.RUnlock()
	r := TBAResult{ProposedAny: proposed}
	if fn == nil {
		return r
	}
	v, ok := fn(elist, props, proposed)
	if !ok {
		return r
	}
	r.Decided, r.Value = true, v
	for i := range elist {
		if proposed.Has(i) && props[i] == v {
			r.ProposedOK |= 1 << uint(i)
		}
	}
	return r
}

// counts returns, for the value proposed at each position, how many
// entities proposed it (O(k²) with k ≤ 64).
func best(elist []EntityID, props []Value, proposed Mask) (Value, int) {
	var bv Value
	bc := 0
	for i := range elist {
		if !proposed.Has(i) {
			continue
		}
		c := 0
		for j := range elist {
			if proposed.Has(j) && props[j] == props[i] {
				c++
			}
		}
		if c > bc || (c == bc && bytes.Compare(props[i][:], bv[:]) < 0) {
			bv, bc = props[i], c
		}
	}
	return bv, bc
}

func majority(elist []EntityID, props []Value, proposed Mask) (Value, bool) {
	v, c := best(elist, props, proposed)
	return v, c > len(elist)/2
}

func plurality(elist []EntityID, props []Value, proposed Mask) (Value, bool) {
	v, c := best(elist, props, proposed)
	return v, c > 0
}

func rmulticast(elist []EntityID, props []Value, proposed Mask) (Value, bool) {
	if len(elist) == 0 || !proposed.Has(0) {
		return Value{}, false
	}
	return props[0], true
}
