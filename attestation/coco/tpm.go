package coco

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/azure"
)

// parseTPM reads guest-components' TPM attester evidence:
//
//	{"report_data": base64, "ak_public": base64 TPMT_PUBLIC or PKIX DER,
//	 "tpm_quote": {"message": base64 TPMS_ATTEST, "signature": base64 TPMT_SIGNATURE,
//	               "pcrs": [hex, ...]}}
//
// The attester quotes with the 64-byte report data as qualifying data and
// sends the PCR values of its selection (SHA-256 PCRs 0 to 23) in order.
// report_data, which earlier attesters (and Trustee's test evidence) do
// not send, must be the quote's qualifying data: a mismatch is malformed
// evidence rather than left for the binding check, which reads the quote. The AK is trusted only as a tpm bundle's always is: pinned or
// certified (docs/spec/attestation.md §4.6); this evidence carries no
// certificate.
func parseTPM(m map[string]json.RawMessage) (*attestation.Bundle, error) {
	if err := fields(m, "tpm evidence", []string{"ak_public", "tpm_quote"}, []string{"report_data"}); err != nil {
		return nil, err
	}
	var rd []byte
	if raw, ok := m["report_data"]; ok {
		var err error
		if rd, err = stdBase64(raw, "report_data", attestation.ReportDataSize); err != nil {
			return nil, err
		}
	}
	ak, err := stdBase64(m["ak_public"], "ak_public", 4096)
	if err != nil {
		return nil, err
	}
	if len(ak) > 2 && int(binary.BigEndian.Uint16(ak)) == len(ak)-2 {
		ak = ak[2:] // a TPM2B_PUBLIC: its TPMT_PUBLIC
	}
	q, err := object(m["tpm_quote"], "tpm_quote")
	if err != nil {
		return nil, err
	}
	if err := fields(q, "tpm_quote", []string{"message", "signature", "pcrs"}, nil); err != nil {
		return nil, err
	}
	attest, err := stdBase64(q["message"], "tpm_quote.message", attestation.MaxTPMQuoteSize)
	if err != nil {
		return nil, err
	}
	sig, err := stdBase64(q["signature"], "tpm_quote.signature", attestation.MaxTPMSignatureSize)
	if err != nil {
		return nil, err
	}
	pcrs, err := listOf(q["pcrs"], "tpm_quote.pcrs", func(raw json.RawMessage) ([]byte, error) {
		return hexString(raw, "tpm_quote.pcrs value", attestation.MaxPCRValueSize)
	})
	if err != nil {
		return nil, err
	}
	quote, err := azure.ParseTPMQuote(attest, sig)
	if err != nil {
		return nil, err
	}
	padded := make([]byte, attestation.ReportDataSize)
	copy(padded, quote.ExtraData())
	if want := append(bytes.Clone(rd), make([]byte, attestation.ReportDataSize-len(rd))...); rd != nil && !bytes.Equal(padded, want) {
		return nil, fmt.Errorf("%w: tpm evidence: report_data %s is not the quote's qualifying data %s", attestation.ErrMalformed, hex.EncodeToString(rd), hex.EncodeToString(quote.ExtraData()))
	}
	b := &attestation.Bundle{
		Version: attestation.BundleVersion, TEE: attestation.TPM, Evidence: ak,
		VTPM: &attestation.VTPM{Quote: attest, Signature: sig, PCRs: pcrs},
	}
	if err := b.Check(); err != nil {
		return nil, err
	}
	return b, nil
}

// stdBase64 reads a JSON string of standard, padded base64 (the base64
// crate's STANDARD engine) of 1 to limit bytes.
func stdBase64(raw json.RawMessage, what string, limit int) ([]byte, error) {
	var s string
	if isNull(raw) || json.Unmarshal(raw, &s) != nil {
		return nil, fmt.Errorf("%w: %s is not a base64 string", attestation.ErrMalformed, what)
	}
	if base64.StdEncoding.DecodedLen(len(s)) > limit+2 {
		return nil, fmt.Errorf("%w: %s is over %d bytes", attestation.ErrMalformed, what, limit)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %s is not standard base64: %v", attestation.ErrMalformed, what, err)
	case len(b) == 0 || len(b) > limit:
		return nil, fmt.Errorf("%w: %s is %d bytes, want 1 to %d", attestation.ErrMalformed, what, len(b), limit)
	}
	return b, nil
}
