package keys

import (
	"bytes"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/maftia/maftia/crypto/coin"
	"github.com/maftia/maftia/crypto/sig"
	"github.com/maftia/maftia/crypto/tenc"
	"github.com/maftia/maftia/crypto/tsig"
	"gopkg.in/yaml.v3"
)

// File format identifiers (the first field of every file).
const (
	ClusterFormat      = "maftia-cluster/v1"
	ReplicaKeyFormat   = "maftia-replica-key/v1"
	ClientKeyFormat    = "maftia-client-key/v1"
	ClusterFileName    = "cluster.yaml"
	maxFileSize        = 16 << 20
	privateFileMode    = 0o600
	privateDirMode     = 0o700
	publicFileMode     = 0o644
	insecureMask       = 0o077
	replicaFilePattern = "replica-%d.key"
	clientFilePattern  = "client-%d.key"
)

// ReplicaKeyFile and ClientKeyFile are the private file names in a key
// directory.
func ReplicaKeyFile(id uint32) string { return fmt.Sprintf(replicaFilePattern, id) }

// ClientKeyFile is the private key file name of client id.
func ClientKeyFile(id uint32) string { return fmt.Sprintf(clientFilePattern, id) }

type thresholdsYAML struct {
	Quorum  int `yaml:"quorum"`
	Reply   int `yaml:"reply"`
	Coin    int `yaml:"coin"`
	Decrypt int `yaml:"decrypt"`
}

type groupKeysYAML struct {
	Quorum  string `yaml:"quorum"`
	Reply   string `yaml:"reply"`
	Coin    string `yaml:"coin"`
	Decrypt string `yaml:"decrypt"`
}

type memberYAML struct {
	ID         uint32 `yaml:"id"`
	Address    string `yaml:"address"`
	Identity   string `yaml:"identity"`
	QuorumKey  string `yaml:"quorum_key"`
	ReplyKey   string `yaml:"reply_key"`
	CoinKey    string `yaml:"coin_key"`
	DecryptKey string `yaml:"decrypt_key"`
}

type clientYAML struct {
	ID       uint32 `yaml:"id"`
	Identity string `yaml:"identity"`
}

type clusterYAML struct {
	Format        string         `yaml:"format"`
	Name          string         `yaml:"name"`
	Configuration string         `yaml:"configuration"`
	N             int            `yaml:"n"`
	F             int            `yaml:"f"`
	Thresholds    thresholdsYAML `yaml:"thresholds"`
	GroupKeys     groupKeysYAML  `yaml:"group_keys"`
	Members       []memberYAML   `yaml:"members"`
	Clients       []clientYAML   `yaml:"clients,omitempty"`
	Hybrid        *hybridYAML    `yaml:"hybrid,omitempty"`
}

type replicaKeyYAML struct {
	Format       string `yaml:"format"`
	Cluster      string `yaml:"cluster"`
	ID           uint32 `yaml:"id"`
	Identity     string `yaml:"identity"`
	QuorumShare  string `yaml:"quorum_share"`
	ReplyShare   string `yaml:"reply_share"`
	CoinShare    string `yaml:"coin_share"`
	DecryptShare string `yaml:"decrypt_share"`
}

type clientKeyYAML struct {
	Format   string `yaml:"format"`
	Cluster  string `yaml:"cluster"`
	ID       uint32 `yaml:"id"`
	Identity string `yaml:"identity"`
}

func hx(b []byte) string { return hex.EncodeToString(b) }

