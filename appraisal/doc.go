// Package appraisal turns verified TEE claims into an AR4SI trust vector by
// evaluating a Rego policy against reference values.
//
// The policy is data: kura ships DefaultPolicy (default.rego) and operators
// may replace it. It is compiled once by New and evaluated per request. Its
// input is {"claims", "reference", "dev_mode"} and it must define
// data.kura.appraisal.result = {"trust_vector", "checks", "explain"}; see
// docs/spec/attestation.md §6.
//
// Security model: the appraisal only judges claims that a TEE verifier has
// already established cryptographically. A policy that affirms too much is
// the operator's choice; the default refuses debug guests, unknown
// measurements when reference values exist, TCB levels below the minimum,
// and the simulated TEE unless dev mode is on.
package appraisal
