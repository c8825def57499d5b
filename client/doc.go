// Package client is the Go client library of maftia services: it signs
// requests with the client's identity key, sends them to the replicas,
// and accepts a result only when f+1 replicas returned matching replies
// signed with their identity keys (at least one is correct), retrying
// across replicas and honouring context deadlines.
package client
