// Package tdx verifies Intel TDX quotes (versions 4 and 5) and produces them
// inside a TD.
//
// A Verifier checks, in order and recording each step as an
// attestation.Check: that the quote parses ("quote parse"); that the PCK
// certificate chain embedded in it ends at the Intel SGX Root CA compiled
// into this package ("pck chain"); the QE report signature under the PCK key
// and the binding of the attestation key into the QE report ("qe report");
// the quote signature over the header and TD quote body under the
// attestation key ("quote signature"); with a CCEL event log in the bundle,
// that it parses ("event log parse") and replays to the quote's RTMR0–3
// ("event log replay"); the Intel PCS collateral: TCB info
// and QE identity signatures under issuer chains that end at the same root,
// their validity at the verification time, and their agreement with the
// quote and the PCK certificate ("tcb info", "qe identity"); when asked, the
// PCK and Root CA CRLs ("revocation"); and Intel's TCB level matching
// ("tcb level"). It returns the quote's claims for an appraisal policy.
//
// Security model: the quote and any collateral in the bundle are untrusted
// input; trust flows only from the Intel SGX Root CA (intel_sgx_root_ca.pem,
// the certificate go-tdx-guest also embeds) and the verification clock.
// Collateral is required by default, because without it nothing says whether
// the platform's TCB is current; Config.AllowMissingCollateral accepts
// signature-only verification and then records the TCB checks as skipped and
// reports an empty tcb_status. Unlike go-tdx-guest's verify package, which
// rejects every TCB status except UpToDate, the Verifier reports the status
// Intel assigns (UpToDate, SWHardeningNeeded, ConfigurationNeeded,
// ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded)
// as the tcb_status claim and leaves the decision to the policy. A Revoked
// TCB level, or a platform no TCB level matches, fails verification. The
// Verifier does not check report_data against a nonce; the caller binds it
// (attestation.RuntimeData). An event log is untrusted too: only its
// replay to the signed RTMRs makes its digests meaningful, and its event
// data only where the digest hashes it (EV_SEPARATOR, EV_ACTION,
// EV_EFI_ACTION). Claim keys are listed on Verifier.Verify and in
// docs/spec/attestation.md §5.
//
// An Attester obtains quotes through configfs-tsm and falls back to the
// /dev/tdx_guest ioctl interface.
package tdx
