package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
)

var fuzzCluster, fuzzPrivs, _ = Generate(rand.Reader, 4, 1, []string{"a:1", "b:1", "c:1", "d:1"}, "async")

func FuzzParseCluster(f *testing.F) {
	data, _ := MarshalCluster(fuzzCluster)
	f.Add(data)
	f.Add([]byte("format: maftia-cluster/v1\nn: 1000000000\n"))
	f.Add([]byte("members: [{id: 0}]"))
	// A hybrid cluster file: the schedule section, with module keys.
	hc, _, _ := Generate(rand.Reader, 3, 1, []string{"a:1", "b:1", "c:1"}, "hybrid")
	for range 3 {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		hc.Hybrid.Modules = append(hc.Hybrid.Modules, pub)
	}
	hdata, _ := MarshalCluster(hc)
	f.Add(hdata)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCluster(b)
		if err != nil {
			return
		}
		if _, err := MarshalCluster(c); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzParsePrivate(f *testing.F) {
	f.Add(MarshalPrivate(fuzzCluster, fuzzPrivs[0]))
	f.Add([]byte("format: maftia-replica-key/v1\nid: 9\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParsePrivate(b, fuzzCluster)
	})
}

func FuzzParseClientPrivate(f *testing.F) {
	c := *fuzzCluster
	cls, _ := c.AddClients(rand.Reader, 1)
	f.Add(MarshalClientPrivate(&c, cls[0]))
	f.Add([]byte("format: maftia-client-key/v1\nid: 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseClientPrivate(b, &c)
	})
}
