package main

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/maftia/maftia/crypto/keys"
	"github.com/spf13/cobra"
)

// newKeygenCmd is `maftia keygen`: a trusted dealer that writes a cluster
// description and one private key file per replica (and client).
func newKeygenCmd() *cobra.Command {
	var (
		n, f, clients int
		hosts         string
		out           string
		configuration string
		name          string
		hybridStart   string
	)
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Generate the key set of a cluster (trusted dealer)",
		Long: `keygen acts as a trusted dealer: it creates every replica's Ed25519 identity and
threshold key shares (quorum certificates n−f, replies f+1, coin f+1, decryption f+1),
and writes into --out:

  cluster.yaml        public description (members, addresses, public keys), mode 0644
  replica-<id>.key    one private key file per replica, mode 0600
  client-<id>.key     one private key file per client (--clients), mode 0600

Copy each replica-<id>.key to its replica only, then erase the dealer's copies.
Existing files are never overwritten.`,
		Example: `  maftia keygen --n 4 --f 1 --hosts h1:7000,h2:7000,h3:7000,h4:7000 --out keys --clients 1`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			hostList := splitHosts(hosts)
			c, privs, err := keys.Generate(rand.Reader, n, f, hostList, configuration)
			if err != nil {
				return err
			}
			defer func() {
				for _, p := range privs {
					p.Zeroize()
				}
			}()
			c.Name = name
			if c.Hybrid != nil && hybridStart != "" {
				t, err := parseStart(hybridStart)
				if err != nil {
					return err
				}
				c.Hybrid.Start = t
			}
			cls, err := c.AddClients(rand.Reader, clients)
			if err != nil {
				return err
			}
			defer func() {
				for _, cl := range cls {
					cl.Zeroize()
				}
			}()
			if err := keys.WriteDir(out, c, privs, cls...); err != nil {
				return err
			}
			d := c.Digest()
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote %s (configuration %s, n=%d, f=%d, cluster digest %x)\n",
				filepath.Join(out, keys.ClusterFileName), c.Configuration, c.N, c.F, d[:8])
			fmt.Fprintf(w, "wrote %d replica key files and %d client key files (mode 0600)\n", len(privs), len(cls))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&n, "n", 4, "number of replicas")
	fl.IntVar(&f, "f", 1, "number of tolerated Byzantine replicas")
	fl.StringVar(&hosts, "hosts", "", "comma-separated host:port of replicas 1..n (default 127.0.0.1:7001..)")
	fl.StringVar(&out, "out", "", "output directory (created 0700 if missing)")
	fl.IntVar(&clients, "clients", 0, "number of client identities to generate")
	fl.StringVar(&configuration, "configuration", string(keys.Async), "async (n ≥ 3f+1) or hybrid (n ≥ 2f+1)")
	fl.StringVar(&name, "name", "maftia", "cluster name")
	fl.StringVar(&hybridStart, "hybrid-start", "", "hybrid only: epoch 0 of the TTCB schedule, RFC 3339 time or a delay from now such as 2m (default 1m)")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		if hosts == "" {
			h := make([]string, n)
			for i := range h {
				h[i] = fmt.Sprintf("127.0.0.1:%d", 7001+i)
			}
			hosts = strings.Join(h, ",")
		}
		return nil
	}
	return cmd
}

func splitHosts(s string) []string {
	var out []string
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// parseStart reads --hybrid-start: an RFC 3339 time, or a duration from now.
func parseStart(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(d).UTC().Truncate(time.Millisecond), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--hybrid-start %q: want an RFC 3339 time or a duration", s)
	}
	return t, nil
}
