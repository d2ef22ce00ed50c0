// Package verifier is kura's attestation verification service: it issues
// single-use nonces, verifies evidence bundles with the TEE verifier for
// their type, checks that the hardware report_data binds the nonce and the
// runtime data, appraises the claims with a prepared Rego policy, and signs
// the outcome as an EAR token. Handler serves it over HTTP
// (docs/spec/attestation.md §8). With an AKEnroller it also enrols TPM
// attestation keys by credential activation (§4.6), keeping each challenge
// in the nonce store, single use, for five minutes.
//
// Security model: the service trusts only the vendor roots its TEE
// verifiers embed, its own nonces, and its policy and reference values.
// Each nonce is accepted at most once, before it expires
// (docs/spec/attestation.md §8.1): without a shared store it is
// authenticated by HMAC-SHA256 under a key drawn at random when the
// Service is made, kept only in memory and never logged, and its use is
// one bit in memory; with one, it is a record every replica consumes
// atomically.
// Every verification is logged with its outcome and reason; evidence and
// keys are not logged. An enrolment challenge's state holds the hash of
// the credential's secret, not the secret, which no log records.
package verifier
