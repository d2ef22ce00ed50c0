// Package tpm verifies plain TPM 2.0 evidence (tee "tpm",
// docs/spec/attestation.md §4.6): a TPM2_Quote by an attestation key (AK)
// pinned in the verifier's configuration, over PCR values, with kura's
// runtime-data binding as the quote's qualifying data; and, when the bundle
// carries them, the TCG PC Client event log and the IMA runtime measurement
// list, replayed and compared with the quoted PCRs.
//
// The quote parser and its signature and PCR-digest checks are those of
// attestation/azure, which verifies the quotes of Azure's vTPMs.
//
// Attester produces such evidence on Linux (kura attest evidence --tee
// tpm): a quote by an endorsement-hierarchy or persistent attestation key
// over the PCRs of measured boot, with binary_bios_measurements and the IMA
// list read after the quote and trimmed to what it covers.
//
// PrivacyCA enrols attestation keys (docs/spec/attestation.md §4.6): it
// checks an EK certificate against TPM manufacturers' authorities and an
// AK's attributes, makes a TPM2 credential for the EK bound to the AK's
// name, and certifies the AK when the secret comes back; the Attester's
// ActivateCredential recovers that secret with the TPM.
//
// # Security model
//
// The AK is trusted because the operator pinned it (LoadAKs, --tpm-ak), or
// because the bundle carries a certificate for it that chains to a
// certificate authority the operator configured (LoadAKCAs, --tpm-ak-ca):
// Google's for Compute Engine vTPMs, whose certificates also name the VM
// instance, or a privacy CA that certified the AK after credential
// activation — kura's own PrivacyCA among them. Nothing here proves more
// than the pinning operator or the CA did. When the bundle gives the AK as
// a TPMT_PUBLIC, its attributes must make it a restricted signing key that
// the TPM generated (fixedTPM, fixedParent, sensitiveDataOrigin,
// restricted, sign), which only a TPM can vouch for, and only if the AK
// was pinned after checking that.
//
// PrivacyCA trusts the TPM manufacturers configured and TPM2 credential
// activation: the secret it makes is encrypted to the certified EK and
// bound to the AK's name, so only the TPM holding both recovers it. It
// keeps the secret's hash, never the secret, and compares in constant
// time; the caller keeps its state, single use, for minutes. It does not
// check EK certificate revocation, nor which machine the TPM is in; the AK
// certificates it issues cannot be revoked before they expire.
//
// A TPM attests measured boot and runtime integrity, not confidentiality:
// it isolates no memory. Event logs are unauthenticated input until
// replayed: only events whose PCR the quote covers and whose replay gives
// the quoted value are reported; an IMA entry's file name and digest are
// reported only after its template hash is recomputed from them. Event data
// is bound only where its digest is defined as its hash (EV_SEPARATOR,
// EV_ACTION, EV_EFI_ACTION, checked) and for IMA entries; claims mark those
// descriptions data_verified, and the appraisal matches names only there.
package tpm
