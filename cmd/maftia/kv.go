package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/maftia/maftia/apps/kv"
	"github.com/maftia/maftia/client"
	"github.com/maftia/maftia/crypto/keys"
	"github.com/maftia/maftia/smr"
	"github.com/maftia/maftia/wire"
)

type kvOptions struct {
	config, key string
	timeout     time.Duration
	addresses   string
	certify     bool
}

// newKVCmd is `maftia kv`: the command-line client of the replicated
// key-value service.
func newKVCmd() *cobra.Command {
	var o kvOptions
	cmd := &cobra.Command{
		Use:   "kv",
		Short: "Client of the replicated key-value service (put, get, delete, cas, range)",
		Long: `kv sends one signed operation to every replica of the cluster and prints the
result once f+1 replicas returned matching signed replies. The client
identity is a client-<id>.key file written by maftia keygen --clients.
Results are printed as JSON.`,
		Example: `  maftia kv --config keys/cluster.yaml --key keys/client-1.key put greeting hello
  maftia kv --config keys/cluster.yaml --key keys/client-1.key get greeting
  maftia kv --config keys/cluster.yaml --key keys/client-1.key cas greeting hello bonjour
  maftia kv --config keys/cluster.yaml --key keys/client-1.key range a z`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.config, "config", "", "cluster file (YAML)")
	pf.StringVar(&o.key, "key", "", "client private key file (mode 0600)")
	pf.DurationVar(&o.timeout, "timeout", 10*time.Second, "give up after this long")
	pf.BoolVar(&o.certify, "certify", false, "ask for a certified reply: print the service's threshold signature on the result (check it with maftia verify-reply)")
	pf.StringVar(&o.addresses, "addresses", "", "comma-separated client addresses of replicas 1..n, overriding the cluster file's (e.g. ports published by containers)")
	cmd.MarkPersistentFlagRequired("config")
	cmd.MarkPersistentFlagRequired("key")
	sub := func(use, short string, args cobra.PositionalArgs, op func(a []string) (*wire.KVOp, error)) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: args, RunE: func(c *cobra.Command, a []string) error {
			kop, err := op(a)
			if err != nil {
				return err
			}
			return runKV(c.Context(), o, kop, c.OutOrStdout())
		}}
	}
	cmd.AddCommand(
		sub("put KEY VALUE", "Set KEY to VALUE", cobra.ExactArgs(2), func(a []string) (*wire.KVOp, error) {
			return &wire.KVOp{Kind: wire.KVOp_PUT, Key: []byte(a[0]), Value: []byte(a[1])}, nil
		}),
		sub("get KEY", "Read KEY", cobra.ExactArgs(1), func(a []string) (*wire.KVOp, error) {
			return &wire.KVOp{Kind: wire.KVOp_GET, Key: []byte(a[0])}, nil
		}),
		sub("delete KEY", "Remove KEY", cobra.ExactArgs(1), func(a []string) (*wire.KVOp, error) {
			return &wire.KVOp{Kind: wire.KVOp_DELETE, Key: []byte(a[0])}, nil
		}),
		sub("cas KEY EXPECTED NEW", "Set KEY to NEW if its current value is EXPECTED",
			cobra.ExactArgs(3), func(a []string) (*wire.KVOp, error) {
				return &wire.KVOp{Kind: wire.KVOp_CAS, Key: []byte(a[0]), Expected: []byte(a[1]), Value: []byte(a[2])}, nil
			}),
		sub("range START [END] [LIMIT]", "List keys in [START, END) (END empty: to the last)", cobra.RangeArgs(1, 3),
			func(a []string) (*wire.KVOp, error) {
				op := &wire.KVOp{Kind: wire.KVOp_RANGE, Key: []byte(a[0])}
				if len(a) > 1 {
					op.End = []byte(a[1])
				}
				if len(a) > 2 {
					n, err := strconv.ParseUint(a[2], 10, 32)
					if err != nil {
						return nil, fmt.Errorf("LIMIT: %w", err)
					}
					op.Limit = uint32(n)
				}
				return op, nil
			}),
	)
	return cmd
}

