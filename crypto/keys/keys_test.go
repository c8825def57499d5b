package keys

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maftia/maftia/crypto/coin"
	"github.com/maftia/maftia/crypto/internal/cryptotest"
	"github.com/maftia/maftia/crypto/sig"
	"github.com/maftia/maftia/crypto/tenc"
	"github.com/maftia/maftia/crypto/tsig"
)

func hosts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.0.%d:7000", i+1)
	}
	return out
}

func gen(t testing.TB, n, f int, cfg string) (*Cluster, []*Private) {
	t.Helper()
	c, p, err := Generate(rand.Reader, n, f, hosts(n), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, p
}

// TestWriteLoadRoundTrip: generate, write, load and use every key of every
// replica over the sweep; a quorum of replicas certifies, f+1 decrypt, f+1
// toss the coin.
func TestWriteLoadRoundTrip(t *testing.T) {
	cfgs := cryptotest.Configs()
	if !cryptotest.Full() {
		cfgs = cfgs[:2]
	}
	for _, cf := range cfgs {
		t.Run(fmt.Sprintf("n=%d/f=%d", cf.N, cf.F), func(t *testing.T) {
			c, privs := gen(t, cf.N, cf.F, "async")
			clients, err := c.AddClients(rand.Reader, 2)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := WriteDir(dir, c, privs, clients...); err != nil {
				t.Fatal(err)
			}
			c2, err := LoadCluster(filepath.Join(dir, ClusterFileName))
			if err != nil {
				t.Fatal(err)
			}
			if c2.Digest() != c.Digest() || len(c2.Clients) != 2 {
				t.Fatal("cluster changed in the round trip")
			}
			msg := []byte("cert")
			name := coin.Name([]byte("x"))
			ct, _ := tenc.Encrypt(nil, c2.Decrypt, nil, []byte("secret"))
			checked, err := c2.Decrypt.Check(ct, nil)
			if err != nil {
				t.Fatal(err)
			}
			var qs, cs []tsig.Share
			var ds []tenc.Share
			for id := 1; id <= cf.N; id++ {
				path := filepath.Join(dir, ReplicaKeyFile(uint32(id)))
				st, _ := os.Stat(path)
				if st.Mode().Perm() != 0o600 {
					t.Fatalf("mode %v", st.Mode())
				}
				p, err := LoadPrivate(path, c2)
				if err != nil {
					t.Fatal(err)
				}
				m, _ := c2.Member(uint32(id))
				if sig.VerifyDomain(m.Identity, p.Identity.SignDomain("d", msg), "d", msg) != nil {
					t.Fatal("identity")
				}
				qs = append(qs, tsig.SignShare(p.Quorum, msg))
				cs = append(cs, coin.ShareFor(p.Coin, name))
				d, err := tenc.DecryptShare(nil, p.Decrypt, checked)
				if err != nil {
					t.Fatal(err)
				}
				ds = append(ds, d)
				if s := fmt.Sprintf("%v %+v %#v", p, p, p); strings.Contains(s, "share") && strings.Contains(s, "0x") {
					t.Fatal(s)
				}
			}
			if _, bad, err := tsig.Combine(c2.Quorum, qs[:cf.N-cf.F], msg); err != nil || bad != nil {
				t.Fatal(err)
			}
			if _, _, err := tsig.Combine(c2.Quorum, qs[:cf.N-cf.F-1], msg); !errors.Is(err, tsig.ErrTooFewShares) {
				t.Fatal("quorum threshold is not n-f")
			}
			if _, _, err := c2.Coin.Toss(cs[:cf.F+1], name); err != nil {
				t.Fatal(err)
			}
			if pt, _, err := tenc.Combine(c2.Decrypt, checked, ds[:cf.F+1]); err != nil || string(pt) != "secret" {
				t.Fatal(err)
			}
			for _, cl := range clients {
				cp, err := LoadClientPrivate(filepath.Join(dir, ClientKeyFile(cl.ID)), c2)
				if err != nil {
					t.Fatal(err)
				}
				pub, _ := c2.Client(cl.ID)
				if cp.Identity.Public() != pub.Identity {
					t.Fatal("client identity")
				}
			}
		})
	}
}

func TestPrivateFileRefusals(t *testing.T) {
	c, privs := gen(t, 4, 1, "async")
	dir := t.TempDir()
	if err := WriteDir(dir, c, privs); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, ReplicaKeyFile(1))

	// Group/world readable.
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadPrivate(path, c); !errors.Is(err, ErrInsecureFile) {
			t.Fatalf("mode %#o: %v", mode, err)
		}
	}
	os.Chmod(path, 0o600)

	// Never overwrite.
	if err := WriteDir(dir, c, privs); !errors.Is(err, ErrFileExists) {
		t.Fatalf("overwrite: %v", err)
	}

	// Another cluster.
	other, _ := gen(t, 4, 1, "async")
	if _, err := LoadPrivate(path, other); !errors.Is(err, ErrWrongCluster) {
		t.Fatalf("wrong cluster: %v", err)
	}

	data, _ := os.ReadFile(path)
	// Replica 2's file renamed to claim id 1: digest ok, shares inconsistent.
	data2, _ := os.ReadFile(filepath.Join(dir, ReplicaKeyFile(2)))
	swapped := bytes.Replace(data2, []byte("\nid: 2\n"), []byte("\nid: 1\n"), 1)
	if _, err := ParsePrivate(swapped, c); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("swapped id: %v", err)
	}
	// One share replaced by another replica's.
	mix := replaceField(t, data, "coin_share", fieldOf(t, data2, "coin_share"))
	if _, err := ParsePrivate(mix, c); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("mixed share: %v", err)
	}
	for _, bad := range [][]byte{
		[]byte("format: maftia-replica-key/v1\nbogus: 1\n"),
		replaceField(t, data, "format", "maftia-replica-key/v0"),
		replaceField(t, data, "quorum_share", "zz"),
		replaceField(t, data, "identity", "00"),
		[]byte("\x00\x01"),
		append(bytes.Clone(data), []byte("---\nid: 3\n")...),
	} {
		if _, err := ParsePrivate(bad, c); !errors.Is(err, ErrMalformed) {
			t.Fatalf("malformed %q: %v", bad[:min(len(bad), 40)], err)
		}
	}
	if p, err := ParsePrivate(data, c); err != nil || p.ID != 1 {
		t.Fatal(err)
	}
}

