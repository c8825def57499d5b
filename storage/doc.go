// Package storage is maftia's durable store (DESIGN §2): the records that
// protocol cores ask to persist (core.Output.Persist), the log of ordered
// batches a replica delivered, checkpoints with their certificates, and a
// little metadata. It is built on Pebble (github.com/cockroachdb/pebble/v2),
// an LSM store with a write-ahead log whose concurrent synced commits are
// grouped into one fsync (group commit), which is what lets a replica make
// Output.Persist durable before every send without an fsync per message.
//
// Guarantees: a call that returned nil is durable (fsynced) unless the
// store was opened with NoSync (tests only); after a crash at any point,
// including between a write and its fsync, reopening gives a state that
// contains every acknowledged write (ATTACKS.md row 1). Every value carries
// a format version and a CRC-32C of its key and value: a bit flip that
// Pebble's own block checksums do not catch is reported as ErrCorrupt, and
// a store that cannot be opened is refused with a clear error rather than
// silently recreated (row 14). "Last written" state never goes backwards:
// the log refuses to overwrite a sequence number with different content.
package storage
