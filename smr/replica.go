package smr

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/wire"
)

// EngineInstance is the instance subtree the ordering engine owns.
var EngineInstance = core.Root("order")

// Instance is the Replica's own instance (client inputs arrive here).
var Instance = core.Root("smr")

// LogInstance is the instance under which the Replica persists every
// batch it executes (key: LogKey(seq)), so that a restarted replica
// re-executes them (Recover) before answering anything: the runtime makes
// these records durable before it sends the replies of the same step.
var LogInstance = core.Root("smrlog")

// LogKey is the record key of batch seq (fixed width: sorts by seq).
func LogKey(seq uint64) string { return fmt.Sprintf("%016x", seq) }

// LogShard is the number of batches per log instance: batch seq is
// persisted under LogShardInstance(LogShardOf(seq)), so the runtime can
// delete whole shards below a certified checkpoint (log truncation).
const LogShard = 64

// LogShardOf is the shard of batch seq (seq ≥ 1).
func LogShardOf(seq uint64) uint64 { return (seq - 1) / LogShard }

// LogShardInstance is the instance holding shard i of the executed log.
func LogShardInstance(i uint64) core.InstanceID { return LogInstance.ChildN("k", i) }

// Params configure a Replica.
type Params struct {
	Group core.Group
	Self  core.NodeID
	// MaxRequest bounds an encoded client request, in bytes.
	MaxRequest int
	// Verify reports whether a request carries a valid signature of a
	// registered client. It must be deterministic and pure.
	Verify func(*wire.ClientRequest) bool
	// CheckpointEvery > 0 enables checkpoint certificates every that many
	// batches, signed with QuorumKey (a share of Quorum, threshold n−f).
	CheckpointEvery uint64
	Quorum          *tsig.PublicKey
	QuorumKey       *tsig.SecretShare
	// TransferLag is how many batches a certified checkpoint must be
	// ahead of this replica before it fetches the checkpoint's state
	// instead of waiting for the engine to catch up (state transfer,
	// xfer.go); 0: CheckpointEvery. MaxSnapshot bounds the state it
	// accepts, in bytes (0: 256 MiB); the whole state is held in memory.
	TransferLag uint64
	MaxSnapshot uint64

	// UnsafeSkipTransferChecks installs transferred states without
	// checking certificates and chunk hashes. It exists only for the
	// deliberately broken variant the tests must catch; production code
	// leaves it false.
	UnsafeSkipTransferChecks bool
}

// DefaultParams returns parameters with a 64 KiB request bound.
func DefaultParams(g core.Group, self core.NodeID, verify func(*wire.ClientRequest) bool) Params {
	return Params{Group: g, Self: self, MaxRequest: 64 << 10, Verify: verify}
}

// Check validates the parameters.
func (p Params) Check() error {
	if !p.Group.Contains(p.Self) {
		return fmt.Errorf("smr: self %d not in %s", p.Self, p.Group)
	}
	if p.MaxRequest <= 0 || p.Verify == nil {
		return fmt.Errorf("smr: MaxRequest must be positive and Verify set")
	}
	if p.CheckpointEvery > 0 && (p.Quorum == nil || p.QuorumKey == nil || p.Quorum.Threshold() != p.Group.Quorum()) {
		return fmt.Errorf("smr: checkpoints need the Quorum key (threshold n−f = %d) and this replica's share", p.Group.Quorum())
	}
	return nil
}

// session is what a replica remembers of one client: the last executed
// sequence number and its reply, so retries are answered, not re-executed.
type session struct {
	seq      uint64
	position uint64
	result   []byte
}

// Stats counts requests by fate (exported to metrics by the runtime).
type Stats struct {
	Executed, Duplicates, Rejected, Malformed uint64
}

// Replica executes ordered requests on an FSM. It owns the ordering
// engine as a child core under EngineInstance.
type Replica struct {
	p        Params
	engine   core.Protocol
	fsm      FSM
	sessions map[uint64]*session
	position uint64 // last batch executed
	stats    Stats
	scratch  core.Output
	cp       *checkpoints // nil: checkpoints disabled
}

// NewReplica creates a replica around an engine and an application.
func NewReplica(p Params, engine core.Protocol, fsm FSM) (*Replica, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	r := &Replica{p: p, engine: engine, fsm: fsm, sessions: map[uint64]*session{}}
	if p.CheckpointEvery > 0 {
		r.cp = &checkpoints{every: p.CheckpointEvery, pk: p.Quorum, key: p.QuorumKey, mine: map[uint64][32]byte{}, snaps: map[uint64][]byte{},
			shares: map[uint64]map[[32]byte][]tsig.Share{}, from: map[uint64]map[core.NodeID]bool{}, x: newXfer()}
	}
	return r, nil
}

