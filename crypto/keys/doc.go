// Package keys manages the key sets of a maftia cluster: generation by a
// trusted dealer, the public cluster description, the per-replica and
// per-client private key files, and their validation on load.
//
// # Key set of one replica
//
//   - identity: Ed25519 (package sig) — signs every protocol message;
//   - Quorum: tsig share, threshold n−f — quorum certificates;
//   - Reply: tsig share, threshold f+1 — threshold-signed replies to clients;
//   - Coin: tsig share, threshold f+1, coin DST — the CKS threshold coin;
//   - Decrypt: tenc (TDH2) share, threshold f+1 — secure causal broadcast.
//
// Each threshold scheme has an independent key and its own hash-to-curve
// domain-separation tag, so a share made for one purpose is useless for
// another. Resilience: async needs n ≥ 3f+1, hybrid n ≥ 2f+1 (DESIGN.md §1);
// anything else is refused at generation and at load.
//
// Public and private parts are separate types (Cluster, Private) so that a
// distributed key generation can later replace Generate without changing
// any consumer.
//
// # Files
//
// cluster.yaml (public, 0644), format "maftia-cluster/v1":
//
//	format: maftia-cluster/v1
//	name: maftia
//	configuration: async          # or hybrid
//	n: 4
//	f: 1
//	thresholds: {quorum: 3, reply: 2, coin: 2, decrypt: 2}
//	group_keys: {quorum: <hex G2>, reply: <hex G2>, coin: <hex G2>, decrypt: <hex ristretto255>}
//	members:
//	  - id: 1                      # ids are exactly 1..n (= NodeID = share index)
//	    address: host:port
//	    identity: <hex Ed25519 public key>
//	    quorum_key: <hex G2>       # per-member verification keys
//	    reply_key: <hex G2>
//	    coin_key: <hex G2>
//	    decrypt_key: <hex ristretto255>
//	clients:
//	  - id: 1
//	    identity: <hex Ed25519 public key>
//
// replica-<id>.key (secret, 0600), format "maftia-replica-key/v1": YAML with
// cluster (hex SHA-256 Cluster.Digest), id, identity (hex Ed25519 seed) and
// quorum_share, reply_share, coin_share (hex: u32 index || 32-byte
// big-endian scalar) and decrypt_share (hex: u32 index || 32-byte
// ristretto255 scalar). client-<id>.key, format "maftia-client-key/v1":
// cluster, id, identity.
//
// Loading refuses, each with its own sentinel error: private files readable
// by group or others (ErrInsecureFile), unknown fields, wrong format or
// malformed values (ErrMalformed), a file made for another cluster
// (ErrWrongCluster: the digest covers name, configuration, n, f, member ids
// and identity keys and all threshold public keys — not addresses or
// clients, which can change without re-keying), secrets that do not match
// the public keys the cluster lists for that member (ErrInconsistent),
// duplicate ids, addresses or identity keys (ErrDuplicate), and resilience
// violations (ErrResilience). Every group element is decoded with the
// subgroup and identity checks of packages tsig and tenc, and the
// verification keys must be consistent with the group key.
//
// Secrets are zeroized where Go allows (Private.Zeroize, the decoded byte
// buffers); hex strings produced by the YAML decoder are immutable and are
// left to the garbage collector — a known limit of a text format.
package keys
