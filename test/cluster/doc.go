// Package cluster holds the fault-injection tests of real maftia clusters
// (ATTACKS.md rows 1, 2, 3 and the Byzantine replica rows): four
// `maftia node` processes on loopback, a key-value workload through the
// client library, and nemeses — SIGKILL and restart, SIGSTOP/SIGCONT,
// partitions (a whole replica, one link, one direction, a slow replica) by
// one TCP proxy per mesh link that the test controls (`maftia node
// --peer-addr`), a Byzantine replica (`maftia node --attack`), and packet
// faults — loss, delay with jitter, duplication, reordering, a blackhole —
// with netem's knobs on a routed TUN network, each replica in a network
// namespace of its own (netem_test.go; root only, skipped otherwise;
// MAFTIA_CLUSTER_NETEM=all|none|name,... selects them). Every client
// history is checked linearizable with porcupine and for lost acknowledged
// writes, and each scenario prints a table row.
//
// The tests run only with MAFTIA_CLUSTER=1 (plain `go test ./...` stays
// fast). MAFTIA_CLUSTER_DURATION (default 18s, clamped to 6s–27s so that a
// scenario with its start and final checks stays within about 30 s) sets
// each scenario's workload length, split in thirds: before, during and
// after the fault.
//
//	MAFTIA_CLUSTER=1 go test -v -run TestNemesis ./test/cluster
//	MAFTIA_CLUSTER=1 go test -v -run 'TestNemesis/netem|TestPacketNetFaults' ./test/cluster
package cluster
