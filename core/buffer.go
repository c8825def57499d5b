package core

import "sort"

// EarlyBuffer holds messages for instances that have not started yet
// (a replica may receive ECHOs for a broadcast whose parent epoch it has
// not reached). It is bounded per sender in both count and bytes: a
// Byzantine or merely fast replica can fill only its own share, and once
// full its further early messages are refused (the caller reports
// Flooding when the sender provably exceeds what the protocol allows, or
// simply drops otherwise). ATTACKS.md row 2.
//
// Taking messages returns them in arrival order, so replay is deterministic.
type EarlyBuffer struct {
	maxCount, maxBytes int
	seq                uint64
	senders            map[NodeID]*senderQueue
}

type senderQueue struct {
	msgs  []earlyMsg
	bytes int
}

type earlyMsg struct {
	seq uint64
	m   Message
}

// NewEarlyBuffer bounds each sender to maxCount messages and maxBytes
// payload bytes.
func NewEarlyBuffer(maxCount, maxBytes int) *EarlyBuffer {
	return &EarlyBuffer{maxCount: maxCount, maxBytes: maxBytes, senders: make(map[NodeID]*senderQueue)}
}

// Add buffers m; it returns false (and keeps nothing) if m.From's share is full.
func (b *EarlyBuffer) Add(m Message) bool {
	q := b.senders[m.From]
	if q == nil {
		q = &senderQueue{}
		b.senders[m.From] = q
	}
	size := len(m.Payload) + len(m.Instance)
	if len(q.msgs)+1 > b.maxCount || q.bytes+size > b.maxBytes {
		return false
	}
	b.seq++
	q.msgs = append(q.msgs, earlyMsg{seq: b.seq, m: m})
	q.bytes += size
	return true
}

// Take removes and returns, in arrival order, every buffered message whose
// instance is within inst.
func (b *EarlyBuffer) Take(inst InstanceID) []Message {
	return b.extract(func(id InstanceID) bool { return id.Within(inst) }, true)
}

// Discard drops every buffered message for which stale returns true (e.g.
// instances that have already finished).
func (b *EarlyBuffer) Discard(stale func(InstanceID) bool) {
	b.extract(stale, false)
}

func (b *EarlyBuffer) extract(match func(InstanceID) bool, keep bool) []Message {
	var got []earlyMsg
	for from, q := range b.senders {
		kept := q.msgs[:0]
		for _, e := range q.msgs {
			if match(e.m.Instance) {
				q.bytes -= len(e.m.Payload) + len(e.m.Instance)
				if keep {
					got = append(got, e)
				}
				continue
			}
			kept = append(kept, e)
		}
		clear(q.msgs[len(kept):])
		q.msgs = kept
		if len(q.msgs) == 0 {
			delete(b.senders, from)
		}
	}
	if !keep {
		return nil
	}
	sort.Slice(got, func(i, j int) bool { return got[i].seq < got[j].seq })
	out := make([]Message, len(got))
	for i, e := range got {
		out[i] = e.m
	}
	return out
}

// Len is the number of buffered messages from one sender.
func (b *EarlyBuffer) Len(from NodeID) int {
	if q := b.senders[from]; q != nil {
		return len(q.msgs)
	}
	return 0
}

// Bytes is the payload bytes buffered from one sender.
func (b *EarlyBuffer) Bytes(from NodeID) int {
	if q := b.senders[from]; q != nil {
		return q.bytes
	}
	return 0
}

// Total is the number of buffered messages from all senders.
func (b *EarlyBuffer) Total() int {
	t := 0
	for _, q := range b.senders {
		t += len(q.msgs)
	}
	return t
}
