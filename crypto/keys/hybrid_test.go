package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The hybrid schedule round-trips through the cluster file, is refused
// when malformed or in an async cluster, and changes the schedule digest
// but not the key digest.
func TestHybridScheduleInClusterFile(t *testing.T) {
	c, _, err := Generate(rand.Reader, 3, 1, []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}, string(Hybrid))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hybrid == nil {
		t.Fatal("no default schedule for a hybrid cluster")
	}
	c.Hybrid.Start = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for range 3 {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		c.Hybrid.Modules = append(c.Hybrid.Modules, pub)
	}
	b, err := MarshalCluster(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ParseCluster(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c2.Hybrid, c.Hybrid) || c2.Digest() != c.Digest() {
		t.Fatalf("round trip: %+v vs %+v", c2.Hybrid, c.Hybrid)
	}
	d1 := c.Hybrid.ScheduleDigest(c.Digest())
	c2.Hybrid.Start = c2.Hybrid.Start.Add(time.Second)
	if c2.Hybrid.ScheduleDigest(c2.Digest()) == d1 || c2.Digest() != c.Digest() {
		t.Fatal("moving the start must change the schedule digest and only it")
	}
	for name, edit := range map[string]func(string) string{
		"bad start": func(s string) string {
			return strings.Replace(s, "start: \"2026-11-25T12:00:00Z\"", "start: tomorrow", 1)
		},
		"zero window":    func(s string) string { return strings.Replace(s, "window: 20ms", "window: 0s", 1) },
		"tiny retention": func(s string) string { return strings.Replace(s, "retention: 10m0s", "retention: 1s", 1) },
	} {
		bad := edit(string(b))
		if bad == string(b) {
			t.Fatalf("%s: edit did not apply to\n%s", name, b)
		}
		if _, err := ParseCluster([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	a, _, err := Generate(rand.Reader, 4, 1, []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"}, string(Async))
	if err != nil {
		t.Fatal(err)
	}
	a.Hybrid = c.Hybrid
	ab, _ := MarshalCluster(a)
	if _, err := ParseCluster(ab); !errors.Is(err, ErrMalformed) {
		t.Fatalf("schedule in an async cluster: %v", err)
	}
}
