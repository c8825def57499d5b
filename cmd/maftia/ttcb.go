package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/maftia/maftia/ttcb"
)

// ttcbFile is the YAML configuration of one TTCB module (ttcb.yaml).
type ttcbFile struct {
	ID              uint32 `yaml:"id"`
	F               int    `yaml:"f"`
	Socket          string `yaml:"socket"`
	StateFile       string `yaml:"state_file"`
	KeyFile         string `yaml:"key_file"`
	ControlKeysFile string `yaml:"control_keys_file"`
	Modules         []struct {
		ID      uint32 `yaml:"id"`
		Control string `yaml:"control"`
	} `yaml:"modules"`
	Entities []struct {
		ID        uint32 `yaml:"id"`
		PublicKey string `yaml:"public_key"`
	} `yaml:"entities"`
	Delta       time.Duration `yaml:"delta"`
	Slack       time.Duration `yaml:"slack"`
	SyncPeriod  time.Duration `yaml:"sync_period"`
	Retention   time.Duration `yaml:"retention"`
	Horizon     time.Duration `yaml:"horizon"`
	RateEvery   time.Duration `yaml:"rate_every"`
	RateBurst   int           `yaml:"rate_burst"`
	MaxRestarts int           `yaml:"max_restarts"`
}

// loadTTCBConfig reads a ttcb.yaml and the key files it names.
func loadTTCBConfig(path string) (ttcb.Config, int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return ttcb.Config{}, 0, err
	}
	var f ttcbFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return ttcb.Config{}, 0, fmt.Errorf("%s: %w", path, err)
	}
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(filepath.Dir(path), p)
	}
	cfg := ttcb.DefaultConfig()
	cfg.ID, cfg.F, cfg.Socket, cfg.StateFile = f.ID, f.F, rel(f.Socket), rel(f.StateFile)
	for _, m := range f.Modules {
		cfg.Peers = append(cfg.Peers, ttcb.Peer{ID: m.ID, Control: m.Control})
	}
	for _, e := range f.Entities {
		pk, err := hex.DecodeString(e.PublicKey)
		if err != nil || len(pk) != ed25519.PublicKeySize {
			return cfg, 0, fmt.Errorf("%s: entity %d: bad public key", path, e.ID)
		}
		cfg.Entities = append(cfg.Entities, ttcb.LocalEntity{ID: ttcb.EntityID(e.ID), PublicKey: pk})
	}
	set := func(dst *time.Duration, v time.Duration) {
		if v != 0 {
			*dst = v
		}
	}
	set(&cfg.Delta, f.Delta)
	set(&cfg.Slack, f.Slack)
	set(&cfg.SyncPeriod, f.SyncPeriod)
	set(&cfg.Retention, f.Retention)
	set(&cfg.Horizon, f.Horizon)
	set(&cfg.RateEvery, f.RateEvery)
	if f.RateBurst != 0 {
		cfg.RateBurst = f.RateBurst
	}
	if cfg.Key, err = ttcb.LoadPrivateKey(rel(f.KeyFile)); err != nil {
		return cfg, 0, err
	}
	if len(cfg.Peers) > 1 {
		if cfg.ControlKeys, err = ttcb.LoadControlKeys(rel(f.ControlKeysFile)); err != nil {
			return cfg, 0, err
		}
	}
	maxRestarts := f.MaxRestarts
	if maxRestarts == 0 {
		maxRestarts = 100
	}
	return cfg, maxRestarts, nil
}

func newTTCBCmd() *cobra.Command {
	var config, metrics string
	cmd := &cobra.Command{
		Use:   "ttcb",
		Short: "Run this host's TTCB module (the wormhole: trusted time, block agreement, random numbers)",
		Long: `Runs one module of the software Trusted Timely Computing Base: a local
interface on a Unix socket (mode 0600) for the payload processes of this
host, and a control network to the other modules.

The module is crash-only: when it misses its timing bound it fails itself
and is restarted here with a new incarnation (at most max_restarts times);
on a corrupt or rolled-back state file it exits with an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, maxRestarts, err := loadTTCBConfig(config)
			if err != nil {
				return err
			}
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var mt ttcbMetrics
			if metrics != "" {
				addr, err := mt.serve(ctx, metrics)
				if err != nil {
					return fmt.Errorf("--metrics: %w", err)
				}
				fmt.Fprintf(os.Stderr, "ttcb module %d metrics: http://%s/metrics\n", cfg.ID, addr)
			}
			return superviseTTCB(ctx, cfg, maxRestarts, mt.started)
		},
	}
	cmd.Flags().StringVar(&config, "config", "ttcb.yaml", "module configuration file")
	cmd.Flags().StringVar(&metrics, "metrics", "", "serve the module's counters at http://ADDR/metrics (e.g. 127.0.0.1:9300; keep it off the control network)")
	cmd.AddCommand(newTTCBKeygenCmd())
	return cmd
}

// superviseTTCB runs the module and restarts it after a timing failure
// (crash-only recovery: a new incarnation rejoins).
func superviseTTCB(ctx context.Context, cfg ttcb.Config, maxRestarts int, started func(*ttcb.Module)) error {
	return ttcb.Supervise(ctx, cfg, maxRestarts, func(m *ttcb.Module) {
		started(m)
		fmt.Fprintf(os.Stderr, "ttcb module %d ready: socket=%s incarnation=%d public_key=%x\n",
			cfg.ID, cfg.Socket, m.Incarnation(), []byte(m.PublicKey()))
	})
}

func newTTCBKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Write a module or entity Ed25519 key file (0600) and print its public key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			if err := ttcb.WritePrivateKey(out, priv); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), hex.EncodeToString(pub))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "ttcb.key", "key file to write")
	return cmd
}
