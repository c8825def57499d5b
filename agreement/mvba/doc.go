// Package mvba implements multivalued Byzantine agreement with external
// validity, the engine atomic broadcast runs once per epoch. It follows the
// shape of Cachin, Kursawe, Petzold and Shoup, "Secure and Efficient
// Asynchronous Broadcast Protocols" (CRYPTO 2001, §4, protocol VBA): every
// replica disseminates its proposal, then a threshold coin elects candidates
// at random and a binary agreement (agreement/aba) decides whether to adopt
// each, until one is adopted. Three departures, documented below: proposals
// travel by Bracha reliable broadcast (broadcast/rbc) instead of verifiable
// consistent broadcast with threshold-signature certificates; the
// per-candidate "pre-vote" is a plain VOTE round with f+1 amplification; and
// each iteration tosses its own coin (candidate = coin_l mod n) instead of
// one coin fixing a permutation, so the adversary learns candidate l+1 only
// after ABA_l decided 0 (candidates may repeat; a correct one is drawn with
// probability ≥ 2/3 per iteration).
//
// # Protocol (instance ID "mvba:7")
//
//	propose(v):   r-broadcast v on "mvba:7/prop:self"
//	on r-deliver v_j from prop:j: keep v_j if Valid(v_j) (else evidence)
//	wait until n−f valid proposals are held; l ← 1
//	loop:
//	  release the share of coin "mvba:7/coin:l"; c ← coin_l mod n + 1
//	  (iteration 1 with Params.FixedFirstCandidate: c ← H(inst) mod n + 1,
//	  no coin — see "Optimistic randomness" below)
//	  broadcast VOTE_l(1 if v_c is held else 0) on "mvba:7/vote:l"
//	  wait for n−f VOTE_l; b ← 1 if v_c is held or f+1 VOTE_l(1) arrived
//	  (one of them correct: r-broadcast totality will deliver v_c) else 0
//	  propose b to ABA "mvba:7/aba:l" (its coins of rounds 1 and 2 fixed
//	  to 1 and 0, Params.ABAFixedCoins: unanimous votes decide without a
//	  coin)
//	  if ABA_l decides 1: wait for v_c, decide (v_c, c); else l ← l+1
//	on decide: broadcast DECIDE(c, H(v_c)) on "mvba:7";
//	on f+1 matching DECIDE: decide v_c once r-delivered;
//	on 2f+1 matching DECIDE after deciding: halt (Finished)
//
// # Guarantees
//
// Fault model: n ≥ 3f+1, at most f Byzantine, authenticated channels, fully
// asynchronous; Valid is a deterministic predicate that every correct
// replica evaluates alike, and every correct replica proposes a valid value.
//
//   - Agreement: all correct replicas decide the same value. ABA_l decides
//     the same bit everywhere and the candidate's value is the one
//     r-broadcast delivers (RBC agreement).
//   - External validity: the decision satisfies Valid: ABA_l decides 1 only
//     if a correct replica proposed 1, which it does only if it or a correct
//     voter r-delivered a valid v_c.
//   - Integrity: the decision is the proposal of replica c (r-broadcast on
//     c's instance); if c is correct, it is c's input.
//   - Termination: with probability 1. Once every correct replica has
//     r-delivered the proposals of all correct replicas (eventual
//     delivery), every iteration whose candidate is correct makes all
//     correct replicas propose 1, so ABA decides 1; a candidate is correct
//     with probability ≥ 2/3. DECIDE amplification lets replicas halt
//     without leaving others stuck: no correct replica halts before f+1
//     correct ones broadcast DECIDE.
//
// Gap to CKPS: CKPS make a candidate's proposal known to f+1 correct
// replicas before the coin is revealed (each replica waits for n−f
// verifiable c-broadcasts and their certificates travel with the votes),
// which bounds the expected number of iterations by a constant against any
// scheduler. Here a replica waits for n−f r-delivered proposals before it
// releases its first coin share and the VOTE round amplifies f+1 holders,
// but an adversarial scheduler that delays chosen proposals can still make
// ABA decide 0 for a correct candidate; the simulator measures the
// iterations (docs/PERFORMANCE.md). A certified-broadcast variant (CBC from
// branch avid) is the intended replacement once it lands.
//
// # Optimistic randomness (Params.FixedFirstCandidate, ABAFixedCoins)
//
// DefaultParams draws iteration 1's candidate from the instance ID instead
// of a coin, and fixes the first two coins of every iteration's ABA (1,
// then 0); Kursawe's suggestion for HoneyBadgerBFT (see agreement/aba).
// Agreement, validity and integrity never depend on how candidates or
// coins are drawn, only on every correct replica drawing the same. What a
// predictable choice gives the adversary is at most one failed iteration:
// it can delay the known candidate's proposal or be that candidate, and
// then iteration 2 and later draw by the threshold coin exactly as above.
// In the common case — the candidate's proposal is out, every correct
// replica votes 1 — an MVBA now decides with no coin at all (in maftia
// bench the candidate coin and the ABA coins had been over a third of all
// CPU with one client, and a single request's latency fell from ≈ 50 to
// ≈ 23–33 ms, docs/PERFORMANCE.md). The simulator campaigns run the default
// parameters against every Byzantine behaviour.
//
// Persistence: the RBC children persist what they echo and ready, but the
// MVBA's own VOTEs and its ABA children are not wired to Recover yet (see
// agreement/aba's Recover); a restarted replica should rejoin at the next
// epoch of atomic broadcast.
//
// Complexity: n reliable broadcasts, O(n²) messages and O(n²|v|) bits;
// then per iteration O(n²) messages for VOTE and COIN plus one ABA
// (O(n²) per round, expected O(1) rounds). Crypto per replica and
// iteration: one coin share and one optimistic combination for the
// candidate, plus the ABA's. Memory: n proposals of at most MaxValue bytes,
// and per iteration within MaxIterationsAhead O(n) votes and shares.
package mvba
