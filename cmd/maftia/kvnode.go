package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/maftia/maftia/crypto/keys"
	"github.com/maftia/maftia/server"
	"github.com/maftia/maftia/ttcb"
)

// runKVNode runs the replicated key-value service until ctx ends.
func runKVNode(ctx context.Context, o nodeOptions, log *slog.Logger) error {
	cluster, priv, err := loadReplica(o.config, o.key)
	if err != nil {
		return err
	}
	defer priv.Zeroize()
	attack, err := server.ParseAttack(o.attack)
	if err != nil {
		return err
	}
	cfg := server.Config{Cluster: cluster, Private: priv, DataDir: o.data, Admin: o.admin,
		Attack: attack, Tick: o.tick, Logger: log}
	if cluster.Configuration == keys.Hybrid {
		if cfg.TTCB, err = loadTTCBClient(o); err != nil {
			return err
		}
	}
	for _, pa := range o.peerAddrs {
		id, addr, ok := strings.Cut(pa, "=")
		n, err := strconv.ParseUint(id, 10, 32)
		if !ok || err != nil || addr == "" {
			return fmt.Errorf("--peer-addr %q: want ID=HOST:PORT", pa)
		}
		if cfg.PeerAddrs == nil {
			cfg.PeerAddrs = map[uint32]string{}
		}
		cfg.PeerAddrs[uint32(n)] = addr
	}
	if o.listen != "" {
		if cfg.PeerListener, err = net.Listen("tcp", o.listen); err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		defer cfg.PeerListener.Close()
	}
	if o.clientListen != "" {
		if cfg.ClientListener, err = net.Listen("tcp", o.clientListen); err != nil {
			return fmt.Errorf("--client-listen: %w", err)
		}
		defer cfg.ClientListener.Close()
	}
	s, err := server.New(cfg)
	if err != nil {
		return err
	}
	if a := s.AdminAddr(); a != nil {
		log.Info("admin endpoint", "replica", priv.ID, "addr", a.String())
	}
	log.Info("client endpoint", "replica", priv.ID, "addr", s.ClientAddr().String())
	return s.Run(ctx)
}

// loadReplica reads the cluster file and this replica's private keys.
func loadReplica(config, key string) (*keys.Cluster, *keys.Private, error) {
	cluster, err := keys.LoadCluster(config)
	if err != nil {
		return nil, nil, err
	}
	priv, err := keys.LoadPrivate(key, cluster)
	if err != nil {
		return nil, nil, err
	}
	return cluster, priv, nil
}

// loadTTCBClient reads the hybrid replica's TTCB flags.
func loadTTCBClient(o nodeOptions) (*server.TTCBConfig, error) {
	if o.ttcbSocket == "" || o.ttcbModuleKey == "" || o.ttcbEntityKey == "" {
		return nil, fmt.Errorf("a hybrid cluster needs --ttcb-socket, --ttcb-module-key and --ttcb-entity-key")
	}
	mk := strings.TrimSpace(o.ttcbModuleKey)
	if b, err := os.ReadFile(mk); err == nil {
		mk = strings.TrimSpace(string(b))
	}
	pub, err := hex.DecodeString(mk)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("--ttcb-module-key: want a hex Ed25519 public key (or a file holding one)")
	}
	ek, err := ttcb.LoadPrivateKey(o.ttcbEntityKey)
	if err != nil {
		return nil, fmt.Errorf("--ttcb-entity-key: %w", err)
	}
	return &server.TTCBConfig{Socket: o.ttcbSocket, ModuleKey: pub, EntityKey: ek}, nil
}
