package smr_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"slices"
	"testing"

	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/smr"
	"github.com/maftia/maftia/wire"
)

func replyKeys(t testing.TB, n, f int) (*tsig.PublicKey, []*tsig.SecretShare) {
	t.Helper()
	pk, sks, err := tsig.Deal(rand.Reader, n, f+1, []byte("MAFTIA-TEST-REPLY"))
	if err != nil {
		t.Fatal(err)
	}
	return pk, sks
}

func certReplies(cluster [32]byte, sks []*tsig.SecretShare, result string) []*wire.Reply {
	var rs []*wire.Reply
	for i, sk := range sks {
		r := &wire.Reply{Client: 7, Seq: 9, Replica: uint32(i + 1), Position: 42, Result: []byte(result)}
		smr.SignReplyShare(sk, cluster, r)
		rs = append(rs, r)
	}
	return rs
}

// f+1 shares on one statement combine into a certificate that verifies
// under the service key alone; it binds the cluster, the request, the
// position and the result.
func TestCertificateBindsStatement(t *testing.T) {
	pk, sks := replyKeys(t, 4, 1)
	cluster := [32]byte{1}
	rs := certReplies(cluster, sks, "ok")
	cert, bad, err := smr.CombineReplyShares(pk, cluster, rs[2:])
	if err != nil || len(bad) != 0 {
		t.Fatalf("combine: %v, bad %v", err, bad)
	}
	if err := smr.VerifyCertificate(pk, cluster, cert); err != nil {
		t.Fatal(err)
	}
	back, err := smr.UnmarshalCertificate(cert.Marshal())
	if err != nil || smr.VerifyCertificate(pk, cluster, back) != nil {
		t.Fatalf("round trip: %v", err)
	}
	for name, mut := range map[string]func(*smr.Certificate){
		"result":   func(c *smr.Certificate) { c.Result = []byte("ko") },
		"position": func(c *smr.Certificate) { c.Position++ },
		"seq":      func(c *smr.Certificate) { c.Seq++ },
		"client":   func(c *smr.Certificate) { c.Client++ },
	} {
		c := cert
		c.Result = slices.Clone(cert.Result)
		mut(&c)
		if err := smr.VerifyCertificate(pk, cluster, c); !errors.Is(err, smr.ErrCertificate) {
			t.Fatalf("%s changed: %v", name, err)
		}
	}
	if err := smr.VerifyCertificate(pk, [32]byte{2}, cert); !errors.Is(err, smr.ErrCertificate) {
		t.Fatalf("another cluster: %v", err)
	}
	other, _ := replyKeys(t, 4, 1)
	if err := smr.VerifyCertificate(other, cluster, cert); !errors.Is(err, smr.ErrCertificate) {
		t.Fatalf("another service key: %v", err)
	}
}

// A share on another statement, a share under another replica's index
// and garbage are named; the certificate is refused until f+1 valid ones
// are there.
func TestCombineReplySharesNamesBadShares(t *testing.T) {
	pk, sks := replyKeys(t, 4, 1)
	cluster := [32]byte{3}
	rs := certReplies(cluster, sks, "ok")
	wrong := certReplies(cluster, sks, "other")
	rs[0].Share = wrong[0].Share           // replica 1: a share on another result
	rs[1].Share = []byte{1, 2, 3}          // replica 2: garbage
	rs[2].Share = bytes.Clone(rs[3].Share) // replica 3: replica 4's share
	_, bad, err := smr.CombineReplyShares(pk, cluster, rs[:3])
	if !errors.Is(err, smr.ErrCertificate) {
		t.Fatalf("combined from bad shares: %v", err)
	}
	slices.Sort(bad)
	if !slices.Equal(bad, []uint32{1, 2, 3}) {
		t.Fatalf("bad shares named %v, want [1 2 3]", bad)
	}
	good := certReplies(cluster, sks, "ok")
	cert, bad, err := smr.CombineReplyShares(pk, cluster, []*wire.Reply{rs[0], good[2], good[3]})
	if err != nil || !slices.Equal(bad, []uint32{1}) || smr.VerifyCertificate(pk, cluster, cert) != nil {
		t.Fatalf("with two good shares: %v, bad %v", err, bad)
	}
	if _, _, err := smr.CombineReplyShares(pk, cluster, []*wire.Reply{good[2], wrong[3]}); !errors.Is(err, smr.ErrCertificate) {
		t.Fatalf("replies on different statements combined: %v", err)
	}
}

func FuzzUnmarshalCertificate(f *testing.F) {
	pk, sks := replyKeys(f, 4, 1)
	cluster := [32]byte{4}
	cert, _, err := smr.CombineReplyShares(pk, cluster, certReplies(cluster, sks, "ok")[:2])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cert.Marshal())
	f.Add([]byte{})
	f.Add(make([]byte, 28))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := smr.UnmarshalCertificate(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Marshal(), b) {
			t.Fatal("not canonical")
		}
		if smr.VerifyCertificate(pk, cluster, c) == nil && !bytes.Equal(b, cert.Marshal()) {
			t.Fatal("a different certificate verifies")
		}
	})
}