// Position is the sequence number of the last executed batch.
func (r *Replica) Position() uint64 { return r.position }

// Stats returns the request counters.
func (r *Replica) Stats() Stats { return r.stats }

// EncodeRequest marshals a client request deterministically.
func EncodeRequest(req *wire.ClientRequest) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		panic(fmt.Sprintf("smr: marshal request: %v", err)) // cannot fail for this message
	}
	return b
}

// DecodeRequest parses a client request from outside the process.
func DecodeRequest(b []byte, max int) (*wire.ClientRequest, error) {
	if len(b) > max {
		return nil, fmt.Errorf("%w: request of %d bytes > %d", wire.ErrMalformed, len(b), max)
	}
	var req wire.ClientRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		return nil, fmt.Errorf("%w: request: %v", wire.ErrMalformed, err)
	}
	if req.Seq == 0 {
		return nil, fmt.Errorf("%w: request sequence numbers start at 1", wire.ErrMalformed)
	}
	return &req, nil
}

// Step applies one event: a client request (Input on Instance), or
// anything for the engine's subtree.
func (r *Replica) Step(ev core.Event, out *core.Output) error {
	if in, ok := ev.(core.Input); ok && in.Instance == Instance {
		req, ok := in.Value.(*wire.ClientRequest)
		if !ok {
			return fmt.Errorf("smr: input is %T, want *wire.ClientRequest", in.Value)
		}
		r.submit(req, out)
		return nil
	}
	if in, ok := ev.(core.Input); ok && in.Instance == TransferInstance {
		r.probe(out)
		return nil
	}
	if m, ok := ev.(core.Message); ok && m.Instance == CheckpointInstance {
		return r.onCheckpoint(m, out)
	}
	if m, ok := ev.(core.Message); ok && m.Instance == TransferInstance {
		return r.onTransfer(m, out)
	}
	r.scratch.Reset()
	if err := r.engine.Step(ev, &r.scratch); err != nil {
		return fmt.Errorf("smr: engine: %w", err)
	}
	return r.absorb(out)
}

// submit hands a fresh request to the engine, or answers a retry from the
// session (exactly-once: S4).
func (r *Replica) submit(req *wire.ClientRequest, out *core.Output) {
	if s := r.sessions[req.Client]; s != nil && req.Seq <= s.seq {
		r.stats.Duplicates++
		if req.Seq == s.seq {
			out.Deliver(Instance, Executed{Client: req.Client, Seq: s.seq, Position: s.position, Result: s.result, Cached: true})
		}
		return
	}
	b := EncodeRequest(req)
	if len(b) > r.p.MaxRequest {
		r.stats.Malformed++
		return
	}
	r.scratch.Reset()
	if err := r.engine.Step(core.Input{Instance: EngineInstance, Value: b}, &r.scratch); err != nil {
		// The engine refusing a local input is a local bug, but a request
		// must not halt the replica: count it and carry on.
		r.stats.Malformed++
		return
	}
	_ = r.absorb(out)
}

// absorb moves the engine's effects to out and executes delivered batches.
func (r *Replica) absorb(out *core.Output) error {
	out.Persist = append(out.Persist, r.scratch.Persist...)
	out.Sends = append(out.Sends, r.scratch.Sends...)
	out.Timers = append(out.Timers, r.scratch.Timers...)
	out.Requests = append(out.Requests, r.scratch.Requests...)
	out.Evidence = append(out.Evidence, r.scratch.Evidence...)
	for _, d := range r.scratch.Deliveries {
		b, ok := d.Value.(*wire.Batch)
		if !ok {
			return fmt.Errorf("smr: engine delivered %T, want *wire.Batch", d.Value)
		}
		if b.Seq <= r.position {
			// Already executed before a restart (Recover replayed it):
			// the engine re-delivers it while catching up.
			continue
		}
		if b.Seq != r.position+1 {
			return fmt.Errorf("smr: engine delivered batch %d after %d", b.Seq, r.position)
		}
		out.PersistRecord(LogShardInstance(LogShardOf(b.Seq)), LogKey(b.Seq), encodeBatch(b))
		r.execute(b, out)
		if err := r.afterBatch(b.Seq, out); err != nil {
			return err
		}
	}
	r.caughtUp()
	return nil
}

