package smr

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"

	"github.com/maftia/maftia/crypto/merkle"
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

// MaxReplyBatch bounds the replies one signature covers (SignReplies) and
// the batch_size a verifier accepts: a proof has at most
// merkle.Depth(MaxReplyBatch) = 10 sibling hashes.
const MaxReplyBatch = 1024

// ReplyBatchDomain is the domain of a replica's signature over the root of
// a batch of replies.
const ReplyBatchDomain = "maftia/smr/reply-batch/v1"

// SignReply signs one reply (a batch of one).
func SignReply(key *sig.PrivateKey, cluster [32]byte, r *wire.Reply) {
	SignReplies(key, cluster, []*wire.Reply{r})
}

// SignReplies signs replies of one replica (all with the same Replica
// field) with one Ed25519 signature per MaxReplyBatch of them: over the
// root of the Merkle tree whose leaves are the replies' signed fields,
// bound to the cluster, the replica and the batch size. Each reply gets
// the signature, its index and its proof, and verifies on its own
// (VerifyReply), so a wrong result stays provable to third parties; the
// cost is one signature per batch plus 2·log₂(batch) hashes per reply.
func SignReplies(key *sig.PrivateKey, cluster [32]byte, rs []*wire.Reply) {
	for len(rs) > MaxReplyBatch {
		SignReplies(key, cluster, rs[:MaxReplyBatch])
		rs = rs[MaxReplyBatch:]
	}
	if len(rs) == 0 {
		return
	}
	leaves := make([][merkle.Size]byte, len(rs))
	for i, r := range rs {
		leaves[i] = replyLeaf(cluster, r)
	}
	root, proofs := merkle.Build(leaves, replyPad)
	signature := key.SignDomain(ReplyBatchDomain, cluster[:], u64(uint64(rs[0].Replica)), u64(uint64(len(rs))), root[:])
	for i, r := range rs {
		r.Signature, r.BatchSize, r.BatchIndex, r.BatchPath = signature, uint32(len(rs)), uint32(i), proofs[i]
	}
}

// ErrReplyProof: a reply's batch index, size or Merkle path is malformed.
var ErrReplyProof = errors.New("smr: malformed reply batch proof")

// VerifyReply checks a replica's signature on a reply: the reply's leaf
// folds along its path to a root the replica signed (the replica's key
// expanded once: a client verifies many replies with it).
func VerifyReply(pk sig.VerifyKey, cluster [32]byte, r *wire.Reply) error {
	if r.BatchSize == 0 || r.BatchSize > MaxReplyBatch {
		return ErrReplyProof
	}
	root, ok := merkle.Fold(replyLeaf(cluster, r), int(r.BatchSize), int(r.BatchIndex), r.BatchPath)
	if !ok {
		return ErrReplyProof
	}
	return pk.VerifyDomain(r.Signature, ReplyBatchDomain, cluster[:], u64(uint64(r.Replica)), u64(uint64(r.BatchSize)), root[:])
}

// replyLeaf is H(0x00 ‖ Encode(ReplyDomain, cluster, replica, client,
// seq, position, result)): length-prefixed fields, so no two replies share
// a leaf.
func replyLeaf(cluster [32]byte, r *wire.Reply) [merkle.Size]byte {
	enc := sig.Encode(ReplyDomain, cluster[:], u64(uint64(r.Replica)), u64(r.Client), u64(r.Seq), u64(r.Position), r.Result)
	return sha256.Sum256(append([]byte{merkle.TagLeaf}, enc...))
}

// replyPad fills a reply tree up to a power of two: H(0x02 ‖ domain ‖ i).
func replyPad(i int) [merkle.Size]byte {
	return sha256.Sum256(append(append([]byte{merkle.TagPadding}, ReplyBatchDomain...), u64(uint64(i))...))
}