// MarshalCluster renders the public cluster description as YAML.
func MarshalCluster(c *Cluster) ([]byte, error) {
	y := clusterYAML{
		Format: ClusterFormat, Name: c.Name, Configuration: string(c.Configuration), N: c.N, F: c.F,
		Thresholds: thresholdsYAML{c.Quorum.Threshold(), c.Reply.Threshold(), c.Coin.PublicKey().Threshold(), c.Decrypt.Threshold()},
		GroupKeys:  groupKeysYAML{hx(c.Quorum.GroupKey()), hx(c.Reply.GroupKey()), hx(c.Coin.PublicKey().GroupKey()), hx(c.Decrypt.GroupKey())},
	}
	qk, rk, ck, dk := c.Quorum.ShareKeys(), c.Reply.ShareKeys(), c.Coin.PublicKey().ShareKeys(), c.Decrypt.ShareKeys()
	for i, m := range c.Members {
		y.Members = append(y.Members, memberYAML{ID: m.ID, Address: m.Address, Identity: hx(m.Identity.Marshal()),
			QuorumKey: hx(qk[i]), ReplyKey: hx(rk[i]), CoinKey: hx(ck[i]), DecryptKey: hx(dk[i])})
	}
	for _, cl := range c.Clients {
		y.Clients = append(y.Clients, clientYAML{ID: cl.ID, Identity: hx(cl.Identity.Marshal())})
	}
	if c.Hybrid != nil {
		y.Hybrid = c.Hybrid.toYAML()
	}
	var buf bytes.Buffer
	buf.WriteString("# maftia cluster description: public, share it with every replica and client.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&y); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

func decodeStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: more than one YAML document", ErrMalformed)
	}
	return nil
}

func unhex(field, s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not hex", ErrMalformed, field)
	}
	return b, nil
}

// ParseCluster decodes and fully validates a cluster description: format,
// configuration and resilience bound, thresholds, ids exactly 1..n, unique
// addresses (host:port) and identity keys (no small-order key), every
// threshold key decoded, subgroup-checked and consistent.
func ParseCluster(data []byte) (*Cluster, error) {
	var y clusterYAML
	if err := decodeStrict(data, &y); err != nil {
		return nil, err
	}
	if y.Format != ClusterFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrMalformed, y.Format, ClusterFormat)
	}
	cfg := Configuration(y.Configuration)
	if err := CheckResilience(cfg, y.N, y.F); err != nil {
		return nil, err
	}
	qt, rt, ct, dt := Thresholds(y.N, y.F)
	if y.Thresholds != (thresholdsYAML{qt, rt, ct, dt}) {
		return nil, fmt.Errorf("%w: thresholds %+v, want quorum=%d reply=%d coin=%d decrypt=%d", ErrMalformed, y.Thresholds, qt, rt, ct, dt)
	}
	if len(y.Members) != y.N {
		return nil, fmt.Errorf("%w: %d members listed for n=%d", ErrMalformed, len(y.Members), y.N)
	}
	c := &Cluster{Name: y.Name, Configuration: cfg, N: y.N, F: y.F, Members: make([]Member, y.N)}
	if y.Hybrid != nil {
		if cfg != Hybrid {
			return nil, fmt.Errorf("%w: a hybrid schedule in a %s cluster", ErrMalformed, cfg)
		}
		var err error
		if c.Hybrid, err = y.Hybrid.parse(); err != nil {
			return nil, err
		}
		if m := len(c.Hybrid.Modules); m != 0 && m != y.N {
			return nil, fmt.Errorf("%w: %d hybrid ttcb_modules for n=%d", ErrMalformed, m, y.N)
		}
	}
	members := slices.Clone(y.Members)
	slices.SortFunc(members, func(a, b memberYAML) int { return int(a.ID) - int(b.ID) })
	addrs, ids := map[string]bool{}, map[sig.PublicKey]bool{}
	qk, rk, ck, dk := make([][]byte, y.N), make([][]byte, y.N), make([][]byte, y.N), make([][]byte, y.N)
	for i, m := range members {
		if m.ID != uint32(i+1) {
			if i > 0 && m.ID == members[i-1].ID {
				return nil, fmt.Errorf("%w: member id %d", ErrDuplicate, m.ID)
			}
			return nil, fmt.Errorf("%w: member ids must be exactly 1..%d", ErrMalformed, y.N)
		}
		if err := checkAddress(m.Address); err != nil {
			return nil, fmt.Errorf("member %d: %w", m.ID, err)
		}
		if addrs[m.Address] {
			return nil, fmt.Errorf("%w: address %s", ErrDuplicate, m.Address)
		}
		addrs[m.Address] = true
		pub, err := parseIdentity(fmt.Sprintf("member %d identity", m.ID), m.Identity)
		if err != nil {
			return nil, err
		}
		if ids[pub] {
			return nil, fmt.Errorf("%w: identity key of member %d", ErrDuplicate, m.ID)
		}
		ids[pub] = true
		c.Members[i] = Member{ID: m.ID, Address: m.Address, Identity: pub}
		for _, f := range []struct {
			name string
			dst  *[]byte
			s    string
		}{{"quorum_key", &qk[i], m.QuorumKey}, {"reply_key", &rk[i], m.ReplyKey}, {"coin_key", &ck[i], m.CoinKey}, {"decrypt_key", &dk[i], m.DecryptKey}} {
			if *f.dst, err = unhex(fmt.Sprintf("member %d %s", m.ID, f.name), f.s); err != nil {
				return nil, err
			}
		}
	}
	var err error
	if c.Quorum, err = parseTsig("quorum", DSTQuorum, qt, y.GroupKeys.Quorum, qk); err != nil {
		return nil, err
	}
	if c.Reply, err = parseTsig("reply", DSTReply, rt, y.GroupKeys.Reply, rk); err != nil {
		return nil, err
	}
	coinPK, err := parseTsig("coin", DSTCoin, ct, y.GroupKeys.Coin, ck)
	if err != nil {
		return nil, err
	}
	if c.Coin, err = coin.New(coinPK); err != nil {
		return nil, err
	}
	dg, err := unhex("decrypt group key", y.GroupKeys.Decrypt)
	if err != nil {
		return nil, err
	}
	if c.Decrypt, err = tenc.NewPublicKey(dt, dg, dk); err != nil {
		return nil, fmt.Errorf("%w: decrypt keys: %w", ErrMalformed, err)
	}
	clientIDs := map[uint32]bool{}
	for _, cl := range y.Clients {
		if cl.ID == 0 || clientIDs[cl.ID] {
			return nil, fmt.Errorf("%w: client id %d", ErrDuplicate, cl.ID)
		}
		clientIDs[cl.ID] = true
		pub, err := parseIdentity(fmt.Sprintf("client %d identity", cl.ID), cl.Identity)
		if err != nil {
			return nil, err
		}
		c.Clients = append(c.Clients, Client{ID: cl.ID, Identity: pub})
	}
	return c, nil
}

