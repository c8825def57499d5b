package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maftia/maftia/ttcb"
)

// Bad configurations are refused with clear errors (ATTACKS row 8 for
// the configuration file; key files must be private).
func TestTTCBConfigErrors(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key := filepath.Join(dir, "m.key")
	if err := ttcb.WritePrivateKey(key, priv); err != nil {
		t.Fatal(err)
	}
	good := "id: 1\nf: 0\nsocket: m.sock\nstate_file: m.state\nkey_file: m.key\nmodules:\n  - {id: 1, control: \"127.0.0.1:0\"}\n"
	write := func(s string) string {
		p := filepath.Join(dir, "ttcb.yaml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, _, err := loadTTCBConfig(write(good))
	if err != nil {
		t.Fatalf("good config: %v", err)
	}
	if cfg.Socket != filepath.Join(dir, "m.sock") || cfg.Check() != nil {
		t.Fatalf("config %+v: %v", cfg, cfg.Check())
	}
	for name, bad := range map[string]string{
		"unknown field": good + "bogus: 1\n",
		"not yaml":      "{{{",
		"bad duration":  good + "delta: soon\n",
		"entity key":    good + "entities:\n  - {id: 1, public_key: zz}\n",
		"missing key":   strings.Replace(good, "m.key", "nope.key", 1),
	} {
		if _, _, err := loadTTCBConfig(write(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadTTCBConfig(write(good)); !errors.Is(err, ttcb.ErrConfig) {
		t.Fatalf("world-readable key: %v", err)
	}
}

// `maftia ttcb --metrics`: the counters are served (zero before the
// module starts) under their documented names.
func TestTTCBMetricsServed(t *testing.T) {
	var mt ttcbMetrics
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := mt.serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"maftia_ttcb_module_unvouched_total 0", "maftia_ttcb_module_tainted_total 0",
		"maftia_ttcb_module_control_bad_mac_total 0", "maftia_ttcb_module_joined 0", "maftia_ttcb_module_restarts_total 0"} {
		if !strings.Contains(string(body), name) {
			t.Fatalf("/metrics lacks %q:\n%s", name, body)
		}
	}
}
