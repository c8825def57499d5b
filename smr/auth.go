package smr

import (
	"encoding/binary"

	"github.com/maftia/maftia/crypto/sig"
	"github.com/maftia/maftia/wire"
)

// Signature domains: every signed byte string is sig.Encode(domain,
// fields...), length-prefixed and bound to the cluster, so a request or a
// reply of one cluster or kind never verifies as another (ATTACKS row 11).
const (
	RequestDomain = "maftia/smr/request/v1"
	ReplyDomain   = "maftia/smr/reply/v1"
)

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// SignRequest sets req.Signature with the client's identity key.
func SignRequest(key *sig.PrivateKey, cluster [32]byte, req *wire.ClientRequest) {
	req.Signature = key.SignDomain(RequestDomain, cluster[:], u64(req.Client), u64(req.Seq), req.Op)
}

// Clients maps client IDs to their identity keys (from the cluster file),
// expanded once since every request of a client is verified with its key.
type Clients map[uint64]sig.VerifyKey

// Verifier returns the deterministic request check handed to Replica and
// engines: the client is registered and the signature verifies (ZIP-215).
func (c Clients) Verifier(cluster [32]byte) func(*wire.ClientRequest) bool {
	return func(req *wire.ClientRequest) bool {
		pk, ok := c[req.Client]
		return ok && pk.VerifyDomain(req.Signature, RequestDomain, cluster[:], u64(req.Client), u64(req.Seq), req.Op) == nil
	}
}

// VerifyBatch checks many requests at once with Ed25519 batch verification
// (same verdicts as one by one); rand seeds the random linear combination.
// Unregistered clients are rejected without a signature check.
func (c Clients) VerifyBatch(cluster [32]byte, reqs []*wire.ClientRequest, rand interface{ Read([]byte) (int, error) }) []bool {
	ok := make([]bool, len(reqs))
	b := sig.NewBatch(len(reqs))
	var idx []int
	for i, req := range reqs {
		pk, known := c[req.Client]
		if !known {
			continue
		}
		b.AddKeyDomain(pk, req.Signature, RequestDomain, cluster[:], u64(req.Client), u64(req.Seq), req.Op)
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return ok
	}
	_, each := b.Verify(rand)
	for j, i := range idx {
		ok[i] = each[j]
	}
	return ok
}

// SignReply sets r.Signature with the replica's identity key.
func SignReply(key *sig.PrivateKey, cluster [32]byte, r *wire.Reply) {
	r.Signature = key.SignDomain(ReplyDomain, replyFields(cluster, r)...)
}

// VerifyReply checks a replica's signature on a reply (the replica's key
// expanded once: a client verifies many replies with it).
func VerifyReply(pk sig.VerifyKey, cluster [32]byte, r *wire.Reply) error {
	return pk.VerifyDomain(r.Signature, ReplyDomain, replyFields(cluster, r)...)
}

func replyFields(cluster [32]byte, r *wire.Reply) [][]byte {
	return [][]byte{cluster[:], u64(uint64(r.Replica)), u64(r.Client), u64(r.Seq), u64(r.Position), r.Result}
}
