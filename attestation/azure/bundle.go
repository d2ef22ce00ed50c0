package azure

import (
	"bytes"
	"fmt"

	"github.com/kura-cc/kura/attestation"
)

// Artifacts are Azure vTPM evidence as files hold it, for NewBundle.
type Artifacts struct {
	// HCLReport is the HCL report as read from the vTPM's NV index
	// 0x01400001 (tpm2_nvread 0x01400001), padding included.
	HCLReport []byte
	// Quote is the TPMS_ATTEST a TPM2_Quote returned followed by its
	// TPMT_SIGNATURE: the two outputs of tpm2_quote -m and -s, one after
	// the other.
	Quote []byte
	// PCRs are the quoted PCR values, concatenated in the quote's
	// selection order (as tpm2_pcrread -o writes them).
	PCRs []byte
	// Certs are, for az-snp-vtpm, the VCEK and optionally the ASK and ARK,
	// PEM or DER, as attestation/snp reads them.
	Certs []byte
	// TDQuote is, for az-tdx-vtpm, the TD quote over the HCL report's TD
	// report.
	TDQuote []byte
	// Collateral is, for az-tdx-vtpm, Intel PCS collateral for the TD
	// quote.
	Collateral *attestation.Collateral
}

// NewBundle builds an evidence bundle for tee (attestation.AzSNPvTPM or
// AzTDXvTPM) from raw artifacts. Its RuntimeData is empty: raw artifacts
// carry no kura runtime data, so the quote's extraData is compared with a
// nonce at most. It checks shape only; nothing is verified.
func NewBundle(tee attestation.TEE, a Artifacts) (*attestation.Bundle, error) {
	if tee != attestation.AzSNPvTPM && tee != attestation.AzTDXvTPM {
		return nil, fmt.Errorf("%w: tee %q is not an Azure vTPM TEE", attestation.ErrMalformed, tee)
	}
	switch {
	case tee == attestation.AzSNPvTPM && (len(a.TDQuote) > 0 || a.Collateral != nil):
		return nil, fmt.Errorf("%w: a TD quote and TDX collateral belong to %s evidence", attestation.ErrMalformed, attestation.AzTDXvTPM)
	case tee == attestation.AzTDXvTPM && len(a.Certs) > 0:
		return nil, fmt.Errorf("%w: SNP certificates belong to %s evidence", attestation.ErrMalformed, attestation.AzSNPvTPM)
	}
	hcl, err := parseHCLReport(a.HCLReport)
	if err != nil {
		return nil, err
	}
	if hcl.tee != tee {
		return nil, fmt.Errorf("%w: the HCL report carries %s: it is %s evidence, not %s", attestation.ErrMalformed, hcl.aHardware(), hcl.tee, tee)
	}
	attest, sig, pcrs, err := SplitTPMQuote(a.Quote, a.PCRs)
	if err != nil {
		return nil, err
	}
	b := &attestation.Bundle{
		Version:  attestation.BundleVersion,
		TEE:      tee,
		Evidence: bytes.Clone(a.HCLReport),
		Certs:    bytes.Clone(a.Certs),
		VTPM: &attestation.VTPM{
			Quote: bytes.Clone(attest), Signature: bytes.Clone(sig), PCRs: pcrs, TDQuote: bytes.Clone(a.TDQuote),
		},
	}
	if len(b.Certs) == 0 {
		b.Certs = nil
	}
	if len(b.VTPM.TDQuote) == 0 {
		b.VTPM.TDQuote = nil
	}
	b.Collateral = a.Collateral
	if err := b.Check(); err != nil {
		return nil, err
	}
	return b, nil
}
