package kv

import (
	"context"
	"fmt"

	"github.com/maftia/maftia/wire"
)

// Submitter is what Client needs from a replicated-service client
// (*client.Client implements it).
type Submitter interface {
	Submit(ctx context.Context, op []byte) ([]byte, error)
}

// Client is a typed key-value client over a Submitter. Every operation,
// reads included, is ordered and executed by the replicas, so results are
// linearizable.
type Client struct{ S Submitter }

// Do submits one operation and decodes its result.
func (c Client) Do(ctx context.Context, op *wire.KVOp) (*wire.KVResult, error) {
	b, err := c.S.Submit(ctx, EncodeOp(op))
	if err != nil {
		return nil, err
	}
	r, err := DecodeResult(b)
	if err != nil {
		return nil, err
	}
	if r.Error != "" {
		return r, fmt.Errorf("kv: %s", r.Error)
	}
	return r, nil
}

// Put sets key to value.
func (c Client) Put(ctx context.Context, key, value []byte) (*wire.KVResult, error) {
	return c.Do(ctx, &wire.KVOp{Kind: wire.KVOp_PUT, Key: key, Value: value})
}

// Get reads key.
func (c Client) Get(ctx context.Context, key []byte) (*wire.KVResult, error) {
	return c.Do(ctx, &wire.KVOp{Kind: wire.KVOp_GET, Key: key})
}

// Delete removes key.
func (c Client) Delete(ctx context.Context, key []byte) (*wire.KVResult, error) {
	return c.Do(ctx, &wire.KVOp{Kind: wire.KVOp_DELETE, Key: key})
}

// CAS sets key to value if its value is expected (expected nil: if absent).
func (c Client) CAS(ctx context.Context, key, expected, value []byte) (*wire.KVResult, error) {
	return c.Do(ctx, &wire.KVOp{Kind: wire.KVOp_CAS, Key: key, Expected: expected, ExpectAbsent: expected == nil, Value: value})
}

// Range lists keys in [start, end) (end empty: to the last), at most limit.
func (c Client) Range(ctx context.Context, start, end []byte, limit uint32) (*wire.KVResult, error) {
	return c.Do(ctx, &wire.KVOp{Kind: wire.KVOp_RANGE, Key: start, End: end, Limit: limit})
}
