// Package client is the Go client library of maftia services: it signs
// requests with the client's identity key, sends them to the replicas,
// and accepts a result only when f+1 replicas returned matching replies
// (at least one is correct), retrying across replicas and honouring
// context deadlines. A reply counts as replica i's because it came on the
// TLS connection pinned to i's identity key from the cluster file; its
// Ed25519 signature (one per batch of i's replies, with a Merkle path) is
// checked only when it disagrees with the accepted result, to hold it as
// proof against i (Client.Faults; docs/adr/0009).
//
// SubmitCertified also collects the replicas' shares of the service's
// threshold signature (the cluster's reply key, threshold f+1) and returns
// an smr.Certificate: the service's signature on (client, request,
// position, result) that anyone holding the cluster file verifies alone —
// the service acting as one trusted third party (docs/adr/0002, addendum).
package client
