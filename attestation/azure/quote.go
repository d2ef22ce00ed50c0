package azure

import (
	"bytes"
	"crypto/rsa"
	"fmt"

	"github.com/kura-cc/kura/attestation"
)

// TPMQuote is a parsed TPM2_Quote, the same parser and checks the Azure
// vTPM verifier uses, exported for attestation/tpm (plain TPM 2.0 quotes).
// Nothing in it is verified until VerifySignature and CheckPCRs return nil.
type TPMQuote struct{ q *tpmQuote }

// ParseTPMQuote parses a TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE and an RSA
// TPMT_SIGNATURE, with the rules of docs/spec/attestation.md §4.5 (tpm
// quote parse).
func ParseTPMQuote(attest, signature []byte) (*TPMQuote, error) {
	q, err := parseTPMQuote(attest, signature)
	if err != nil {
		return nil, err
	}
	return &TPMQuote{q}, nil
}

// VerifySignature checks the quote's signature over its TPMS_ATTEST with ak.
func (q *TPMQuote) VerifySignature(ak *rsa.PublicKey) error { return q.q.verifySignature(ak) }

// CheckPCRs checks that values are the quoted PCRs' values (their hash is
// the quote's pcrDigest) and returns them as claims: bank name → decimal
// PCR index → hex value.
func (q *TPMQuote) CheckPCRs(values [][]byte) (map[string]any, error) { return q.q.checkPCRs(values) }

// ExtraData returns the quote's extraData (its qualifying data).
func (q *TPMQuote) ExtraData() []byte { return q.q.extraData }

// QualifiedSigner returns the quote's qualifiedSigner.
func (q *TPMQuote) QualifiedSigner() []byte { return q.q.signer }

// FirmwareVersion returns the TPM firmware version the quote reports.
func (q *TPMQuote) FirmwareVersion() uint64 { return q.q.firmware }

// PCRDigest returns the quote's pcrDigest.
func (q *TPMQuote) PCRDigest() []byte { return q.q.pcrDigest }

// SchemeName names the signature scheme, e.g. "RSASSA-PKCS1-v1_5 SHA-256".
func (q *TPMQuote) SchemeName() string { return q.q.schemeName() }

// SplitTPMQuote splits TPM quote artifacts as files hold them: quote is the
// TPMS_ATTEST a TPM2_Quote returned followed by its TPMT_SIGNATURE (tpm2_quote
// -m and -s, one after the other), pcrs the quoted PCR values concatenated
// in the quote's selection order (tpm2_pcrread -o). The quote is parsed,
// not verified.
func SplitTPMQuote(quote, pcrs []byte) (attest, sig []byte, values [][]byte, err error) {
	if len(quote) > attestation.MaxTPMQuoteSize+attestation.MaxTPMSignatureSize {
		return nil, nil, nil, fmt.Errorf("%w: tpm quote file is %d bytes, limit is %d", attestation.ErrMalformed, len(quote), attestation.MaxTPMQuoteSize+attestation.MaxTPMSignatureSize)
	}
	n, err := quoteLen(quote)
	if err != nil {
		return nil, nil, nil, err
	}
	attest, sig = quote[:n], quote[n:]
	q, err := parseTPMQuote(attest, sig)
	if err != nil {
		return nil, nil, nil, err
	}
	rest := pcrs
	for _, bank := range q.selection {
		for range bank.indices {
			if len(rest) < bank.size {
				return nil, nil, nil, fmt.Errorf("%w: the PCR file holds %d bytes, fewer than the quote's selection needs", attestation.ErrMalformed, len(pcrs))
			}
			values = append(values, bytes.Clone(rest[:bank.size]))
			rest = rest[bank.size:]
		}
	}
	if len(rest) != 0 {
		return nil, nil, nil, fmt.Errorf("%w: the PCR file holds %d bytes more than the quote's selection", attestation.ErrMalformed, len(rest))
	}
	return bytes.Clone(attest), bytes.Clone(sig), values, nil
}
