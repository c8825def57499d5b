// Package rbc implements Bracha's reliable broadcast (G. Bracha,
// "Asynchronous Byzantine agreement protocols", Information and Computation
// 75(2), 1987; presented as "Bracha broadcast" in Cachin, Guerraoui and
// Rodrigues, "Introduction to Reliable and Secure Distributed Programming",
// 2nd ed., §3.11), the reliable-broadcast primitive of MAFTIA's
// communication-support layer in the arbitrary-failure configuration
// (Veríssimo et al., IEEE S&P 2006, "Secure asynchronous agreement and
// broadcast").
//
// Fault model: n ≥ 3f+1 replicas, at most f Byzantine (the sender
// included), authenticated point-to-point channels, fully asynchronous: no
// timeouts. Guarantees for one instance with a designated sender:
//
//   - Validity: if the sender is correct and broadcasts m, every correct
//     replica eventually delivers m.
//   - Agreement (consistency): no two correct replicas deliver different
//     messages.
//   - Integrity: every correct replica delivers at most once, and if the
//     sender is correct only what it broadcast.
//   - Totality: if one correct replica delivers, every correct replica
//     eventually delivers.
//
// Messages: SEND(m) from the sender, ECHO(m) and READY(h) from everyone,
// where h = SHA-256(instance ‖ m) (length-prefixed, so digests are bound to
// the instance). ECHO carries the payload so that a replica that gathers
// 2f+1 READYs for h without having heard the sender still obtains m: the
// first correct replica to send READY saw ⌈(n+f+1)/2⌉ ECHOs of m, at least
// f+1 of them from correct replicas, whose ECHOs reach everyone. Cost:
// O(n²) messages and O(n²|m|) bits; broadcast/avid trades this for
// erasure-coded fragments.
//
// Memory per instance is bounded whatever Byzantine replicas send: one
// SEND, and per replica one ECHO and one READY are kept (a second,
// different one is Equivocation evidence), so at most n+1 payloads of at
// most MaxPayload bytes each. After delivery the instance keeps nothing but
// the fact that it delivered.
package rbc
