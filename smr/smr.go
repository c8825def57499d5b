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