func fieldOf(t *testing.T, data []byte, field string) string {
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, field+": "); ok {
			return v
		}
	}
	t.Fatalf("no field %s", field)
	return ""
}

func replaceField(t *testing.T, data []byte, field, value string) []byte {
	old := field + ": " + fieldOf(t, data, field)
	return bytes.Replace(data, []byte(old), []byte(field+": "+value), 1)
}

func TestClusterRefusals(t *testing.T) {
	c, _ := gen(t, 4, 1, "async")
	if _, err := c.AddClients(rand.Reader, 1); err != nil {
		t.Fatal(err)
	}
	data, err := MarshalCluster(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCluster(data); err != nil {
		t.Fatal(err)
	}
	s := string(data)
	cases := []struct {
		name string
		edit string
		want error
	}{
		{"resilience", strings.Replace(s, "\nf: 1\n", "\nf: 2\n", 1), ErrResilience},
		{"configuration", strings.Replace(s, "configuration: async", "configuration: sync", 1), ErrBadParams},
		{"duplicate address", strings.Replace(s, "10.0.0.2:7000", "10.0.0.1:7000", 1), ErrDuplicate},
		{"bad address", strings.Replace(s, "10.0.0.2:7000", "10.0.0.2", 1), ErrMalformed},
		{"duplicate id", strings.Replace(s, "id: 2\n", "id: 1\n", 1), ErrDuplicate},
		{"thresholds", strings.Replace(s, "quorum: 3", "quorum: 2", 1), ErrMalformed},
		{"unknown field", strings.Replace(s, "name: maftia", "name: maftia\nextra: 1", 1), ErrMalformed},
		{"non-subgroup key", strings.Replace(s, "quorum_key: "+fieldOfAny(s, "quorum_key"), "quorum_key: "+fmt.Sprintf("%x", cryptotest.NonSubgroupG2()), 1), ErrMalformed},
		{"identity-element key", strings.Replace(s, "coin_key: "+fieldOfAny(s, "coin_key"), "coin_key: "+fmt.Sprintf("%x", cryptotest.IdentityG2()), 1), ErrMalformed},
		{"weak identity", strings.Replace(s, "identity: "+fieldOfAny(s, "identity"), "identity: 0100000000000000000000000000000000000000000000000000000000000000", 1), ErrMalformed},
	}
	for _, tc := range cases {
		if tc.edit == s {
			t.Fatalf("%s: edit did not apply", tc.name)
		}
		if _, err := ParseCluster([]byte(tc.edit)); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// Subgroup failure is named by tsig inside the wrap.
	_, err = ParseCluster([]byte(cases[7].edit))
	if !errors.Is(err, tsig.ErrNotInSubgroup) {
		t.Errorf("non-subgroup cause lost: %v", err)
	}
}

func fieldOfAny(s, field string) string {
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "- "))
		if v, ok := strings.CutPrefix(l, field+": "); ok {
			return v
		}
	}
	return ""
}

