// Package client is the Go client library of maftia services: it signs
// requests with the client's identity key, sends them to the replicas,
// and accepts a result only when f+1 replicas returned matching replies
// signed with their identity keys (at least one is correct), retrying
// across replicas and honouring context deadlines.
//
// SubmitCertified also collects the replicas' shares of the service's
// threshold signature (the cluster's reply key, threshold f+1) and returns
// an smr.Certificate: the service's signature on (client, request,
// position, result) that anyone holding the cluster file verifies alone —
// the service acting as one trusted third party (docs/adr/0002, addendum).
package client
