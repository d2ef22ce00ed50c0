// Package attestation defines kura's vendor-neutral attestation vocabulary:
// the evidence bundle that carries hardware evidence and the runtime data
// bound into it, the binding rule between the two, the result of a TEE
// verifier and the sentinel errors every verifier returns.
//
// Security model: a Bundle is untrusted input. Nothing in it is believed until
// a TEE verifier (packages snp, tdx, sim under this directory) has checked the
// hardware signature up to a vendor root and the verifier service has checked
// that the hardware report_data equals what the bundle's binding rule gives
// for its runtime data (ReportDataFor: kura's rule, or a Confidential
// Containers attester's) and a nonce it issued. The wire format is specified
// in docs/spec/attestation.md.
package attestation