// execute applies one batch in order. Every check here is deterministic,
// so all correct replicas skip exactly the same requests.
func (r *Replica) execute(b *wire.Batch, out *core.Output) {
	r.position = b.Seq
	for _, raw := range b.Requests {
		req, err := DecodeRequest(raw, r.p.MaxRequest)
		if err != nil {
			r.stats.Malformed++
			continue
		}
		if !r.p.Verify(req) {
			r.stats.Rejected++
			continue
		}
		s := r.sessions[req.Client]
		if s != nil && req.Seq <= s.seq {
			r.stats.Duplicates++
			continue
		}
		if s == nil {
			s = &session{}
			r.sessions[req.Client] = s
		}
		result := r.fsm.Apply(req.Client, req.Op)
		s.seq, s.position, s.result = req.Seq, b.Seq, result
		r.stats.Executed++
		out.Deliver(Instance, Executed{Client: req.Client, Seq: req.Seq, Position: b.Seq, Result: result})
	}
}

func encodeBatch(b *wire.Batch) []byte {
	buf, err := proto.MarshalOptions{Deterministic: true}.Marshal(b)
	if err != nil {
		panic(fmt.Sprintf("smr: marshal batch: %v", err)) // cannot fail for this message
	}
	return buf
}

// Recover re-executes the batches a replica persisted under LogInstance
// before it stopped (records in any order; those at or below Position(),
// e.g. below a restored checkpoint, are skipped; the rest must be
// contiguous from Position()+1). Replies are not produced: clients retry and are answered
// from the sessions. A gap or an undecodable record is a damaged log
// (ATTACKS row 14): the replica refuses to start.
func (r *Replica) Recover(recs []core.Record) error {
	recs = slices.Clone(recs)
	slices.SortFunc(recs, func(a, b core.Record) int { return strings.Compare(a.Key, b.Key) })
	var discard core.Output
	for _, rec := range recs {
		var b wire.Batch
		if err := proto.Unmarshal(rec.Value, &b); err != nil {
			return fmt.Errorf("smr: %w: logged batch %s: %v", wire.ErrMalformed, rec.Key, err)
		}
		if rec.Key != LogKey(b.Seq) {
			return fmt.Errorf("smr: %w: logged batch under key %s has seq %d", wire.ErrMalformed, rec.Key, b.Seq)
		}
		if b.Seq <= r.position {
			continue
		}
		if b.Seq != r.position+1 {
			return fmt.Errorf("smr: %w: log jumps from batch %d to %d", wire.ErrMalformed, r.position, b.Seq)
		}
		discard.Reset()
		r.execute(&b, &discard)
	}
	return nil
}

// Snapshot serializes the replicated state: the position, the sessions (in
// client order) and the application's snapshot.
func (r *Replica) Snapshot() ([]byte, error) {
	app, err := r.fsm.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("smr: application snapshot: %w", err)
	}
	b := binary.BigEndian.AppendUint64(nil, r.position)
	clients := make([]uint64, 0, len(r.sessions))
	for c := range r.sessions {
		clients = append(clients, c)
	}
	slices.Sort(clients)
	b = binary.BigEndian.AppendUint64(b, uint64(len(clients)))
	for _, c := range clients {
		s := r.sessions[c]
		b = binary.BigEndian.AppendUint64(b, c)
		b = binary.BigEndian.AppendUint64(b, s.seq)
		b = binary.BigEndian.AppendUint64(b, s.position)
		b = binary.BigEndian.AppendUint64(b, uint64(len(s.result)))
		b = append(b, s.result...)
	}
	return append(b, app...), nil
}

// StateDigest is SHA-256 of the snapshot: what checkpoint certificates sign.
func (r *Replica) StateDigest() ([32]byte, error) {
	s, err := r.Snapshot()
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(s), nil
}

// Restore replaces the replicated state with a snapshot (state transfer).
func (r *Replica) Restore(snap []byte) error {
	rd := reader{b: snap}
	pos := rd.u64()
	n := rd.u64()
	if rd.err != nil || n > uint64(len(snap))/32 {
		return fmt.Errorf("smr: %w: snapshot header", wire.ErrMalformed)
	}
	sessions := make(map[uint64]*session, n)
	for i := uint64(0); i < n; i++ {
		c, seq, p, l := rd.u64(), rd.u64(), rd.u64(), rd.u64()
		res := rd.bytes(l)
		if rd.err != nil {
			return fmt.Errorf("smr: %w: snapshot session %d", wire.ErrMalformed, i)
		}
		sessions[c] = &session{seq: seq, position: p, result: res}
	}
	if err := r.fsm.Restore(rd.b); err != nil {
		return fmt.Errorf("smr: application restore: %w", err)
	}
	r.position, r.sessions = pos, sessions
	return nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) u64() uint64 {
	if len(r.b) < 8 {
		r.err = wire.ErrMalformed
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) bytes(n uint64) []byte {
	if uint64(len(r.b)) < n {
		r.err = wire.ErrMalformed
		return nil
	}
	v := slices.Clone(r.b[:n])
	r.b = r.b[n:]
	return v
}