func parseIdentity(field, s string) (sig.PublicKey, error) {
	b, err := unhex(field, s)
	if err != nil {
		return sig.PublicKey{}, err
	}
	pub, err := sig.UnmarshalPublicKey(b)
	if err != nil {
		return sig.PublicKey{}, fmt.Errorf("%w: %s: %w", ErrMalformed, field, err)
	}
	if pub.IsWeak() {
		return sig.PublicKey{}, fmt.Errorf("%w: %s is a small-order point", ErrMalformed, field)
	}
	return pub, nil
}

func parseTsig(name, dst string, threshold int, group string, shareKeys [][]byte) (*tsig.PublicKey, error) {
	g, err := unhex(name+" group key", group)
	if err != nil {
		return nil, err
	}
	pk, err := tsig.NewPublicKey([]byte(dst), threshold, g, shareKeys)
	if err != nil {
		return nil, fmt.Errorf("%w: %s keys: %w", ErrMalformed, name, err)
	}
	return pk, nil
}

// MarshalPrivate renders a replica's private key file, bound to c.
func MarshalPrivate(c *Cluster, p *Private) []byte {
	d := c.Digest()
	y := replicaKeyYAML{Format: ReplicaKeyFormat, Cluster: hx(d[:]), ID: p.ID, Identity: hx(p.Identity.Marshal()),
		QuorumShare: hx(p.Quorum.Marshal()), ReplyShare: hx(p.Reply.Marshal()), CoinShare: hx(p.Coin.Marshal()),
		DecryptShare: hx(p.Decrypt.Marshal())}
	out, _ := yaml.Marshal(&y) // plain strings and ints: cannot fail
	return append([]byte("# maftia replica private key: keep secret, mode 0600.\n"), out...)
}

