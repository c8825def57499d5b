// Package coin is the threshold coin of Cachin, Kursawe and Shoup, "Random
// Oracles in Constantinople: Practical Asynchronous Byzantine Agreement using
// Cryptography" (PODC 2000; J. Cryptology 2005), §3 and §4: the shared
// randomness that lets randomized asynchronous Byzantine agreement terminate.
//
// A coin has a name C (bytes that identify the protocol instance and round,
// built with Name). Its value is F(C) = SHA-256(C, σ) where σ is the unique
// threshold BLS signature on C (package tsig, under the coin's own
// domain-separation tag). Each member releases a verifiable coin share σ_i;
// any threshold = f+1 valid shares combine to σ, so:
//
//   - Robustness: every correct member that gets f+1 valid shares obtains the
//     same value; invalid shares are detected and named (Toss returns their
//     indices for Evidence), so f Byzantine members cannot stop a toss.
//   - Unpredictability: until at least one correct member has released its
//     share, the value is indistinguishable from random to an adversary
//     holding at most f shares (co-CDH on BLS12-381, random oracle model;
//     CKS's Theorem 1 argument carried over to BLS, whose signatures are
//     unique, as the CKS paper itself notes for "unique signatures").
//   - Agreement: the value does not depend on which f+1 shares were used.
//
// The resilience bound is n ≥ 3f+1 with threshold f+1 (ATTACKS.md row 4: the
// coin value is unknown to the scheduler before a correct member releases
// its share). Value offers one bit (binary agreement), k bits, and an index
// modulo n (leader election) derived from 256 bits, with bias below 2^-190
// for n ≤ 2^64.
//
// The coin uses a tsig key of its own (DST below), never the certificate or
// reply keys, so a coin share can never be replayed as a signature share.
package coin
