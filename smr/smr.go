package smr

import (
	"errors"

	"github.com/maftia/maftia/wire"
)

// FSM is the replicated application. It must be deterministic: the same
// sequence of Apply calls from the same state gives the same results and
// state on every replica (no clocks, randomness, map iteration order or
// I/O).
type FSM interface {
	// Apply executes one operation of a client and returns the result.
	Apply(client uint64, op []byte) []byte
	// Snapshot serializes the state.
	Snapshot() ([]byte, error)
	// Restore replaces the state with a snapshot.
	Restore(snapshot []byte) error
}

// The Engine contract. An ordering engine is a core.Protocol (package core)
// rooted at EngineInstance that takes core.Input{Value: []byte} — one
// encoded client request, already authenticated by the replica that
// received it — and delivers *wire.Batch values with
// consecutive sequence numbers from 1 such that:
//   - agreement and total order: correct replicas deliver the same batches
//     in the same order;
//   - integrity: a batch contains only requests that Valid accepts, and no
//     request twice within one batch (duplicates across batches are
//     removed by the sessions of the Replica);
//   - validity (censorship resistance): a request submitted to f+1 correct
//     replicas is eventually delivered.
//
// Valid is the request validity predicate handed to engines: it must be a
// pure, deterministic function (signature verification of a client
// request), so that correct replicas agree on which requests are
// admissible even when a Byzantine replica proposes forged ones.
type Valid func(request []byte) bool

// ErrStale marks a request whose sequence number was already executed.
var ErrStale = errors.New("smr: request already executed")

// Executed is what the Replica delivers for each request it executed (or
// answered from the session cache): the runtime signs it with the replica's
// identity key and sends it to the client.
type Executed struct {
	Client, Seq uint64
	Position    uint64 // batch sequence number that ordered it
	Result      []byte
	Cached      bool // a retry answered from the session
}

// Batch is re-exported for engines.
type Batch = wire.Batch

// Resumer is an optional extension of the Engine contract for state
// transfer (docs/adr/0005-state-transfer.md). An engine that implements it
// can skip ahead: after a replica installs a certified checkpoint at batch
// seq, the engine continues with batch seq+1 instead of catching up batch
// by batch from where it was (which may be impossible once the other
// replicas have discarded what it would need). An engine without it still
// works: the Replica skips the batches at or below its position, so the
// engine must then catch up on its own.
type Resumer interface {
	// ResumeToken returns what the engine needs to continue right after
	// batch seq. It is called during the Step in which the engine
	// delivered seq, for checkpoint positions only, and must be a
	// deterministic function of the agreed batches (every correct replica
	// returns the same bytes): it is part of the certified checkpoint.
	ResumeToken(seq uint64) ([]byte, error)
	// Resume makes the engine continue right after batch seq, given the
	// token of a certified checkpoint. An error means a local invariant
	// broke (the replica halts).
	Resume(seq uint64, token []byte) error
}

// Transferred is what the Replica delivers once it installed a certified
// checkpoint fetched from its peers: the runtime stores it durably
// (TakeCertified, storage.SaveCheckpoint) and may then delete the
// transfer record (TransferInstance) and the log below it.
type Transferred struct {
	Checkpoint Checkpoint
}
