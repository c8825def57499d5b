package smr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/maftia/maftia/crypto/sig"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/wire"
)

// Certified replies: the service as one trusted party (MAFTIA's "trusted
// third party" property, Cachin 2001 / the IEEE S&P 2006 paper §"Trusted
// applications"). A client that asks for it (wire.FrameRequestCertified)
// receives from each replica, besides the replica's own signed reply, a
// share of the service's threshold signature (the cluster's reply key,
// threshold f+1) on the statement "request (client, seq) executed at
// position with result". f+1 valid shares on one statement combine into
// one BLS signature: at least one correct replica vouched for it, so it is
// what the replicated state machine computed, and anyone holding the
// cluster file verifies it with one check, without knowing which replicas
// signed or trusting the client that shows it.

// CertifiedDomain separates certified-reply statements from every other
// use of the reply key (abc's STORED proofs use their own domain).
const CertifiedDomain = "maftia/smr/certified-reply/v1"

// Certificate is a reply the service signed as a whole.
type Certificate struct {
	Client, Seq, Position uint64
	Result                []byte
	Signature             []byte // tsig signature under the cluster's reply key
}

func certifiedStatement(cluster [32]byte, client, seq, position uint64, result []byte) []byte {
	return sig.Encode(CertifiedDomain, cluster[:], u64(client), u64(seq), u64(position), result)
}

// SignReplyShare sets r.Share: this replica's share of the service's
// signature on r's statement.
func SignReplyShare(share *tsig.SecretShare, cluster [32]byte, r *wire.Reply) {
	r.Share = tsig.SignShare(share, certifiedStatement(cluster, r.Client, r.Seq, r.Position, r.Result)).Marshal()
}

// ErrCertificate reports a certificate or reply share that does not verify.
var ErrCertificate = errors.New("smr: certified reply does not verify")

// CombineReplyShares combines the shares of replies that agree on one
// statement (same client, seq, position, result) into the service's
// certificate, verifying the result once. If that fails it checks the
// shares one by one and returns the replicas whose shares are invalid
// (provable misbehaviour), with ErrCertificate; the caller waits for
// other replies. Replies without a share are skipped.
func CombineReplyShares(pk *tsig.PublicKey, cluster [32]byte, replies []*wire.Reply) (Certificate, []uint32, error) {
	if len(replies) == 0 {
		return Certificate{}, nil, fmt.Errorf("%w: no replies", ErrCertificate)
	}
	r0 := replies[0]
	msg := certifiedStatement(cluster, r0.Client, r0.Seq, r0.Position, r0.Result)
	var shares []tsig.Share
	var bad []uint32
	for _, r := range replies {
		if r.Client != r0.Client || r.Seq != r0.Seq || r.Position != r0.Position || !slices.Equal(r.Result, r0.Result) {
			return Certificate{}, nil, fmt.Errorf("%w: replies on different statements", ErrCertificate)
		}
		s, err := tsig.UnmarshalShare(r.Share)
		if err != nil || s.Index != r.Replica {
			bad = append(bad, r.Replica)
			continue
		}
		shares = append(shares, s)
	}
	sigma, culprits, err := tsig.Combine(pk, shares, msg)
	if err != nil && !errors.Is(err, tsig.ErrTooFewShares) && len(culprits) == 0 {
		// A structural defect (a share on another message) names no
		// culprit: find them one by one and combine the rest.
		culprits = tsig.Culprits(pk, shares, msg)
		valid := slices.DeleteFunc(slices.Clone(shares), func(s tsig.Share) bool { return slices.Contains(culprits, s.Index) })
		sigma, _, err = tsig.Combine(pk, valid, msg)
	}
	bad = append(bad, culprits...)
	if err != nil {
		return Certificate{}, bad, fmt.Errorf("%w: %v", ErrCertificate, err)
	}
	return Certificate{Client: r0.Client, Seq: r0.Seq, Position: r0.Position, Result: slices.Clone(r0.Result), Signature: sigma.Marshal()}, bad, nil
}

// VerifyCertificate checks a certificate against the cluster's reply key
// (keys.Cluster.Reply) and digest.
func VerifyCertificate(pk *tsig.PublicKey, cluster [32]byte, c Certificate) error {
	s, err := tsig.UnmarshalSignature(c.Signature)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCertificate, err)
	}
	if err := tsig.Verify(pk, s, certifiedStatement(cluster, c.Client, c.Seq, c.Position, c.Result)); err != nil {
		return fmt.Errorf("%w: %v", ErrCertificate, err)
	}
	return nil
}

// Marshal encodes a certificate: client, seq, position (8 bytes each), the
// result's length (4 bytes) and bytes, then the signature.
func (c Certificate) Marshal() []byte {
	b := binary.BigEndian.AppendUint64(nil, c.Client)
	b = binary.BigEndian.AppendUint64(b, c.Seq)
	b = binary.BigEndian.AppendUint64(b, c.Position)
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Result)))
	b = append(b, c.Result...)
	return append(b, c.Signature...)
}

// UnmarshalCertificate parses Marshal's encoding strictly (the signature
// is checked by VerifyCertificate, not here).
func UnmarshalCertificate(b []byte) (Certificate, error) {
	if len(b) < 28 {
		return Certificate{}, fmt.Errorf("%w: certificate of %d bytes", wire.ErrMalformed, len(b))
	}
	c := Certificate{Client: binary.BigEndian.Uint64(b), Seq: binary.BigEndian.Uint64(b[8:]), Position: binary.BigEndian.Uint64(b[16:])}
	n := binary.BigEndian.Uint32(b[24:])
	b = b[28:]
	if uint64(n) > uint64(len(b)) {
		return Certificate{}, fmt.Errorf("%w: certificate result of %d bytes, %d left", wire.ErrMalformed, n, len(b))
	}
	c.Result, c.Signature = slices.Clone(b[:n]), slices.Clone(b[n:])
	if len(c.Signature) == 0 {
		return Certificate{}, fmt.Errorf("%w: certificate without a signature", wire.ErrMalformed)
	}
	return c, nil
}
