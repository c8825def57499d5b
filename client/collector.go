package client

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/maftia/maftia/crypto/sig"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/smr"
	"github.com/maftia/maftia/wire"
)

// Errors a Collector reports for a reply it refuses (the reply is ignored;
// the caller counts it against the replica).
var (
	ErrBadReply     = errors.New("client: reply refused")
	ErrConflicting  = errors.New("client: replicas disagree beyond f")
	errNotForMe     = errors.New("reply for another request")
	errUnknownRepl  = errors.New("unknown replica")
	errBadSignature = errors.New("bad replica signature")
	errDuplicate    = errors.New("second reply from the same replica")
)

// Collector gathers the replies to one request and decides when f+1
// replicas vouch for the same result: at least one of them is correct, and
// a correct replica only reports what the replicated state machine
// computed. Pure and single-threaded.
//
// A reply counts only if it is authenticated as its replica's: by its
// signature, or — after TrustChannel — by the channel it came on.
type Collector struct {
	cluster  [32]byte
	f        int
	channel  bool // TrustChannel: replies are authenticated by their connection
	replicas map[uint32]sig.VerifyKey
	client   uint64
	seq      uint64
	from     map[uint32]bool
	votes    []vote
	// Certified mode (Certify): the result also needs f+1 valid shares of
	// the service's signature; badShare lists replicas whose share failed.
	service  *tsig.PublicKey
	badShare map[uint32]bool
	cert     smr.Certificate
}

type vote struct {
	result   []byte
	position uint64
	count    int
	replies  []*wire.Reply // certified mode
}

// NewCollector prepares to collect replies for (client, seq).
func NewCollector(cluster [32]byte, f int, replicas map[uint32]sig.VerifyKey, client, seq uint64) *Collector {
	return &Collector{cluster: cluster, f: f, replicas: replicas, client: client, seq: seq, from: map[uint32]bool{}}
}

// TrustChannel declares that the caller hands Add only replies that came
// on a connection authenticated as r.Replica (the client library's TLS
// connections are pinned to each replica's identity key from the cluster
// file, and Submit drops a reply naming another replica than its
// connection's): such a reply is the replica's (docs/adr/0009), so its
// signature is not checked here. The signature still makes a reply
// provable to third parties; the client checks it only on replies that
// disagree with the accepted result.
func (c *Collector) TrustChannel() { c.channel = true }

// Certify makes the collector finish only with a certificate: f+1
// matching replies whose shares of the service's signature (key pk, the
// cluster's reply key) combine into one valid signature.
func (c *Collector) Certify(pk *tsig.PublicKey) {
	c.service, c.badShare = pk, map[uint32]bool{}
}

// Certificate is the service's signature on the result (certified mode,
// once Add reported done).
func (c *Collector) Certificate() smr.Certificate { return c.cert }

// BadShares lists the replicas whose reply share did not verify.
func (c *Collector) BadShares() []uint32 {
	var out []uint32
	for id := range c.badShare {
		out = append(out, id)
	}
	return out
}

// Add records one reply. It returns the result once f+1 replicas sent
// matching (result, position) with valid signatures (and, in certified
// mode, shares that combine into the service's signature).
func (c *Collector) Add(r *wire.Reply) (result []byte, position uint64, done bool, err error) {
	if r.Client != c.client || r.Seq != c.seq {
		return nil, 0, false, fmt.Errorf("%w: %v", ErrBadReply, errNotForMe)
	}
	pk, ok := c.replicas[r.Replica]
	if !ok {
		return nil, 0, false, fmt.Errorf("%w: %v %d", ErrBadReply, errUnknownRepl, r.Replica)
	}
	if c.from[r.Replica] {
		return nil, 0, false, fmt.Errorf("%w: %v %d", ErrBadReply, errDuplicate, r.Replica)
	}
	if !c.channel { // (with TrustChannel the pinned connection vouched)
		if err := smr.VerifyReply(pk, c.cluster, r); err != nil {
			return nil, 0, false, fmt.Errorf("%w: replica %d: %v", ErrBadReply, r.Replica, errBadSignature)
		}
	}
	c.from[r.Replica] = true
	for i := range c.votes {
		v := &c.votes[i]
		if v.position == r.Position && bytes.Equal(v.result, r.Result) {
			v.count++
			v.replies = append(v.replies, r)
			if v.count >= c.f+1 && c.certified(v) {
				return v.result, v.position, true, nil
			}
			return nil, 0, false, nil
		}
	}
	c.votes = append(c.votes, vote{result: r.Result, position: r.Position, count: 1, replies: []*wire.Reply{r}})
	if c.f == 0 && c.certified(&c.votes[len(c.votes)-1]) {
		return r.Result, r.Position, true, nil
	}
	if len(c.votes) > c.f+1 {
		// f+2 distinct answers: more than f replicas lie — outside the model.
		return nil, 0, false, ErrConflicting
	}
	return nil, 0, false, nil
}

// Replies is the number of distinct replicas heard from.
func (c *Collector) Replies() int { return len(c.from) }

// certified reports whether v's result may be returned: always outside
// certified mode; in it, once the shares of f+1 of v's replies (those not
// already found bad) combine into the service's signature. Bad shares are
// remembered and their replicas' replies no longer offered.
func (c *Collector) certified(v *vote) bool {
	if c.service == nil {
		return true
	}
	var cand []*wire.Reply
	for _, r := range v.replies {
		if !c.badShare[r.Replica] && len(r.Share) > 0 {
			cand = append(cand, r)
		}
	}
	if len(cand) < c.f+1 {
		return false
	}
	cert, bad, err := smr.CombineReplyShares(c.service, c.cluster, cand)
	for _, id := range bad {
		c.badShare[id] = true
	}
	if err != nil {
		return false
	}
	c.cert = cert
	return true
}
