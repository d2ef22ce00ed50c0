// Package verifier is kura's attestation verification service: it issues
// single-use nonces, verifies evidence bundles with the TEE verifier for
// their type, checks that the hardware report_data binds the nonce and the
// runtime data, appraises the claims with a prepared Rego policy, and signs
// the outcome as an EAR token. Handler serves it over HTTP
// (docs/spec/attestation.md §8).
//
// Security model: the service trusts only the vendor roots its TEE
// verifiers embed, its own nonces, and its policy and reference values.
// Every verification is logged with its outcome and reason; evidence and
// keys are not logged.
package verifier
