package attestation

import "fmt"

// Limits on the vTPM part of a bundle. A quote of every PCR of four banks
// is under 1 KiB and an RSA-4096 signature 518 bytes; TD quotes are a few
// KiB (their bulk is the PEM PCK certificate chain).
const (
	MaxTPMQuoteSize     = 4 << 10
	MaxTPMSignatureSize = 2 << 10
	MaxPCRValues        = 128
	MaxPCRValueSize     = 64 // SHA-512
	MaxTDQuoteSize      = 64 << 10
	// MaxEventLogSize bounds each event log of a tpm bundle, and a tdx
	// bundle's CCEL log: a PC Client boot log is tens of KiB (a CCEL log
	// area is usually 64 KiB), an IMA list of a few thousand files a few
	// hundred KiB; base64 in a 1 MiB bundle must hold both.
	MaxEventLogSize = 384 << 10
)

// VTPM is the virtual TPM evidence of an Azure confidential VM
// (docs/spec/attestation.md §2.1): a TPM2_Quote by the vTPM's attestation
// key, which the HCL report in Bundle.Evidence binds, over PCR values the
// attester read; or, for tee tpm (§4.6), a plain TPM's quote by a pinned
// attestation key with its event logs. []byte fields are standard base64
// in JSON.
type VTPM struct {
	// Quote is the TPMS_ATTEST structure the TPM signed (the contents of
	// the TPM2B_ATTEST that TPM2_Quote returns). Its extraData carries the
	// runtime-data binding (docs/spec/attestation.md §3).
	Quote []byte `json:"quote"`
	// Signature is the TPMT_SIGNATURE that TPM2_Quote returns.
	Signature []byte `json:"signature"`
	// PCRs are the values of the quoted PCRs, in the order of the quote's
	// PCR selection: bank by bank, PCR index ascending within a bank.
	PCRs [][]byte `json:"pcrs"`
	// TDQuote is, for az-tdx-vtpm only, the Intel TD quote over the TD
	// report inside the HCL report (an Azure guest gets it from the host's
	// instance metadata service). Without it nothing vouches for the TD
	// report, and verification fails.
	TDQuote []byte `json:"td_quote,omitempty"`
	// EventLog is, for tpm only, the TCG PC Client crypto-agile event log
	// (binary_bios_measurements) whose replay must give the quoted PCRs.
	EventLog []byte `json:"event_log,omitempty"`
	// IMALog is, for tpm only, the IMA runtime measurement list in its
	// ASCII form (ascii_runtime_measurements), replayed likewise.
	IMALog []byte `json:"ima_log,omitempty"`
}

// checkVTPM reports whether the bundle's VTPM is present exactly for the
// Azure vTPM TEEs and tpm, and within its limits.
func (b *Bundle) checkVTPM() error {
	quoted := b.TEE == AzSNPvTPM || b.TEE == AzTDXvTPM || b.TEE == TPM
	switch {
	case !quoted && b.VTPM != nil:
		return fmt.Errorf("%w: a %s bundle has no vtpm member", ErrMalformed, b.TEE)
	case !quoted:
		return nil
	case b.VTPM == nil:
		return fmt.Errorf("%w: a %s bundle needs its vtpm member (the TPM quote)", ErrMalformed, b.TEE)
	}
	v := b.VTPM
	switch {
	case len(v.Quote) == 0 || len(v.Quote) > MaxTPMQuoteSize:
		return fmt.Errorf("%w: vtpm.quote is %d bytes, want 1 to %d", ErrMalformed, len(v.Quote), MaxTPMQuoteSize)
	case len(v.Signature) == 0 || len(v.Signature) > MaxTPMSignatureSize:
		return fmt.Errorf("%w: vtpm.signature is %d bytes, want 1 to %d", ErrMalformed, len(v.Signature), MaxTPMSignatureSize)
	case len(v.PCRs) == 0 || len(v.PCRs) > MaxPCRValues:
		return fmt.Errorf("%w: vtpm.pcrs has %d values, want 1 to %d", ErrMalformed, len(v.PCRs), MaxPCRValues)
	case len(v.TDQuote) > MaxTDQuoteSize:
		return fmt.Errorf("%w: vtpm.td_quote is %d bytes, limit is %d", ErrMalformed, len(v.TDQuote), MaxTDQuoteSize)
	case len(v.TDQuote) > 0 && b.TEE != AzTDXvTPM:
		return fmt.Errorf("%w: vtpm.td_quote belongs to %s bundles only", ErrMalformed, AzTDXvTPM)
	case (len(v.EventLog) > 0 || len(v.IMALog) > 0) && b.TEE != TPM:
		return fmt.Errorf("%w: vtpm.event_log and vtpm.ima_log belong to %s bundles only", ErrMalformed, TPM)
	case len(v.EventLog) > MaxEventLogSize || len(v.IMALog) > MaxEventLogSize:
		return fmt.Errorf("%w: vtpm event logs are %d and %d bytes, limit is %d each", ErrMalformed, len(v.EventLog), len(v.IMALog), MaxEventLogSize)
	}
	for i, p := range v.PCRs {
		if len(p) == 0 || len(p) > MaxPCRValueSize {
			return fmt.Errorf("%w: vtpm.pcrs[%d] is %d bytes, want 1 to %d", ErrMalformed, i, len(p), MaxPCRValueSize)
		}
	}
	return nil
}
