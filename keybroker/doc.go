// Package keybroker is kura's key broker: it keeps each owner's secrets
// sealed at rest and releases one only to a workload whose fresh
// attestation a trusted verifier affirmed and whose release policy allows
// it, encrypted (JWE) to a public key that never leaves the TEE.
//
// It speaks the Confidential Containers KBS attestation protocol
// (POST /kbs/v0/auth, POST /kbs/v0/attest, GET /kbs/v0/resource/<repo>/<type>/<tag>)
// and adds an authenticated owner API under /kbs/v0/admin/. Trustee's own
// admin endpoints (POST /kbs/v0/resource/..., POST /kbs/v0/resource-policy)
// are accepted too, authenticated by the same owner keys, with the owner
// API's signature or Trustee's EdDSA admin JWT (§6.2). The wire
// format and kura's extensions are in docs/spec/keybroker.md; with
// Config.Compat set to CompatTrustee the KBS endpoints answer exactly as
// Trustee's KBS 0.4.0 does (§2.2).
//
// Security model: the broker trusts its KEK, the verifier keys it is
// configured with, its release policies, and the owners' admin keys. The
// store (SQLite or PostgreSQL) sees only AES-256-GCM ciphertext and DEKs
// wrapped by the KEK. No endpoint returns a stored value in plaintext: a
// release is a JWE to the tee-pubkey bound into attested evidence, and the
// admin API returns metadata only. Every release decision, released or
// refused, is recorded durably with its reason before the response is
// sent, and logged.
//
// A broker may be shared by rival owners: each admin key owns repositories
// (an authorized-keys line's repos=, by default the one named like the
// key) and the owner API lets it read, write, list and audit those alone;
// an operator key manages only the default release policy and the tenant
// list. Every other request is refused (ErrNotYourTenant) before anything
// about its target is read, logged, and recorded in the audit trail where
// the target's owner sees it, never as a release decision
// (docs/spec/keybroker.md §6.1).
//
// A broker is where an owner's revocation of its approval is enforced
// (docs/spec/cleanroom.md §3.1): it keeps the signed revocation only when
// it holds a dataset key pinned to the signer, and at each release reads
// the revocations by the pinned key, verifying each again, so neither the
// coordinator nor the file a run presents can undo one, and no party's
// revocation touches another party's keys.
package keybroker
