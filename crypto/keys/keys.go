package keys

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/maftia/maftia/crypto/coin"
	"github.com/maftia/maftia/crypto/internal/lp"
	"github.com/maftia/maftia/crypto/sig"
	"github.com/maftia/maftia/crypto/tenc"
	"github.com/maftia/maftia/crypto/tsig"
)

// Domain-separation tags of the threshold signature keys (RFC 9380 §3.1
// style). Each use has its own key and its own tag.
const (
	DSTQuorum = "MAFTIA-V01-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_QUORUM_"
	DSTReply  = "MAFTIA-V01-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_REPLY_"
	DSTCoin   = coin.DST
)

// Configuration is the kind of system the keys are for.
type Configuration string

// The two configurations of DESIGN.md §1.
const (
	Async  Configuration = "async"  // n ≥ 3f+1, randomized agreement with the coin
	Hybrid Configuration = "hybrid" // n ≥ 2f+1, TTCB agreement
)

// Sentinel errors.
var (
	ErrBadParams      = errors.New("keys: bad parameters")
	ErrResilience     = errors.New("keys: resilience bound violated")
	ErrMalformed      = errors.New("keys: malformed key file")
	ErrDuplicate      = errors.New("keys: duplicate member or client")
	ErrInsecureFile   = errors.New("keys: private key file readable by group or others")
	ErrWrongCluster   = errors.New("keys: private key file belongs to another cluster")
	ErrInconsistent   = errors.New("keys: private key does not match the cluster's public keys")
	ErrUnknownMember  = errors.New("keys: no such member")
	ErrFileExists     = errors.New("keys: refusing to overwrite an existing key file")
	errInternalDigest = errors.New("keys: internal digest error")
	_                 = errInternalDigest
)

// Member is one replica's public description.
type Member struct {
	ID       uint32
	Address  string // host:port
	Identity sig.PublicKey
}

// Client is an authorised client's public identity.
type Client struct {
	ID       uint32
	Identity sig.PublicKey
}

// Cluster is the public description of a replica group: everything every
// replica and client may know. It is separate from the private keys so that
// a distributed key generation can later produce the same Cluster without a
// dealer.
type Cluster struct {
	Name          string
	Configuration Configuration
	N, F          int
	Members       []Member // Members[i].ID == i+1
	Clients       []Client
	Quorum        *tsig.PublicKey // threshold n−f: certificates
	Reply         *tsig.PublicKey // threshold f+1: replies to clients
	Coin          *coin.Coin      // threshold f+1
	Decrypt       *tenc.PublicKey // threshold f+1
	// Hybrid is the hybrid engine's epoch schedule (configuration hybrid
	// only; nil otherwise).
	Hybrid *HybridSchedule
}

// Private is one replica's secret keys. Zeroize it when done.
type Private struct {
	ID       uint32
	Identity *sig.PrivateKey
	Quorum   *tsig.SecretShare
	Reply    *tsig.SecretShare
	Coin     *tsig.SecretShare
	Decrypt  *tenc.SecretShare
}

// ClientPrivate is a client's secret identity key.
type ClientPrivate struct {
	ID       uint32
	Identity *sig.PrivateKey
}

// Zeroize overwrites every secret.
func (p *Private) Zeroize() {
	if p.Identity != nil {
		p.Identity.Zeroize()
	}
	for _, s := range []*tsig.SecretShare{p.Quorum, p.Reply, p.Coin} {
		if s != nil {
			s.Zeroize()
		}
	}
	if p.Decrypt != nil {
		p.Decrypt.Zeroize()
	}
}

// String never reveals secrets.
func (p *Private) String() string { return fmt.Sprintf("keys.Private(replica %d)", p.ID) }

// GoString never reveals secrets.
func (p *Private) GoString() string { return p.String() }

// Zeroize overwrites the client's secret.
func (c *ClientPrivate) Zeroize() {
	if c.Identity != nil {
		c.Identity.Zeroize()
	}
}

// String never reveals secrets.
func (c *ClientPrivate) String() string { return fmt.Sprintf("keys.ClientPrivate(client %d)", c.ID) }

// GoString never reveals secrets.
func (c *ClientPrivate) GoString() string { return c.String() }

// Thresholds returns the thresholds used for (n, f): quorum n−f, and f+1
// for replies, the coin and decryption.
func Thresholds(n, f int) (quorum, reply, coinT, decrypt int) {
	return n - f, f + 1, f + 1, f + 1
}

// CheckResilience refuses impossible (n, f) for a configuration.
func CheckResilience(cfg Configuration, n, f int) error {
	if f < 0 || n < 1 || n > tsig.MaxN {
		return fmt.Errorf("%w: n=%d f=%d", ErrBadParams, n, f)
	}
	switch cfg {
	case Async:
		if n < 3*f+1 {
			return fmt.Errorf("%w: async needs n ≥ 3f+1, have n=%d f=%d", ErrResilience, n, f)
		}
	case Hybrid:
		if n < 2*f+1 {
			return fmt.Errorf("%w: hybrid needs n ≥ 2f+1, have n=%d f=%d", ErrResilience, n, f)
		}
	default:
		return fmt.Errorf("%w: configuration %q is neither async nor hybrid", ErrBadParams, cfg)
	}
	return nil
}

func checkAddress(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return fmt.Errorf("%w: address %q is not host:port", ErrMalformed, a)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%w: address %q has a bad port", ErrMalformed, a)
	}
	return nil
}

