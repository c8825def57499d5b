package hybrid

import (
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/ttcb"
)

// Result relay. The TTCB guarantees that every module answering for an
// execution gives the same result, but a module may withhold one (it had
// a timing failure of its own in that execution, it restarted, the
// result expired). The replica then asks the others (RESULT_QUERY) and
// adopts:
//   - a result carrying a valid attestation of any TTCB module
//     (Params.ModuleKeys; modules sign what they answer): one suffices;
//   - an unattested result (no module keys, or "nobody proposed by
//     tstart", which no module signs) reported alike by f+1 replicas: at
//     least one is correct and reports what its module answered;
//   - "undecided" once it holds the attested withholdings of all n
//     modules: no module ever answered the execution, so nobody used a
//     result.
//
// A Byzantine replica can withhold its answer or be accused for a bad
// attestation, nothing more. This keeps a replica whose software TTCB
// missed a deadline (a stalled host) in the protocol instead of halting
// it (docs/adr/0006-hybrid-runtime.md).

// askResult asks the others once for the result of (current epoch, owner).
func (e *Engine) askResult(owner core.NodeID, out *core.Output) {
	c := e.cur
	if c.asked == nil {
		c.asked = make([]bool, e.p.Group.N())
		c.votes = make([]map[ttcb.TBAResult]map[core.NodeID]bool, e.p.Group.N())
	}
	if c.asked[owner-1] || c.results[owner-1] != nil {
		return
	}
	c.asked[owner-1] = true
	e.ops.Relayed++
	payload := Encode(&Message{Kind: KindResultQ, Epoch: c.num, Owner: owner})
	for _, id := range e.p.Group.Members() {
		if id != e.p.Self {
			out.SendTo(id, e.root, payload)
		}
	}
}

// setResult records the result of (current epoch, owner) and answers the
// replicas that asked for it before it was known.
func (e *Engine) setResult(owner core.NodeID, res ttcb.TBAResult, out *core.Output) {
	c := e.cur
	res.Tag = 0 // local to the caller's session
	c.results[owner-1] = &res
	c.nresults++
	for k := range e.wants[c.num] {
		if k[1] == owner {
			delete(e.wants[c.num], k)
			e.answerResult(k[0], c.num, owner, res, out)
		}
	}
}

// upon RESULT_QUERY(e, j) from k: answer with the result if known (at
// most maxAnswers times per asker), else remember the question.
func (e *Engine) onResultQuery(from core.NodeID, num uint64, owner core.NodeID, out *core.Output) {
	c := e.cur
	switch {
	case num == c.num && c.results[owner-1] != nil:
		e.answerResult(from, num, owner, *c.results[owner-1], out)
	case e.keptRes[num] != nil:
		e.answerResult(from, num, owner, e.keptRes[num][owner-1], out)
	case num == c.num && c.withheld != nil && c.withheld[owner-1][uint32(e.p.Self)].Withheld:
		// Our module withholds it too: say so (attested), and answer
		// again should we learn the result.
		e.answerResult(from, num, owner, c.withheld[owner-1][uint32(e.p.Self)], out)
		e.want(from, num, owner)
	case num >= c.num && num-c.num <= e.p.Ahead:
		e.want(from, num, owner)
	}
}

func (e *Engine) want(from core.NodeID, num uint64, owner core.NodeID) {
	w := e.wants[num]
	if w == nil {
		w = map[[2]core.NodeID]bool{}
		e.wants[num] = w
	}
	w[[2]core.NodeID{from, owner}] = true
}

// addWithheld records a module's attestation that it withholds the result
// of (current epoch, owner). Once all n modules have attested it, no
// module ever answered that execution, so no replica can have used a
// result: it counts as undecided at every correct replica that gets there
// (and no correct replica can obtain a result instead, since none exists).
func (e *Engine) addWithheld(owner core.NodeID, r ttcb.TBAResult, out *core.Output) {
	c := e.cur
	if c.withheld == nil {
		c.withheld = make([]map[uint32]ttcb.TBAResult, e.p.Group.N())
	}
	if c.withheld[owner-1] == nil {
		c.withheld[owner-1] = map[uint32]ttcb.TBAResult{}
	}
	c.withheld[owner-1][r.Module] = r
	if r.Module == uint32(e.p.Self) {
		// Those who asked before we knew get our module's attestation
		// (and the result later, should we learn it).
		for k := range e.wants[c.num] {
			if k[1] == owner {
				e.answerResult(k[0], c.num, owner, r, out)
			}
		}
	}
	if len(c.withheld[owner-1]) < e.p.Group.N() || c.results[owner-1] != nil {
		return
	}
	e.ops.AllWithheld++
	e.adopt(owner, ttcb.TBAResult{}, out)
}

