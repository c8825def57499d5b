package client

import (
	crand "crypto/rand"
	"errors"
	"testing"

	"github.com/maftia/maftia/crypto/sig"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/smr"
	"github.com/maftia/maftia/wire"
)

// replicaKeys generates identity keys for replicas 1–4.
func replicaKeys() (map[uint32]*sig.PrivateKey, map[uint32]sig.VerifyKey) {
	keys := map[uint32]*sig.PrivateKey{}
	pubs := map[uint32]sig.VerifyKey{}
	for id := uint32(1); id <= 4; id++ {
		pk, sk, _ := sig.GenerateKey(crand.Reader)
		keys[id], pubs[id] = sk, pk.Expand()
	}
	return keys, pubs
}

func TestCollectorNeedsFPlusOneMatchingSignedReplies(t *testing.T) {
	cluster := [32]byte{9}
	keys, pubs := replicaKeys()
	reply := func(id uint32, result string, pos uint64) *wire.Reply {
		r := &wire.Reply{Client: 5, Seq: 3, Replica: id, Result: []byte(result), Position: pos}
		smr.SignReply(keys[id], cluster, r)
		return r
	}
	c := NewCollector(cluster, 1, pubs, 5, 3)
	// A Byzantine replica's lie alone never decides.
	if _, _, done, err := c.Add(reply(4, "lie", 9)); done || err != nil {
		t.Fatalf("lie decided: %v", err)
	}
	forged := reply(1, "ok", 2)
	forged.Result = []byte("lie")
	forged.Position = 9
	if _, _, _, err := c.Add(forged); !errors.Is(err, ErrBadReply) {
		t.Fatalf("forged reply: %v", err)
	}
	if _, _, _, err := c.Add(reply(4, "ok", 2)); !errors.Is(err, ErrBadReply) {
		t.Fatalf("second reply from 4: %v", err)
	}
	other := reply(1, "ok", 2)
	other.Seq = 4
	if _, _, _, err := c.Add(other); !errors.Is(err, ErrBadReply) {
		t.Fatal("reply for another seq accepted")
	}
	if _, _, done, _ := c.Add(reply(1, "ok", 2)); done {
		t.Fatal("decided on one reply")
	}
	res, pos, done, err := c.Add(reply(2, "ok", 2))
	if !done || err != nil || string(res) != "ok" || pos != 2 {
		t.Fatalf("got %q %d %v %v", res, pos, done, err)
	}
}

// With TrustChannel the collector takes each reply as its replica's
// without checking signatures (the caller's pinned connection vouched),
// but still needs f+1 distinct replicas to agree: f liars decide nothing.
func TestCollectorTrustChannelStillNeedsFPlusOneReplicas(t *testing.T) {
	cluster := [32]byte{9}
	_, pubs := replicaKeys()
	unsigned := func(id uint32, result string) *wire.Reply {
		return &wire.Reply{Client: 5, Seq: 3, Replica: id, Result: []byte(result), Position: 2}
	}
	c := NewCollector(cluster, 1, pubs, 5, 3)
	c.TrustChannel()
	if _, _, done, err := c.Add(unsigned(4, "lie")); done || err != nil {
		t.Fatalf("lie: done=%v err=%v", done, err)
	}
	if _, _, _, err := c.Add(unsigned(4, "ok")); !errors.Is(err, ErrBadReply) {
		t.Fatalf("second reply from 4: %v", err)
	}
	if _, _, done, err := c.Add(unsigned(1, "ok")); done || err != nil {
		t.Fatalf("one reply: done=%v err=%v", done, err)
	}
	res, _, done, err := c.Add(unsigned(2, "ok"))
	if !done || err != nil || string(res) != "ok" {
		t.Fatalf("got %q %v %v", res, done, err)
	}
	// Without TrustChannel the same unsigned replies are refused.
	strict := NewCollector(cluster, 1, pubs, 5, 3)
	if _, _, _, err := strict.Add(unsigned(1, "ok")); !errors.Is(err, ErrBadReply) {
		t.Fatalf("unsigned reply accepted without TrustChannel: %v", err)
	}
}

// In certified mode f+1 matching replies are not enough when one carries
// an invalid share of the service's signature: the collector names it and
// finishes with the next matching reply, holding a certificate that
// verifies under the service key.
func TestCollectorCertifiedSkipsInvalidShares(t *testing.T) {
	cluster := [32]byte{8}
	keys, pubs := replicaKeys()
	service, shares, err := tsig.Deal(crand.Reader, 4, 2, []byte("MAFTIA-TEST-REPLY"))
	if err != nil {
		t.Fatal(err)
	}
	reply := func(id uint32, sharePos uint64) *wire.Reply {
		r := &wire.Reply{Client: 5, Seq: 3, Replica: id, Result: []byte("ok"), Position: sharePos}
		smr.SignReplyShare(shares[id-1], cluster, r)
		r.Position = 2
		smr.SignReply(keys[id], cluster, r)
		return r
	}
	c := NewCollector(cluster, 1, pubs, 5, 3)
	c.Certify(service)
	if _, _, done, err := c.Add(reply(1, 7)); done || err != nil { // share on position 7
		t.Fatalf("first reply: done %v, %v", done, err)
	}
	if _, _, done, err := c.Add(reply(2, 2)); done || err != nil {
		t.Fatalf("certified with an invalid share: done %v, %v", done, err)
	}
	if bad := c.BadShares(); len(bad) != 1 || bad[0] != 1 {
		t.Fatalf("bad shares %v, want [1]", bad)
	}
	if _, _, done, err := c.Add(reply(3, 2)); !done || err != nil {
		t.Fatalf("not certified with two valid shares: %v", err)
	}
	if err := smr.VerifyCertificate(service, cluster, c.Certificate()); err != nil {
		t.Fatal(err)
	}
}
