package smr

import (
	crand "crypto/rand"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/crypto/sig"
	"github.com/maftia/maftia/wire"
)

func batchOfReplies(n int, replica uint32) []*wire.Reply {
	rs := make([]*wire.Reply, n)
	for i := range rs {
		rs[i] = &wire.Reply{Client: uint64(i + 1), Seq: 7, Replica: replica, Result: fmt.Appendf(nil, "r%d", i), Position: uint64(100 + i)}
	}
	return rs
}

// One signature covers a batch, and every reply of it verifies on its own
// against the replica's key — and only there, only as itself.
func TestReplyBatchEachReplyVerifiesAlone(t *testing.T) {
	pk, sk, err := sig.GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, other, _ := sig.GenerateKey(crand.Reader)
	vk := pk.Expand()
	cluster, foreign := [32]byte{1}, [32]byte{2}
	for _, n := range []int{1, 2, 3, 8, 33, 256, MaxReplyBatch + 3} {
		rs := batchOfReplies(n, 3)
		SignReplies(sk, cluster, rs)
		for i, r := range rs {
			if err := VerifyReply(vk, cluster, r); err != nil {
				t.Fatalf("n=%d reply %d: %v", n, i, err)
			}
			if VerifyReply(vk, foreign, r) == nil {
				t.Fatalf("n=%d reply %d verified under another cluster", n, i)
			}
			for name, mutate := range map[string]func(*wire.Reply){
				"result":   func(m *wire.Reply) { m.Result = append(m.Result, 'x') },
				"position": func(m *wire.Reply) { m.Position++ },
				"client":   func(m *wire.Reply) { m.Client++ },
				"seq":      func(m *wire.Reply) { m.Seq++ },
				"replica":  func(m *wire.Reply) { m.Replica++ },
				"index":    func(m *wire.Reply) { m.BatchIndex = (m.BatchIndex + 1) % m.BatchSize },
				"size":     func(m *wire.Reply) { m.BatchSize++ },
				"no size":  func(m *wire.Reply) { m.BatchSize = 0 },
				"huge":     func(m *wire.Reply) { m.BatchSize = MaxReplyBatch + 1 },
				"path": func(m *wire.Reply) {
					if len(m.BatchPath) > 0 {
						m.BatchPath[0] ^= 1
					} else {
						m.BatchPath = make([]byte, 32)
					}
				},
			} {
				m := proto.Clone(r).(*wire.Reply)
				mutate(m)
				if proto.Equal(m, r) {
					continue // e.g. index in a batch of one
				}
				if VerifyReply(vk, cluster, m) == nil {
					t.Fatalf("n=%d reply %d with another %s verified", n, i, name)
				}
			}
		}
		// Another replica's key over the same replies: refused.
		SignReplies(other, cluster, rs)
		if VerifyReply(vk, cluster, rs[0]) == nil {
			t.Fatalf("n=%d: a reply signed by another key verified", n)
		}
	}
}

// FuzzVerifyReply: any bytes a replica sends as a reply body decode or
// not, and a decoded reply verifies or not — never a panic; only the
// signed seeds verify.
func FuzzVerifyReply(f *testing.F) {
	pk, sk, err := sig.GenerateKey(crand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	vk, cluster := pk.Expand(), [32]byte{9}
	for _, n := range []int{1, 5} {
		rs := batchOfReplies(n, 2)
		SignReplies(sk, cluster, rs)
		b, _ := proto.Marshal(rs[n-1])
		f.Add(b)
	}
	f.Add([]byte{0x40, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x4a, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r wire.Reply
		if proto.Unmarshal(b, &r) != nil {
			return
		}
		_ = VerifyReply(vk, cluster, &r)
	})
}