// MarshalClientPrivate renders a client's private key file, bound to c.
func MarshalClientPrivate(c *Cluster, p *ClientPrivate) []byte {
	d := c.Digest()
	out, _ := yaml.Marshal(&clientKeyYAML{Format: ClientKeyFormat, Cluster: hx(d[:]), ID: p.ID, Identity: hx(p.Identity.Marshal())})
	return append([]byte("# maftia client private key: keep secret, mode 0600.\n"), out...)
}

func checkBinding(c *Cluster, digestHex string) error {
	d := c.Digest()
	got, err := hex.DecodeString(digestHex)
	if err != nil || len(got) != len(d) {
		return fmt.Errorf("%w: cluster digest field", ErrMalformed)
	}
	if subtle.ConstantTimeCompare(got, d[:]) != 1 {
		return fmt.Errorf("%w: file is for cluster %x…, this cluster is %x…", ErrWrongCluster, got[:6], d[:6])
	}
	return nil
}

// ParsePrivate decodes a replica private key file and checks it against c:
// same cluster (digest), known member id, and every secret consistent with
// the public key the cluster lists for that member.
func ParsePrivate(data []byte, c *Cluster) (*Private, error) {
	var y replicaKeyYAML
	if err := decodeStrict(data, &y); err != nil {
		return nil, err
	}
	if y.Format != ReplicaKeyFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrMalformed, y.Format, ReplicaKeyFormat)
	}
	if err := checkBinding(c, y.Cluster); err != nil {
		return nil, err
	}
	m, err := c.Member(y.ID)
	if err != nil {
		return nil, err
	}
	p := &Private{ID: y.ID}
	ok := false
	defer func() {
		if !ok {
			p.Zeroize()
		}
	}()
	var raw []byte
	defer func() { clear(raw) }()
	if raw, err = unhex("identity", y.Identity); err != nil {
		return nil, err
	}
	if p.Identity, err = sig.UnmarshalPrivateKey(raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if p.Identity.Public() != m.Identity {
		return nil, fmt.Errorf("%w: identity key of replica %d", ErrInconsistent, y.ID)
	}
	for _, f := range []struct {
		name string
		s    string
		pk   *tsig.PublicKey
		out  **tsig.SecretShare
	}{{"quorum_share", y.QuorumShare, c.Quorum, &p.Quorum}, {"reply_share", y.ReplyShare, c.Reply, &p.Reply}, {"coin_share", y.CoinShare, c.Coin.PublicKey(), &p.Coin}} {
		clear(raw)
		if raw, err = unhex(f.name, f.s); err != nil {
			return nil, err
		}
		if *f.out, err = tsig.UnmarshalSecretShare(raw, f.pk); err != nil {
			return nil, shareErr(f.name, err)
		}
		if (*f.out).Index() != y.ID {
			return nil, fmt.Errorf("%w: %s has index %d in replica %d's file", ErrInconsistent, f.name, (*f.out).Index(), y.ID)
		}
	}
	clear(raw)
	if raw, err = unhex("decrypt_share", y.DecryptShare); err != nil {
		return nil, err
	}
	if p.Decrypt, err = tenc.UnmarshalSecretShare(raw, c.Decrypt); err != nil {
		return nil, shareErr("decrypt_share", err)
	}
	if p.Decrypt.Index() != y.ID {
		return nil, fmt.Errorf("%w: decrypt_share has index %d in replica %d's file", ErrInconsistent, p.Decrypt.Index(), y.ID)
	}
	ok = true
	return p, nil
}

