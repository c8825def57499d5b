// Package sig provides the Ed25519 identities of maftia replicas and clients:
// key generation, marshalling, domain-separated signing, and single and batch
// verification with per-signature results.
//
// # One verification semantics: ZIP-215
//
// Ed25519 as deployed has several incompatible verification rules (RFC 8032
// leaves cofactored vs cofactorless verification open; implementations differ
// on non-canonical and small-order points). In a Byzantine setting that is a
// safety problem, not a curiosity: if one correct replica verifies a signature
// with the cofactorless equation [S]B = R + [k]A (Go's crypto/ed25519) and
// another with the cofactored equation [8][S]B = [8]R + [8][k]A (every batch
// verifier), a Byzantine signer can craft a signature (small-order R or A,
// see TestZIP215SmallOrderEdgeCase) that the first rejects and the second
// accepts, and the two correct replicas disagree about whether a message was
// validly signed. Package sig therefore uses exactly one rule everywhere,
// ZIP-215 (cofactored, accepting non-canonical encodings and small-order
// points), for Verify, VerifyDomain and Batch alike, via
// github.com/oasisprotocol/curve25519-voi's ed25519.VerifyOptionsZIP_215.
// ZIP-215 is the only rule under which batch verification and single
// verification provably agree on every input.
//
// # Domain separation
//
// Every layer of maftia signs Encode(domain, fields...) — a length-prefixed
// encoding of a domain tag (protocol and message kind) and the fields of the
// message (instance, epoch, round, sender, payload digest...). Encode is
// injective, so a signature made for one protocol, instance or message kind
// can never verify as a signature for another (ATTACKS.md row 11).
//
// # Why curve25519-voi
//
// The standard library's crypto/ed25519 has no batch verification and its
// verification is cofactorless; voi offers both single and batch verification
// with selectable, identical ZIP-215 semantics, batch verification that
// reports each bad signature, and constant-time signing (DESIGN.md §5).
//
// Security: EUF-CMA of Ed25519 (RFC 8032 §5.1; ZIP-215 rules from the Zcash
// specification). Private keys are zeroized by Zeroize and are never printed
// by String or in errors.
package sig
