// Package token issues and verifies EAR attestation-result tokens
// (draft-fv-rats-ear, via github.com/veraison/ear): JWTs signed ES256 or
// ES384 whose submods ("cpu0", later "gpu0") carry an AR4SI trust vector,
// the appraisal policy id, the annotated evidence claims and the runtime
// data bound into the evidence. The token format is specified in
// docs/spec/attestation.md §7.
//
// Security model: a token is only as good as the verifier key that signed
// it. Relying parties pin that key or fetch the verifier's JWKS over an
// authenticated channel; Verifier enforces the signature, the expiry (exp),
// the issue time and the EAR profile.
package token
