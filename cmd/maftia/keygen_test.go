package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maftia/maftia/crypto/keys"
)

func runKeygen(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newKeygenCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestKeygenWritesLoadableKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	out, err := runKeygen(t, "--n", "4", "--f", "1", "--hosts", "h1:7000,h2:7000,h3:7000,h4:7000", "--out", dir, "--clients", "2")
	if err != nil {
		t.Fatal(err, out)
	}
	if !strings.Contains(out, "cluster digest") {
		t.Fatal(out)
	}
	c, err := keys.LoadCluster(filepath.Join(dir, "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.N != 4 || c.F != 1 || len(c.Clients) != 2 || c.Members[2].Address != "h3:7000" {
		t.Fatalf("%+v", c)
	}
	for id := uint32(1); id <= 4; id++ {
		if _, err := keys.LoadPrivate(filepath.Join(dir, keys.ReplicaKeyFile(id)), c); err != nil {
			t.Fatal(err)
		}
	}
	for id := uint32(1); id <= 2; id++ {
		if _, err := keys.LoadClientPrivate(filepath.Join(dir, keys.ClientKeyFile(id)), c); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v", st.Mode())
	}
	// Second run into the same directory refuses to overwrite.
	if _, err := runKeygen(t, "--n", "4", "--f", "1", "--out", dir); err == nil {
		t.Fatal("overwrote existing keys")
	}
}

func TestKeygenRefusesBadResilience(t *testing.T) {
	if _, err := runKeygen(t, "--n", "3", "--f", "1", "--out", t.TempDir()); err == nil {
		t.Fatal("async n=3 f=1 accepted")
	}
	if _, err := runKeygen(t, "--n", "3", "--f", "1", "--configuration", "hybrid", "--out", filepath.Join(t.TempDir(), "k")); err != nil {
		t.Fatal(err)
	}
	if _, err := runKeygen(t, "--n", "4", "--f", "1", "--hosts", "a:1,b:1", "--out", t.TempDir()); err == nil {
		t.Fatal("wrong number of hosts accepted")
	}
}
