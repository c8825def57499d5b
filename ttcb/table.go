package ttcb

import (
	"bytes"
	"fmt"
	"slices"
)

// This file is the block-agreement bookkeeping shared by the real module
// and the Model: admission of proposals, idempotency, the proposal set of
// each execution, the decision at its deadline and bounded retention. It
// has no clock and no I/O; time is a uint64 handed in (nanoseconds of
// global time in the module, ticks in the Model).

// tableLimits bound the table's memory (ATTACKS.md row 10).
type tableLimits struct {
	Horizon      uint64 // a proposal's tstart is at most now+Horizon
	Retention    uint64 // results are kept this long after their deadline
	MaxExecs     int    // executions held at once
	MaxPerEntity int    // undecided executions one entity may have proposed to
}

type execution struct {
	key      ExecKey
	elist    []EntityID
	tstart   uint64
	decision Decision
	props    []Value
	proposed Mask
	local    Mask // proposals admitted by this module (counted in pending)
	decideAt uint64
	decided  bool
	durable  bool // persisted (module only): may be returned to callers
	tainted  bool // module only: this module was late or cut off in this execution; never answered
	released bool // module only: handed to persistence, answerable once durable
	restored bool // reloaded from the state file after a restart
	result   TBAResult
}

type entRef struct {
	key      ExecKey
	tstart   uint64
	expireAt uint64
}

// noExecution is lookup's answer for a tag the entity asked about (it
// proposed, perhaps too late) for which this table holds no execution:
// either nobody proposed in time or the result expired. The module turns
// it into ErrExpired only when it can vouch for "nobody proposed" (see
// Module.vouch); the Model always can.
type noExecution struct{ ref entRef }

func (x *noExecution) Error() string {
	return fmt.Sprintf("%v: tag %016x", ErrExpired, uint64(x.ref.key.Tag()))
}

func (x *noExecution) Unwrap() error { return ErrExpired }

type table struct {
	lim      tableLimits
	execs    map[ExecKey]*execution
	open     map[ExecKey]*execution // the undecided subset of execs
	byEntity map[EntityID]map[Tag]entRef
	restored map[Tag][]ExecKey // results reloaded after a restart
	pending  map[EntityID]int
	floor    uint64 // executions with tstart < floor are refused (restart)
}

func newTable(lim tableLimits) *table {
	return &table{
		lim:      lim,
		execs:    make(map[ExecKey]*execution),
		open:     make(map[ExecKey]*execution),
		byEntity: make(map[EntityID]map[Tag]entRef),
		restored: make(map[Tag][]ExecKey),
		pending:  make(map[EntityID]int),
	}
}

// checkPropose validates a proposal's fields independently of any state.
func checkPropose(from EntityID, p *TBAPropose) (int, error) {
	if err := checkElist(p.Elist); err != nil {
		return -1, err
	}
	if !knownDecision(p.Decision) {
		return -1, fmt.Errorf("%w: unknown decision function %d", ErrBadRequest, p.Decision)
	}
	i := indexOf(p.Elist, from)
	if i < 0 {
		return -1, fmt.Errorf("%w: entity %d", ErrNotInElist, from)
	}
	return i, nil
}

// propose admits from's proposal at time now. decideAt maps tstart to the
// deadline of the execution. The tag and deadline are returned even with
// ErrTooLate, so the caller may still retrieve the result.
func (t *table) propose(now uint64, from EntityID, p TBAPropose, decideAt func(uint64) uint64) (TBAProposed, error) {
	i, err := checkPropose(from, &p)
	if err != nil {
		return TBAProposed{}, err
	}
	key := ExecutionKey(p.Elist, p.TStart, p.Decision)
	out := TBAProposed{Tag: key.Tag(), ReadyAt: decideAt(p.TStart)}
	if p.TStart < t.floor {
		return out, fmt.Errorf("%w: tstart %d before rejoin at %d", ErrUnavailable, p.TStart, t.floor)
	}
	if p.TStart > now && p.TStart-now > t.lim.Horizon {
		return out, fmt.Errorf("%w: tstart %d, now %d, horizon %d", ErrTooEarly, p.TStart, now, t.lim.Horizon)
	}
	if _, known := t.byEntity[from][key.Tag()]; !known && len(t.byEntity[from]) >= 8*t.lim.MaxPerEntity {
		return out, fmt.Errorf("%w: entity %d holds %d results", ErrOverloaded, from, len(t.byEntity[from]))
	}
	t.remember(from, key, p.TStart, out.ReadyAt)
	e := t.execs[key]
	if now >= p.TStart {
		return out, fmt.Errorf("%w: tstart %d, now %d", ErrTooLate, p.TStart, now)
	}
	if e != nil && e.proposed.Has(i) {
		if e.props[i] != p.Value {
			return out, fmt.Errorf("%w: entity %d already proposed another value", ErrConflict, from)
		}
		return out, nil // idempotent repetition
	}
	if t.pending[from] >= t.lim.MaxPerEntity {
		return out, fmt.Errorf("%w: entity %d has %d undecided executions", ErrOverloaded, from, t.pending[from])
	}
	if e == nil {
		if e = t.create(key, p.Elist, p.TStart, p.Decision, out.ReadyAt); e == nil {
			return out, fmt.Errorf("%w: %d executions", ErrOverloaded, len(t.execs))
		}
	}
	e.props[i] = p.Value
	e.proposed |= 1 << uint(i)
	e.local |= 1 << uint(i)
	t.pending[from]++
	return out, nil
}

