package client

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/maftia/maftia/crypto/keys"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A replica that accepts connections and never answers.
func blackHole(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestSubmitHonoursDeadline: with replicas that never answer (two
// unreachable, two accepting TCP but never completing TLS), Submit returns
// the context's error at its deadline, and Close leaves no goroutine.
func TestSubmitHonoursDeadline(t *testing.T) {
	hosts := []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7004"}
	c, _, err := keys.Generate(rand.Reader, 4, 1, hosts, string(keys.Async))
	if err != nil {
		t.Fatal(err)
	}
	cks, err := c.AddClients(rand.Reader, 1)
	if err != nil {
		t.Fatal(err)
	}
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	addrs := []string{deadAddr, deadAddr, blackHole(t).Addr().String(), blackHole(t).Addr().String()}
	cl, err := Dial(c, cks[0], Options{Addresses: addrs, Retry: 50 * time.Millisecond, DialTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = cl.Submit(ctx, []byte("op"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Submit took %v with a 300 ms deadline", el)
	}
	cl.Close()
	if _, err := cl.Submit(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}

// TestSequenceNumbersStartFromTheClock: a client restarted later never
// reuses a sequence number (documented on Client).
func TestSequenceNumbersStartFromTheClock(t *testing.T) {
	c, _, err := keys.Generate(rand.Reader, 4, 1, []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7004"}, string(keys.Async))
	if err != nil {
		t.Fatal(err)
	}
	cks, _ := c.AddClients(rand.Reader, 1)
	a, _ := Dial(c, cks[0], Options{})
	time.Sleep(2 * time.Microsecond)
	b, _ := Dial(c, cks[0], Options{})
	if b.seq <= a.seq {
		t.Fatalf("second process starts at %d, first at %d", b.seq, a.seq)
	}
	a.Close()
	b.Close()
}