// Generate is the trusted dealer: identity keys and threshold key shares for
// n replicas at hosts (host:port, one per replica, replica i at hosts[i-1]).
func Generate(rand io.Reader, n, f int, hosts []string, configuration string) (*Cluster, []*Private, error) {
	cfg := Configuration(configuration)
	if err := CheckResilience(cfg, n, f); err != nil {
		return nil, nil, err
	}
	if len(hosts) != n {
		return nil, nil, fmt.Errorf("%w: %d hosts for n=%d", ErrBadParams, len(hosts), n)
	}
	c := &Cluster{Name: "maftia", Configuration: cfg, N: n, F: f, Members: make([]Member, n)}
	if cfg == Hybrid {
		// Epoch 0 a minute from now; the caller may move it.
		c.Hybrid = DefaultHybridSchedule(time.Now().Add(time.Minute))
	}
	privs := make([]*Private, n)
	seen := map[string]bool{}
	for i := range n {
		if err := checkAddress(hosts[i]); err != nil {
			return nil, nil, err
		}
		if seen[hosts[i]] {
			return nil, nil, fmt.Errorf("%w: address %s", ErrDuplicate, hosts[i])
		}
		seen[hosts[i]] = true
		pub, priv, err := sig.GenerateKey(rand)
		if err != nil {
			return nil, nil, err
		}
		c.Members[i] = Member{ID: uint32(i + 1), Address: hosts[i], Identity: pub}
		privs[i] = &Private{ID: uint32(i + 1), Identity: priv}
	}
	qt, rt, ct, dt := Thresholds(n, f)
	var qs, rs, cs []*tsig.SecretShare
	var ds []*tenc.SecretShare
	var err error
	if c.Quorum, qs, err = tsig.Deal(rand, n, qt, []byte(DSTQuorum)); err != nil {
		return nil, nil, err
	}
	if c.Reply, rs, err = tsig.Deal(rand, n, rt, []byte(DSTReply)); err != nil {
		return nil, nil, err
	}
	if c.Coin, cs, err = coin.Deal(rand, n, ct-1); err != nil {
		return nil, nil, err
	}
	if c.Decrypt, ds, err = tenc.Deal(rand, n, dt); err != nil {
		return nil, nil, err
	}
	for i, p := range privs {
		p.Quorum, p.Reply, p.Coin, p.Decrypt = qs[i], rs[i], cs[i], ds[i]
	}
	return c, privs, nil
}

// AddClients creates k new client identities (IDs continuing after the
// existing ones) and lists their public keys in the cluster.
func (c *Cluster) AddClients(rand io.Reader, k int) ([]*ClientPrivate, error) {
	if k < 0 || k > 1<<20 {
		return nil, fmt.Errorf("%w: %d clients", ErrBadParams, k)
	}
	next := uint32(1)
	for _, cl := range c.Clients {
		next = max(next, cl.ID+1)
	}
	out := make([]*ClientPrivate, k)
	for i := range k {
		pub, priv, err := sig.GenerateKey(rand)
		if err != nil {
			return nil, err
		}
		id := next + uint32(i)
		c.Clients = append(c.Clients, Client{ID: id, Identity: pub})
		out[i] = &ClientPrivate{ID: id, Identity: priv}
	}
	return out, nil
}

// Member returns the member with the given id.
func (c *Cluster) Member(id uint32) (Member, error) {
	if id < 1 || int(id) > len(c.Members) {
		return Member{}, fmt.Errorf("%w: replica %d", ErrUnknownMember, id)
	}
	return c.Members[id-1], nil
}

// Client returns the client with the given id.
func (c *Cluster) Client(id uint32) (Client, error) {
	for _, cl := range c.Clients {
		if cl.ID == id {
			return cl, nil
		}
	}
	return Client{}, fmt.Errorf("%w: client %d", ErrUnknownMember, id)
}

// Digest identifies the cluster's key material: SHA-256 over a
// length-prefixed encoding of the name, configuration, n, f, every member's
// id and identity key, and all threshold public keys with their thresholds.
// Addresses and the client list are deliberately not covered, so moving a
// replica or adding a client does not invalidate the replicas' private key
// files; both are still validated on load. Private key files carry this
// digest and are refused for any other cluster.
func (c *Cluster) Digest() [32]byte {
	fields := [][]byte{[]byte(c.Name), []byte(c.Configuration), lp.Uint32(uint32(c.N)), lp.Uint32(uint32(c.F))}
	for _, m := range c.Members {
		fields = append(fields, lp.Uint32(m.ID), m.Identity.Marshal())
	}
	for _, pk := range []*tsig.PublicKey{c.Quorum, c.Reply, c.Coin.PublicKey()} {
		fields = append(fields, lp.Uint32(uint32(pk.Threshold())), pk.DST(), pk.GroupKey())
		fields = append(fields, pk.ShareKeys()...)
	}
	fields = append(fields, lp.Uint32(uint32(c.Decrypt.Threshold())), c.Decrypt.GroupKey())
	fields = append(fields, c.Decrypt.ShareKeys()...)
	return sha256.Sum256(lp.Encode("maftia/keys/cluster-digest/v1", fields...))
}

// ClientPortOffset is added to a member's replica (mesh) port to get the
// port of its client API, unless that exceeds 65535, in which case it is
// subtracted. The cluster file format is unchanged (backward compatible):
// every replica listens for clients at ClientAddress.
const ClientPortOffset = 1000

// ClientAddress is where the member serves clients: its mesh address
// with the port moved by ClientPortOffset.
func (m Member) ClientAddress() string {
	host, port, err := net.SplitHostPort(m.Address)
	if err != nil {
		return m.Address // validated on load; unreachable for a loaded cluster
	}
	p, _ := strconv.Atoi(port)
	if p+ClientPortOffset <= 65535 {
		p += ClientPortOffset
	} else {
		p -= ClientPortOffset
	}
	return net.JoinHostPort(host, strconv.Itoa(p))
}
