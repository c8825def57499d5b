package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/maftia/maftia/server"
)

// TestDemoDetectsEachAttack runs the demo with short phases for every
// attack: it must end by itself, with no wrong answer, progress under
// attack and the attack detected (runDemo returns an error otherwise).
func TestDemoDetectsEachAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	for _, a := range server.Attacks {
		t.Run(string(a), func(t *testing.T) {
			var out bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			err := runDemo(ctx, demoOptions{attack: string(a), byzantine: 4, clients: 8, phase: 3 * time.Second, payload: 64}, &out)
			if err != nil {
				t.Fatalf("demo --attack %s: %v\n%s", a, err, out.String())
			}
			if !strings.Contains(out.String(), "result         OK") || !strings.Contains(out.String(), "certified read of c0/k0") {
				t.Fatalf("no OK summary:\n%s", out.String())
			}
		})
	}
}

// The demo on the hybrid configuration (3 replicas, 3 TTCB modules):
// correct answers, progress with replica 3 forging batches, and the
// forgery reported as evidence.
func TestDemoHybrid(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster")
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	err := runDemo(ctx, demoOptions{config: "hybrid", attack: "equivocate", clients: 8, phase: 4 * time.Second, payload: 64}, &out)
	if err != nil {
		t.Fatalf("demo --config hybrid: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "n=3 replicas") || !strings.Contains(out.String(), "result         OK") {
		t.Fatalf("no OK summary:\n%s", out.String())
	}
	t.Log(out.String())
}
