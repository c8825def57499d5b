package main

// Minimal cluster and key files for `maftia node`, until crypto/keys lands:
// the same shape (members with id, address and base64 Ed25519 identity
// key; one private key file per replica, mode 0600).

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/maftia/maftia/core"
)

type clusterFile struct {
	Cluster       string `yaml:"cluster"`
	Configuration string `yaml:"configuration"` // "async" (the only one `node` runs today)
	F             int    `yaml:"f"`
	Members       []struct {
		ID       core.NodeID `yaml:"id"`
		Address  string      `yaml:"address"`
		Identity string      `yaml:"identity"` // base64 Ed25519 public key
		Admin    string      `yaml:"admin,omitempty"`
	} `yaml:"members"`
}

type member struct {
	ID       core.NodeID
	Address  string
	Identity ed25519.PublicKey
	Admin    string
}

type clusterConfig struct {
	Name    string
	Group   core.Group
	Members map[core.NodeID]member
}

func loadCluster(path string) (*clusterConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cf clusterFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if cf.Configuration != "" && cf.Configuration != "async" {
		return nil, fmt.Errorf("%s: configuration %q: node runs only async for now", path, cf.Configuration)
	}
	g, err := core.NewGroup(len(cf.Members), cf.F, core.Async)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cc := &clusterConfig{Name: cf.Cluster, Group: g, Members: make(map[core.NodeID]member)}
	if cc.Name == "" {
		cc.Name = "maftia"
	}
	for _, m := range cf.Members {
		if !g.Contains(m.ID) {
			return nil, fmt.Errorf("%s: member id %d not in 1..%d", path, m.ID, g.N())
		}
		if _, dup := cc.Members[m.ID]; dup {
			return nil, fmt.Errorf("%s: member %d listed twice", path, m.ID)
		}
		k, err := base64.StdEncoding.DecodeString(m.Identity)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%s: member %d: identity is not a base64 Ed25519 public key", path, m.ID)
		}
		cc.Members[m.ID] = member{ID: m.ID, Address: m.Address, Identity: k, Admin: m.Admin}
	}
	return cc, nil
}

// loadPrivate reads a base64 Ed25519 seed, refusing files others can read.
func loadPrivate(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: private key readable by others (mode %v); chmod 600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s: not a base64 Ed25519 seed", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// writePrivate writes a key file as loadPrivate reads it (tests).
func writePrivate(path string, k ed25519.PrivateKey) error {
	return os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(k.Seed())+"\n"), 0o600)
}
