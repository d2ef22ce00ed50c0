// Package cca verifies Arm Confidential Compute Architecture (CCA)
// attestation tokens.
//
// A CCA token is a CBOR collection (tag 399) of two COSE_Sign1 tokens: the
// platform token, signed by the CCA platform attestation key (CPAK) of the
// hardware's root of trust, and the realm token, signed by the realm
// attestation key (RAK) that the Realm Management Monitor holds. The
// platform token's challenge is the hash of the RAK, which binds the two;
// the realm token's challenge is the 64 bytes the realm asked to be bound,
// which kura fills with its report_data (docs/spec/attestation.md §3).
//
// ParseToken decodes a token and checks the shape of every claim, with no
// cryptography. The Verifier then checks the platform token's signature
// with a configured CPAK, the realm token's signature with the RAK it
// carries, and the binding between the two, and returns the claims
// (docs/spec/attestation.md §4.4 and §5): the platform's implementation and
// instance ids, lifecycle, configuration and measured software components,
// and the realm's initial and extensible measurements (RIM, REM0–3),
// personalization value and hash algorithms. It does not judge them:
// reference values are the appraisal policy's business.
//
// Security model: everything in a token is untrusted until verified. The
// only trust anchors are the CPAKs in Config, public keys the operator
// obtained from the platform's vendor (a PEM or JWK file, or a CoMID's
// attester verification keys); Arm publishes no root for them, so kura
// believes a platform exactly as far as it believes whoever handed it the
// CPAK. A CPAK may be tied to the platform instance id (and implementation
// id) it belongs to; then only tokens naming that instance are checked with
// it. The RAK is believed only because the platform token, signed by a
// trusted CPAK, carries its hash. The realm challenge is returned as the
// Result's report data: comparing it with the bundle's runtime data and
// nonce is the caller's check (package verifier), as for SEV-SNP and TDX.
package cca