type kvOutput struct {
	OK       bool              `json:"ok"`
	Found    bool              `json:"found,omitempty"`
	Value    *string           `json:"value,omitempty"`
	Pairs    map[string]string `json:"pairs,omitempty"`
	Error    string            `json:"error,omitempty"`
	Revision uint64            `json:"revision"`
	// With --certify: the position in the total order and the service's
	// certificate (hex of smr.Certificate.Marshal).
	Position    uint64 `json:"position,omitempty"`
	Certificate string `json:"certificate,omitempty"`
}

func runKV(ctx context.Context, o kvOptions, op *wire.KVOp, w io.Writer) error {
	cluster, err := keys.LoadCluster(o.config)
	if err != nil {
		return err
	}
	key, err := keys.LoadClientPrivate(o.key, cluster)
	if err != nil {
		return err
	}
	defer key.Zeroize()
	var opts client.Options
	if o.addresses != "" {
		opts.Addresses = splitHosts(o.addresses)
	}
	c, err := client.Dial(cluster, key, opts)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var r *wire.KVResult
	var cert smr.Certificate
	if o.certify {
		if cert, err = c.SubmitCertified(ctx, kv.EncodeOp(op)); err == nil {
			r, err = kv.DecodeResult(cert.Result)
		}
	} else {
		r, err = kv.Client{S: c}.Do(ctx, op)
	}
	if r == nil {
		return err
	}
	out := kvOutput{OK: r.Ok, Found: r.Found, Error: r.Error, Revision: r.Revision}
	if o.certify {
		out.Position, out.Certificate = cert.Position, hex.EncodeToString(cert.Marshal())
	}
	if op.Kind == wire.KVOp_GET && r.Found || op.Kind == wire.KVOp_CAS && !r.Ok {
		v := string(r.Value)
		out.Value = &v
	}
	if op.Kind == wire.KVOp_RANGE {
		out.Pairs = map[string]string{}
		for _, p := range r.Pairs {
			out.Pairs[string(p.Key)] = string(p.Value)
		}
	}
	enc := json.NewEncoder(w)
	if err := enc.Encode(out); err != nil {
		return err
	}
	return err
}

// newVerifyReplyCmd is `maftia verify-reply`: anyone holding the cluster
// file checks a certified reply (maftia kv --certify) with the service's
// public reply key alone — no client key, no contact with the replicas.
func newVerifyReplyCmd() *cobra.Command {
	var config string
	cmd := &cobra.Command{
		Use:   "verify-reply CERTIFICATE",
		Short: "Check a certified reply against the cluster's public key (offline)",
		Long: `verify-reply checks a certificate printed by maftia kv --certify: the
service's threshold signature (f+1 replicas, so at least one correct)
on (client, request, position, result), under the reply key of the
cluster file. It prints the certified statement as JSON and exits
non-zero if the signature does not verify.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, a []string) error {
			cluster, err := keys.LoadCluster(config)
			if err != nil {
				return err
			}
			b, err := hex.DecodeString(a[0])
			if err != nil {
				return fmt.Errorf("certificate: %w", err)
			}
			cert, err := smr.UnmarshalCertificate(b)
			if err != nil {
				return err
			}
			if err := smr.VerifyCertificate(cluster.Reply, cluster.Digest(), cert); err != nil {
				return err
			}
			out := map[string]any{"valid": true, "client": cert.Client, "request": cert.Seq, "position": cert.Position}
			if r, err := kv.DecodeResult(cert.Result); err == nil {
				out["kv"] = r
			} else {
				out["result"] = hex.EncodeToString(cert.Result)
			}
			return json.NewEncoder(c.OutOrStdout()).Encode(out)
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "cluster file (YAML)")
	cmd.MarkFlagRequired("config")
	return cmd
}
