// Package aba implements randomized binary Byzantine agreement with a
// threshold coin: the signature-free algorithm of Mostéfaoui, Moumen and
// Raynal ("Signature-free asynchronous Byzantine consensus with t < n/3 and
// O(n²) messages", PODC 2014, Fig. 1 with the BV-broadcast of §3; journal
// version JACM 62(4), 2015) instantiated with the threshold coin of Cachin,
// Kursawe and Shoup (J. Cryptology 18(3), 2005, §3; package crypto/coin),
// with the published correctness fix for that instantiation.
//
// # The fix (ATTACKS.md row 4)
//
// MMR assume a perfect common coin whose value is unknown to the adversary
// until the first correct process invokes it. A threshold coin only hides
// its value until the first correct replica releases its share; an
// adversary that then sees the value and controls scheduling can steer
// which AUX messages each correct replica counts and keep the estimates
// split forever. Ethan MacBrough reported the attack against HoneyBadgerBFT
// in 2018 (github.com/amiller/HoneyBadgerBFT issue #59; the fix is the one
// deployed in poanetwork/hbbft, issue #37, and discussed by Crain, "A Simple
// and Efficient Asynchronous Randomized Binary Byzantine Consensus
// Algorithm", arXiv:2002.04393, 2020): a CONF round between AUX and the
// coin. Each replica broadcasts CONF_r(vals), vals being the set of values
// it saw in its n−f AUX messages (not its whole bin_values), and releases
// its coin share of round r only after n−f CONF_r sets contained in its
// bin_values_r. The decision rule then uses the union of those n−f CONF
// sets (as poanetwork/hbbft does), fixed here before the coin is known. The
// first correct replica to release its share had n−f CONF sets, at least
// f+1 of them from correct replicas and sent before anyone could know the
// coin; any other n−f CONF sets include one of those, so a replica whose
// own AUX was steered after the adversary learnt the coin cannot keep the
// other value alone while the rest adopt the coin. Deciding on one's own
// AUX-phase vals leaves the attack open even with the CONF round:
// TestSteeredAUXAttackNeedsConfUnion runs the attack's scheduler and shows
// both broken variants (no CONF; CONF with own vals) stall for 100+ rounds
// while this protocol decides. No replica here
// releases a round's share before that round's pre-coin phase (BVAL, AUX,
// CONF) is complete.
//
// # Protocol (round r, estimate est)
//
//	BV-broadcast: broadcast BVAL_r(est); on BVAL_r(b) from f+1, relay it;
//	              on BVAL_r(b) from 2f+1, bin_values_r ∪= {b}
//	AUX:          when bin_values_r first becomes non-empty with b,
//	              broadcast AUX_r(b)
//	CONF:         wait for n−f AUX_r with values in bin_values_r;
//	              vals ← their values; broadcast CONF_r(vals)
//	coin:         wait for n−f CONF_r ⊆ bin_values_r; vals ← their union;
//	              release the share of coin_r; s ← coin_r (f+1 valid shares)
//	decide:       if vals = {b}: est ← b, and if b = s decide b;
//	              else est ← s; r ← r+1
//
// Termination and halting: a replica that decides b broadcasts TERM(b)
// and keeps participating; on f+1 TERM(b) a replica decides b (a correct
// replica did), on 2f+1 TERM(b) after deciding it halts (Finished): f+1
// correct replicas sent TERM, so every correct replica will decide without
// it. In practice a replica halts one round after the first decision.
//
// # Fixed coins (Params.FixedCoins: optimistic randomness)
//
// The coins of the first rounds may be fixed bits instead of threshold
// coins — Kursawe's "optimistic randomness", suggested by Cachin for
// HoneyBadgerBFT (amiller/HoneyBadgerBFT issue #63; poanetwork/hbbft runs
// fixed-coin epochs). Agreement and validity never use the coin's value,
// only that it is the same at every correct replica: if a correct replica
// decides b in round r, its vals is {b} and equals the coin; every other
// correct replica's n−f CONF sets share a correct sender with its own, so
// b is in their vals, and they keep b (vals = {b}) or adopt the coin (= b);
// and est is always a value in bin_values, which only values of correct
// replicas enter. A fixed coin is known to the adversary in advance, so it
// may keep such a round from deciding; the termination argument below
// starts again at the first threshold-coin round, and the CONF round is
// kept in fixed rounds too. agreement/mvba fixes round 1 to 1: when the
// candidate's proposal is out every correct replica proposes 1, and the
// agreement then decides in round 1 with no coin share signed, combined or
// checked (with one client in maftia bench, the ABAs' coins had been a
// quarter of all CPU). It also fixes round 2 to 0, so an iteration whose
// candidate's proposal nobody holds ends without a coin too.
// TestFixedCoinsPropertiesUnderByzantineReplicas,
// TestSteeredAUXAttackNeedsConfUnion and the content-aware scheduler test
// run that schedule against the same adversaries as the plain protocol.
//
// # Guarantees
//
// Fault model: n ≥ 3f+1 replicas, at most f Byzantine, authenticated
// channels, fully asynchronous (no timeouts); coin unpredictability under
// the co-CDH assumption in the random-oracle model (crypto/coin).
//
//   - Agreement: no two correct replicas decide differently.
//   - Validity: a decided value was proposed by a correct replica; hence
//     if all correct replicas propose v, they decide v.
//   - Termination: with probability 1 every correct replica decides (and
//     halts); expected O(1) rounds — each round after the estimates of the
//     correct replicas coincide decides with probability 1/2.
//
// Complexity per round: O(n²) messages (BVAL at most twice, AUX, CONF,
// COIN once per replica, each to all), O(n²) words (a coin share is 100
// bytes); one coin share signed and one combination (interpolation plus one
// pairing check, optimistic: individual shares are verified only when the
// combination fails, and Precheck can verify them off the stepping
// goroutine). Memory: per round O(n); rounds beyond the current one plus
// Params.MaxRoundsAhead are dropped, so a Byzantine sender occupies at most
// a constant number of slots per kept round (ATTACKS.md row 2).
//
// Persistence: the round and estimate, the AUX and CONF sent in a round
// and the decision are persisted before the messages that reveal them
// (Output.Persist); Recover rebuilds an instance that never contradicts
// them (amnesia would be equivocation, ATTACKS.md rows 1 and 5). Received
// messages are not persisted, so a restarted replica may not finish its
// round by itself; it decides on f+1 TERMs like any laggard.
//
// Evidence: malformed messages (Malformed), two AUX, CONF or TERM values
// from one sender (Equivocation), coin shares that fail the structural
// checks or the pairing (InvalidProof) — the coin then completes from the
// valid shares (ATTACKS.md row 7).
package aba
