package client

import (
	crand "crypto/rand"
	"errors"
	"testing"

	"github.com/maftia/maftia/crypto/sig"
	"github.com/maftia/maftia/smr"
	"github.com/maftia/maftia/wire"
)

func TestCollectorNeedsFPlusOneMatchingSignedReplies(t *testing.T) {
	cluster := [32]byte{9}
	keys := map[uint32]*sig.PrivateKey{}
	pubs := map[uint32]sig.PublicKey{}
	for id := uint32(1); id <= 4; id++ {
		pk, sk, _ := sig.GenerateKey(crand.Reader)
		keys[id], pubs[id] = sk, pk
	}
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