func TestGenerateRefusals(t *testing.T) {
	if _, _, err := Generate(rand.Reader, 3, 1, hosts(3), "async"); !errors.Is(err, ErrResilience) {
		t.Fatal(err)
	}
	if _, _, err := Generate(rand.Reader, 3, 1, hosts(3), "hybrid"); err != nil {
		t.Fatal("hybrid n=2f+1 must be accepted:", err)
	}
	if _, _, err := Generate(rand.Reader, 2, 1, hosts(2), "hybrid"); !errors.Is(err, ErrResilience) {
		t.Fatal(err)
	}
	if _, _, err := Generate(rand.Reader, 4, 1, hosts(3), "async"); !errors.Is(err, ErrBadParams) {
		t.Fatal(err)
	}
	h := hosts(4)
	h[3] = h[0]
	if _, _, err := Generate(rand.Reader, 4, 1, h, "async"); !errors.Is(err, ErrDuplicate) {
		t.Fatal(err)
	}
}

// TestHandWrittenYAML: an operator may write `n: 4` unquoted (the encoder
// quotes "n" for YAML 1.1 compatibility); both must parse the same.
func TestHandWrittenYAML(t *testing.T) {
	c, _ := gen(t, 4, 1, "async")
	data, _ := MarshalCluster(c)
	plain := bytes.Replace(data, []byte(`"n": 4`), []byte("n: 4"), 1)
	if bytes.Equal(plain, data) {
		t.Skip("encoder no longer quotes n")
	}
	c2, err := ParseCluster(plain)
	if err != nil || c2.Digest() != c.Digest() {
		t.Fatal(err)
	}
}

// TestGenerateDeterministic: with a seeded reader the dealer is
// reproducible (the simulator relies on this to replay a run from a seed).
func TestGenerateDeterministic(t *testing.T) {
	seed := [32]byte{42}
	c1, _, err := Generate(mrand.NewChaCha8(seed), 4, 1, hosts(4), "async")
	if err != nil {
		t.Fatal(err)
	}
	c2, _, _ := Generate(mrand.NewChaCha8(seed), 4, 1, hosts(4), "async")
	c3, _, _ := Generate(mrand.NewChaCha8([32]byte{43}), 4, 1, hosts(4), "async")
	if c1.Digest() != c2.Digest() || c1.Digest() == c3.Digest() {
		t.Fatal("dealer is not a function of its randomness")
	}
}

// TestSchemesAreSeparated: a share made with one replica key (quorum) is
// refused under every other threshold key (reply, coin) — each use has its
// own key and DST (ATTACKS.md row 11, cross-use replay).
func TestSchemesAreSeparated(t *testing.T) {
	c, privs := gen(t, 4, 1, "async")
	msg := []byte("m")
	s := tsig.SignShare(privs[0].Quorum, msg)
	if err := tsig.VerifyShare(c.Quorum, s, msg); err != nil {
		t.Fatal(err)
	}
	if err := tsig.VerifyShare(c.Reply, s, msg); !errors.Is(err, tsig.ErrWrongKey) {
		t.Fatalf("quorum share under reply key: %v", err)
	}
	if err := c.Coin.VerifyShare(s, msg); !errors.Is(err, tsig.ErrWrongKey) {
		t.Fatalf("quorum share as coin share: %v", err)
	}
}

func TestMemberClientAddress(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:7001":  "127.0.0.1:8001",
		"h1:65000":        "h1:64000",
		"[::1]:7000":      "[::1]:8000",
		"example.org:535": "example.org:1535",
	} {
		if got := (Member{Address: addr}).ClientAddress(); got != want {
			t.Errorf("ClientAddress(%s) = %s, want %s", addr, got, want)
		}
	}
}