func shareErr(name string, err error) error {
	if errors.Is(err, tsig.ErrInconsistentKeys) || errors.Is(err, tenc.ErrInconsistentKeys) ||
		errors.Is(err, tsig.ErrIndexOutOfRange) || errors.Is(err, tenc.ErrIndexOutOfRange) {
		return fmt.Errorf("%w: %s: %w", ErrInconsistent, name, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrMalformed, name, err)
}

// ParseClientPrivate decodes a client key file and checks it against c.
func ParseClientPrivate(data []byte, c *Cluster) (*ClientPrivate, error) {
	var y clientKeyYAML
	if err := decodeStrict(data, &y); err != nil {
		return nil, err
	}
	if y.Format != ClientKeyFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrMalformed, y.Format, ClientKeyFormat)
	}
	if err := checkBinding(c, y.Cluster); err != nil {
		return nil, err
	}
	cl, err := c.Client(y.ID)
	if err != nil {
		return nil, err
	}
	raw, err := unhex("identity", y.Identity)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	priv, err := sig.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if priv.Public() != cl.Identity {
		priv.Zeroize()
		return nil, fmt.Errorf("%w: identity key of client %d", ErrInconsistent, y.ID)
	}
	return &ClientPrivate{ID: y.ID, Identity: priv}, nil
}

func readBounded(path string) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%w: %s is not a regular file", ErrMalformed, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, nil, err
	}
	if len(data) > maxFileSize {
		return nil, nil, fmt.Errorf("%w: %s larger than %d bytes", ErrMalformed, path, maxFileSize)
	}
	return data, st, nil
}

func readPrivateFile(path string) ([]byte, error) {
	data, st, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	if perm := st.Mode().Perm(); perm&insecureMask != 0 {
		clear(data)
		return nil, fmt.Errorf("%w: %s has mode %#o; run chmod 600 %s", ErrInsecureFile, path, perm, path)
	}
	return data, nil
}

// LoadCluster reads and validates a cluster description.
func LoadCluster(path string) (*Cluster, error) {
	data, _, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseCluster(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// LoadPrivate reads a replica private key file, refusing it if it is
// readable by group or others, malformed, for another cluster, or
// inconsistent with c.
func LoadPrivate(path string, c *Cluster) (*Private, error) {
	return loadPrivate(path, c, ParsePrivate)
}

// LoadClientPrivate reads a client private key file (same checks).
func LoadClientPrivate(path string, c *Cluster) (*ClientPrivate, error) {
	return loadPrivate(path, c, ParseClientPrivate)
}

func loadPrivate[T any](path string, c *Cluster, parse func([]byte, *Cluster) (T, error)) (T, error) {
	var zero T
	data, err := readPrivateFile(path)
	if err != nil {
		return zero, err
	}
	defer clear(data)
	p, err := parse(data, c)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrFileExists, path)
		}
		return err
	}
	if err := f.Chmod(mode); err != nil { // the umask may only have narrowed it; make it exact
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteDir writes dir/cluster.yaml (0644), dir/replica-<id>.key for every
// replica and dir/client-<id>.key for every client (0600). dir is created
// (0700) if missing; existing files are never overwritten.
func WriteDir(dir string, c *Cluster, privs []*Private, clients ...*ClientPrivate) error {
	if err := os.MkdirAll(dir, privateDirMode); err != nil {
		return err
	}
	pub, err := MarshalCluster(c)
	if err != nil {
		return err
	}
	if err := writeNew(filepath.Join(dir, ClusterFileName), pub, publicFileMode); err != nil {
		return err
	}
	for _, p := range privs {
		data := MarshalPrivate(c, p)
		err := writeNew(filepath.Join(dir, ReplicaKeyFile(p.ID)), data, privateFileMode)
		clear(data)
		if err != nil {
			return err
		}
	}
	for _, cl := range clients {
		data := MarshalClientPrivate(c, cl)
		err := writeNew(filepath.Join(dir, ClientKeyFile(cl.ID)), data, privateFileMode)
		clear(data)
		if err != nil {
			return err
		}
	}
	return nil
}
