// Package kv is maftia's reference application: an intrusion-tolerant
// key-value store (put, get, delete, compare-and-swap, range scan)
// implemented as a deterministic state machine (smr.FSM). Replicated by
// package smr over either ordering engine, it stays correct while f
// replicas are Byzantine; reads are ordered like writes, so every result
// is linearizable.
package kv