func (e *Engine) answerResult(to core.NodeID, num uint64, owner core.NodeID, res ttcb.TBAResult, out *core.Output) {
	a := e.resAns[num]
	if a == nil {
		a = map[[2]core.NodeID]int{}
		e.resAns[num] = a
	}
	if a[[2]core.NodeID{to, owner}] >= maxAnswers {
		return
	}
	a[[2]core.NodeID{to, owner}]++
	if e.p.ModuleKeys != nil && res.Module == 0 {
		// An undecided result concluded from every module's withholding:
		// the proof is the n attestations.
		wh := e.keptWH[num]
		if num == e.cur.num {
			wh = e.cur.withheld
		}
		if wh != nil && len(wh[owner-1]) == e.p.Group.N() {
			for _, id := range e.p.Group.Members() {
				e.answerOne(to, num, owner, wh[owner-1][uint32(id)], out)
			}
			return
		}
		// Otherwise an unattested undecided result: our module said
		// nobody proposed by tstart. It counts with f+1 alike.
	}
	e.answerOne(to, num, owner, res, out)
}

func (e *Engine) answerOne(to core.NodeID, num uint64, owner core.NodeID, res ttcb.TBAResult, out *core.Output) {
	m := &Message{Kind: KindResult, Epoch: num, Owner: owner, Decided: res.Decided,
		ProposedOK: uint64(res.ProposedOK), ProposedAny: uint64(res.ProposedAny), Module: res.Module, Withheld: res.Withheld}
	if res.Module != 0 {
		m.Signature = res.Signature[:]
	}
	if res.Decided {
		m.Value = res.Value[:]
	}
	out.SendTo(to, e.root, Encode(m))
}

// upon RESULT(e, j, r) from k, for a result we asked for: adopt r if a
// module attested it, count an attested withholding, or adopt an
// unattested r once f+1 replicas reported it alike.
func (e *Engine) onResult(from core.NodeID, m *Message, out *core.Output) {
	c := e.cur
	i := m.Owner - 1
	if m.Epoch != c.num || c.asked == nil || !c.asked[i] || c.results[i] != nil {
		return
	}
	if m.Withheld && e.p.ModuleKeys == nil {
		return // unverifiable: only attested withholding counts
	}
	// Unattested results (no module keys, or "nobody proposed by tstart",
	// which no module signs) count when f+1 replicas report them alike.
	res := ttcb.TBAResult{Decided: m.Decided, ProposedOK: ttcb.Mask(m.ProposedOK), ProposedAny: ttcb.Mask(m.ProposedAny), Module: m.Module, Withheld: m.Withheld}
	copy(res.Value[:], m.Value)
	copy(res.Signature[:], m.Signature)
	if e.p.ModuleKeys != nil && m.Module != 0 {
		// One attested result suffices: the module's signature binds it
		// to this execution.
		key := ttcb.ExecutionKey(rotated(e.p.Group, m.Owner), c.tstart, ttcb.DecisionMajority)
		if !ttcb.VerifyAttestation(e.p.ModuleKeys[m.Module-1], key, res) {
			out.Accuse(from, core.InvalidProof, e.root, "RESULT for epoch %d owner %d without a valid TTCB attestation", m.Epoch, m.Owner)
			return
		}
		if res.Withheld {
			e.addWithheld(m.Owner, res, out)
		} else {
			e.adopt(m.Owner, res, out)
		}
		return
	}
	if c.votes[i] == nil {
		c.votes[i] = map[ttcb.TBAResult]map[core.NodeID]bool{}
	}
	for _, who := range c.votes[i] {
		if who[from] {
			return // one report per replica
		}
	}
	k := res.Unattested()
	who := c.votes[i][k]
	if who == nil {
		who = map[core.NodeID]bool{}
		c.votes[i][k] = who
	}
	who[from] = true
	if len(who) >= e.p.Group.F()+1 {
		e.adopt(m.Owner, k, out)
	}
}

// adopt takes a relayed result as this replica's and goes on with the
// epoch (a result means TTCB time is past tstart: join the rest late).
func (e *Engine) adopt(owner core.NodeID, res ttcb.TBAResult, out *core.Output) {
	e.setResult(owner, res, out)
	e.joinLate(out)
	e.tryComplete(out)
}
