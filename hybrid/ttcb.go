package hybrid

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/ttcb"
)

// hashOf is the domain-separated, length-prefixed SHA-256 of the given
// fields: the 32-byte values proposed to the TTCB's block agreement.
func hashOf(domain string, fields ...[]byte) ttcb.Value {
	h := sha256.New()
	var l [8]byte
	binary.BigEndian.PutUint64(l[:], uint64(len(domain)))
	h.Write(l[:])
	h.Write([]byte(domain))
	for _, f := range fields {
		binary.BigEndian.PutUint64(l[:], uint64(len(f)))
		h.Write(l[:])
		h.Write(f)
	}
	var v ttcb.Value
	h.Sum(v[:0])
	return v
}

// rotated returns the group's members starting at first: the elist of an
// execution whose distinguished entity (the rmulticast sender, or the
// owner of a batch) is first. Distinct first entities give distinct
// executions for one tstart.
func rotated(g core.Group, first core.NodeID) []ttcb.EntityID {
	n := g.N()
	el := make([]ttcb.EntityID, n)
	for i := range el {
		el[i] = ttcb.EntityID((int(first)-1+i)%n + 1)
	}
	return el
}

// members lists the entities whose bit is set in mask over elist.
func members(elist []ttcb.EntityID, mask ttcb.Mask) []core.NodeID {
	var out []core.NodeID
	for i, e := range elist {
		if mask.Has(i) {
			out = append(out, e)
		}
	}
	return out
}

// proposeAndDecide asks the TTCB to admit value into the execution
// (elist, tstart, d) and, in the same Output, for its result: the model
// and the service remember the caller's interest at propose time even when
// the proposal itself is refused as late, so a replica that learns of an
// execution after its tstart still obtains the (common) result. Replies
// come back as core.ServiceReply with tags tag (propose) and tag|1 (decide).
func proposeAndDecide(out *core.Output, inst core.InstanceID, tag uint64, elist []ttcb.EntityID, tstart uint64, d ttcb.Decision, value ttcb.Value) {
	out.Request(inst, ttcb.ServiceName, tag, ttcb.TBAPropose{Elist: elist, TStart: tstart, Decision: d, Value: value})
	out.Request(inst, ttcb.ServiceName, tag|1, ttcb.TBADecide{Tag: ttcb.ExecutionTag(elist, tstart, d)})
}