// remember records that from asked about execution key, so that it may
// retrieve the result by tag. Bounded by admission control upstream and
// by expiry.
func (t *table) remember(from EntityID, key ExecKey, tstart, readyAt uint64) {
	m := t.byEntity[from]
	if m == nil {
		m = make(map[Tag]entRef)
		t.byEntity[from] = m
	}
	m[key.Tag()] = entRef{key: key, tstart: tstart, expireAt: readyAt + t.lim.Retention}
}

func (t *table) create(key ExecKey, elist []EntityID, tstart uint64, d Decision, decideAt uint64) *execution {
	if len(t.execs) >= t.lim.MaxExecs {
		return nil
	}
	e := &execution{key: key, elist: slices.Clone(elist), tstart: tstart, decision: d,
		props: make([]Value, len(elist)), decideAt: decideAt}
	t.execs[key] = e
	t.open[key] = e
	return e
}

// merge adds proposals learnt from another module (flooding). Modules are
// crash-only, so a conflict cannot come from a correct run; it is resolved
// deterministically (smaller value) all the same.
func (t *table) merge(elist []EntityID, tstart uint64, d Decision, decideAt uint64, props []Value, proposed Mask) *execution {
	if checkElist(elist) != nil || !knownDecision(d) || len(props) != len(elist) || tstart < t.floor {
		return nil
	}
	key := ExecutionKey(elist, tstart, d)
	e := t.execs[key]
	if e == nil {
		if e = t.create(key, elist, tstart, d, decideAt); e == nil {
			return nil
		}
	}
	if e.decided {
		return e
	}
	for i := range elist {
		if !proposed.Has(i) {
			continue
		}
		if !e.proposed.Has(i) || bytes.Compare(props[i][:], e.props[i][:]) < 0 {
			e.props[i] = props[i]
		}
		e.proposed |= 1 << uint(i)
	}
	return e
}

// decideDue applies the decision function to every execution whose
// deadline has passed, in key order, and returns them.
func (t *table) decideDue(now uint64) []*execution {
	var out []*execution
	for _, e := range t.open {
		if e.decideAt <= now {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *execution) int { return bytes.Compare(a.key[:], b.key[:]) })
	for _, e := range out {
		e.result = Apply(e.decision, e.elist, e.props, e.proposed)
		e.result.Tag = e.key.Tag()
		e.decided = true
		delete(t.open, e.key)
		for i, ent := range e.elist {
			if e.local.Has(i) {
				if t.pending[ent]--; t.pending[ent] <= 0 {
					delete(t.pending, ent)
				}
			}
		}
	}
	return out
}

// restore reinstates a persisted result after a restart.
func (t *table) restore(elist []EntityID, tstart uint64, d Decision, decideAt uint64, r TBAResult) {
	key := ExecutionKey(elist, tstart, d)
	if t.execs[key] != nil {
		return
	}
	e := &execution{key: key, elist: slices.Clone(elist), tstart: tstart, decision: d,
		props: make([]Value, len(elist)), decideAt: decideAt, decided: true, restored: true, result: r}
	e.result.Tag = key.Tag()
	t.execs[key] = e
	t.restored[key.Tag()] = append(t.restored[key.Tag()], key)
}

// lookup finds the execution from asked about under tag.
func (t *table) lookup(from EntityID, tag Tag) (*execution, error) {
	if ref, ok := t.byEntity[from][tag]; ok {
		if e := t.execs[ref.key]; e != nil {
			return e, nil
		}
		return nil, &noExecution{ref: ref}
	}
	var found *execution
	for _, k := range t.restored[tag] {
		if e := t.execs[k]; e != nil && indexOf(e.elist, from) >= 0 {
			if found != nil {
				return nil, fmt.Errorf("%w: ambiguous restored tag %016x", ErrUnavailable, uint64(tag))
			}
			found = e
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: tag %016x", ErrUnknownTag, uint64(tag))
	}
	return found, nil
}

// result returns the decided result of e at time now.
func (e *execution) resultAt(now uint64) (TBAResult, error) {
	if !e.decided || now < e.decideAt {
		return TBAResult{}, fmt.Errorf("%w: ready at %d", ErrNotReady, e.decideAt)
	}
	return e.result, nil
}

// expire drops results older than the retention window.
func (t *table) expire(now uint64) {
	for k, e := range t.execs {
		if e.decided && e.decideAt+t.lim.Retention < now {
			delete(t.execs, k)
			if rs := t.restored[k.Tag()]; rs != nil {
				rs = slices.DeleteFunc(rs, func(x ExecKey) bool { return x == k })
				if len(rs) == 0 {
					delete(t.restored, k.Tag())
				} else {
					t.restored[k.Tag()] = rs
				}
			}
		}
	}
	for ent, m := range t.byEntity {
		for tag, ref := range m {
			if ref.expireAt < now {
				delete(m, tag)
			}
		}
		if len(m) == 0 {
			delete(t.byEntity, ent)
		}
	}
}
