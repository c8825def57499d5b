// Package core is the protocol-core contract of maftia (DESIGN §3).
//
// Every protocol in maftia (reliable broadcast, Byzantine agreement, atomic
// broadcast, the wormhole-aware protocols) is a plain deterministic struct
// driven through one entry point:
//
//	Step(ev Event, out *Output) error
//
// A core never does I/O, never starts a goroutine, never reads a clock and
// never uses global randomness. Events form a closed set (Message, Input,
// TimerFired, ServiceReply); effects are collected in an Output (records to
// persist, messages to one replica or to all, deliveries, timers, requests
// to services such as the TTCB, and Evidence against replicas that provably
// misbehaved). The runtime (package node) or the simulator (package sim)
// performs the effects; the runtime makes Output.Persist durable before it
// sends any message of the same Output (the "persist before send" rule of
// etcd-io/raft's Ready).
//
// Malformed or Byzantine input is never returned as an error: a core drops it
// and, where the misbehaviour is provable from an authenticated message,
// records Evidence. An error returned by Step means a local invariant broke
// and the replica must halt.
//
// Fault model: replicas are identified by NodeID 1..n; a Group fixes n and
// the number f of replicas that may be Byzantine, and NewGroup refuses
// parameters that the chosen resilience bound cannot tolerate (n ≥ 3f+1 for
// the asynchronous configuration, n ≥ 2f+1 for hybrid state machine
// replication, n ≥ f+2 for hybrid reliable multicast). Messages handed to a
// core come over authenticated channels: Message.From is the true sender.
//
// Instances are named by hierarchical InstanceIDs ("abc/e:7/acs/rbc:3") that
// every message carries, so a composite protocol owns its children directly
// and routes by prefix. Messages for instances not yet started are held in an
// EarlyBuffer bounded per sender in count and bytes, so a Byzantine or fast
// replica cannot make a correct one buffer without bound (ATTACKS.md row 2).
package core
