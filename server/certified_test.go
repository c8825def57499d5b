package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/maftia/maftia/apps/kv"
	"github.com/maftia/maftia/crypto/keys"
	"github.com/maftia/maftia/smr"
	"github.com/maftia/maftia/wire"
)

// TestCertifiedRepliesDespiteInvalidShares (issue 7, "one reply carrying
// the service's threshold signature"; ATTACKS row 7): a client asks for
// certified replies while replica 4 attaches reply shares on another
// statement. Every result comes with one signature that verifies under the
// cluster's reply key alone, names the request, its position and its
// result, and replica 4's bad shares are counted against it. The same on
// the hybrid configuration (n = 3, replica 3 the attacker).
func TestCertifiedRepliesDespiteInvalidShares(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	for _, tc := range []struct {
		cfg keys.Configuration
		n   int
	}{{keys.Async, 4}, {keys.Hybrid, 3}} {
		t.Run(string(tc.cfg), func(t *testing.T) {
			l, _ := startTuned(t, tc.cfg, tc.n, 1, 1, func(l *Local) { l.Attacks = map[uint32]Attack{uint32(tc.n): AttackInvalidShares} })
			certifiedPuts(t, l, uint32(tc.n))
		})
	}
}

func certifiedPuts(t *testing.T, l *Local, bad uint32) {
	c := dial(t, l, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	digest := l.Cluster.Digest()
	var last uint64
	i := 0
	for ; i < 60 && (i < 10 || c.Faults()[bad] == 0); i++ {
		op := kv.EncodeOp(&wire.KVOp{Kind: wire.KVOp_PUT, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte("v")})
		cert, err := c.SubmitCertified(ctx, op)
		if err != nil {
			t.Fatalf("certified put %d: %v", i, err)
		}
		if err := smr.VerifyCertificate(l.Cluster.Reply, digest, cert); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		back, err := smr.UnmarshalCertificate(cert.Marshal())
		if err != nil || smr.VerifyCertificate(l.Cluster.Reply, digest, back) != nil {
			t.Fatalf("put %d: certificate does not survive encoding: %v", i, err)
		}
		if cert.Client != c.ID() || cert.Position <= last {
			t.Fatalf("put %d: certificate for client %d at position %d (after %d)", i, cert.Client, cert.Position, last)
		}
		last = cert.Position
		if r, err := kv.DecodeResult(cert.Result); err != nil || r.Error != "" {
			t.Fatalf("put %d: certified result %v %v", i, r, err)
		}
		forged := cert
		forged.Result = append([]byte(nil), cert.Result...)
		forged.Result = append(forged.Result, 0)
		if smr.VerifyCertificate(l.Cluster.Reply, digest, forged) == nil {
			t.Fatal("a certificate verifies for another result")
		}
	}
	// Plain and certified requests mix on one client.
	if _, err := (kv.Client{S: c}).Get(ctx, []byte("k0")); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d certified puts; invalid reply shares counted against replica %d: %d", i, bad, c.Faults()[bad])
	if c.Faults()[bad] == 0 {
		t.Fatalf("replica %d's invalid shares were never detected", bad)
	}
	for id := uint32(1); id < bad; id++ {
		if c.Faults()[id] != 0 {
			t.Fatalf("correct replica %d counted faulty", id)
		}
	}
}
