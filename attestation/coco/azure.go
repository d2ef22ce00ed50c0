package coco

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/azure"
)

// Bounds on the members of Azure vTPM evidence, before the azure package
// checks what it builds.
const (
	maxHCLReportSize = 16 << 10
	maxVCEKSize      = 8 << 10
)

// TPMT_SIGNATURE header of the signatures Azure's vTPM attestation key
// makes (RSASSA-PKCS1-v1_5 with SHA-256), which CoCo's attesters send bare.
var rsassaSHA256 = []byte{0x00, 0x14, 0x00, 0x0b}

// parseAzure reads the evidence of guest-components' az-snp-vtpm and
// az-tdx-vtpm attesters in its two shapes (docs/spec/keybroker.md §2.1):
//
//   - version 1 or 2: {"version", "tpm_quote": {"signature", "message":
//     hex, "pcrs": [hex]}, "hcl_report": URL-safe base64, "vcek" (SNP: DER)
//     or "td_quote" (TDX): URL-safe base64};
//   - without "version" (older attesters, serde's default form):
//     {"tpm_quote" or, SNP, "quote": {"signature", "message": [bytes],
//     "pcrs": [[32 bytes]]}, "hcl_report" or, SNP, "report": [bytes],
//     "vcek" (SNP: PEM string) or "td_quote" (TDX): [bytes]}.
//
// The quote's signature is the bare RSA signature; it becomes the
// TPMT_SIGNATURE (RSASSA, SHA-256) kura's bundle carries.
func parseAzure(tee attestation.TEE, m map[string]json.RawMessage) (*attestation.Bundle, error) {
	what := string(tee) + " evidence"
	snp := tee == attestation.AzSNPvTPM
	var (
		a       azure.Artifacts
		quote   map[string]json.RawMessage
		version uint64
		err     error
	)
	if raw, ok := m["version"]; ok {
		if version, err = uintValue(raw, "version", 32); err != nil {
			return nil, err
		}
		if version != 1 && version != 2 {
			return nil, fmt.Errorf("%w: %w: %s version %d (kura reads 1 and 2, and evidence without a version)", attestation.ErrMalformed, ErrUnsupported, what, version)
		}
	}
	last := "td_quote"
	if snp {
		last = "vcek"
	}
	quoteKey, reportKey := "tpm_quote", "hcl_report"
	if version == 0 && snp && m["quote"] != nil {
		quoteKey, reportKey = "quote", "report"
	}
	optional := []string{"version"}
	if err := fields(m, what, []string{quoteKey, reportKey, last}, optional); err != nil {
		return nil, err
	}
	if quote, err = object(m[quoteKey], what+" "+quoteKey); err != nil {
		return nil, err
	}
	if err := fields(quote, what+" "+quoteKey, []string{"signature", "message", "pcrs"}, nil); err != nil {
		return nil, err
	}
	var sig, msg []byte
	var pcrs [][]byte
	if version == 0 {
		if sig, err = byteArray(quote["signature"], "tpm quote signature", -1, attestation.MaxTPMSignatureSize); err != nil {
			return nil, err
		}
		if msg, err = byteArray(quote["message"], "tpm quote message", -1, attestation.MaxTPMQuoteSize); err != nil {
			return nil, err
		}
		if pcrs, err = listOf(quote["pcrs"], "tpm quote pcrs", func(raw json.RawMessage) ([]byte, error) {
			return byteArray(raw, "tpm quote pcr", 32, 32)
		}); err != nil {
			return nil, err
		}
		if a.HCLReport, err = byteArray(m[reportKey], reportKey, -1, maxHCLReportSize); err != nil {
			return nil, err
		}
		if snp {
			if a.Certs, err = pemCertificate(m["vcek"]); err != nil {
				return nil, err
			}
		} else if a.TDQuote, err = byteArray(m["td_quote"], "td_quote", -1, attestation.MaxTDQuoteSize); err != nil {
			return nil, err
		}
	} else {
		if sig, err = hexString(quote["signature"], "tpm quote signature", attestation.MaxTPMSignatureSize); err != nil {
			return nil, err
		}
		if msg, err = hexString(quote["message"], "tpm quote message", attestation.MaxTPMQuoteSize); err != nil {
			return nil, err
		}
		if pcrs, err = listOf(quote["pcrs"], "tpm quote pcrs", func(raw json.RawMessage) ([]byte, error) {
			return hexString(raw, "tpm quote pcr", attestation.MaxPCRValueSize)
		}); err != nil {
			return nil, err
		}
		if a.HCLReport, err = urlBase64(m["hcl_report"], "hcl_report", maxHCLReportSize); err != nil {
			return nil, err
		}
		if snp {
			der, err := urlBase64(m["vcek"], "vcek", maxVCEKSize)
			if err != nil {
				return nil, err
			}
			a.Certs = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		} else if a.TDQuote, err = urlBase64(m["td_quote"], "td_quote", attestation.MaxTDQuoteSize); err != nil {
			return nil, err
		}
	}
	switch {
	case len(sig) == 0 || len(sig) > 0xffff:
		return nil, fmt.Errorf("%w: tpm quote signature is %d bytes", attestation.ErrMalformed, len(sig))
	case len(msg) == 0:
		return nil, fmt.Errorf("%w: tpm quote message is empty", attestation.ErrMalformed)
	}
	a.Quote = append(append(bytes.Clone(msg), rsassaSHA256...), binary.BigEndian.AppendUint16(nil, uint16(len(sig)))...)
	a.Quote = append(a.Quote, sig...)
	a.PCRs = bytes.Join(pcrs, nil)
	return azure.NewBundle(tee, a)
}

// listOf reads a JSON array of at most attestation.MaxPCRValues elements,
// each read by elem.
func listOf(raw json.RawMessage, what string, elem func(json.RawMessage) ([]byte, error)) ([][]byte, error) {
	var items []json.RawMessage
	if isNull(raw) || json.Unmarshal(raw, &items) != nil {
		return nil, fmt.Errorf("%w: %s is not an array", attestation.ErrMalformed, what)
	}
	if len(items) == 0 || len(items) > attestation.MaxPCRValues {
		return nil, fmt.Errorf("%w: %s has %d values, want 1 to %d", attestation.ErrMalformed, what, len(items), attestation.MaxPCRValues)
	}
	out := make([][]byte, len(items))
	for i, it := range items {
		b, err := elem(it)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// hexString reads a JSON string of hexadecimal digits (serde_with's Hex:
// even length, either case) of at most limit bytes.
func hexString(raw json.RawMessage, what string, limit int) ([]byte, error) {
	var s string
	if isNull(raw) || json.Unmarshal(raw, &s) != nil {
		return nil, fmt.Errorf("%w: %s is not a hex string", attestation.ErrMalformed, what)
	}
	if len(s) > 2*limit {
		return nil, fmt.Errorf("%w: %s is over %d bytes", attestation.ErrMalformed, what, limit)
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("%w: %s is not a non-empty hex string", attestation.ErrMalformed, what)
	}
	return b, nil
}

// urlBase64 reads a JSON string of URL-safe base64 (serde_with's
// Base64<UrlSafe>: padded when written; unpadded is accepted as serde_with
// accepts it) of 1 to limit bytes. The standard alphabet is refused.
func urlBase64(raw json.RawMessage, what string, limit int) ([]byte, error) {
	var s string
	if isNull(raw) || json.Unmarshal(raw, &s) != nil {
		return nil, fmt.Errorf("%w: %s is not a base64 string", attestation.ErrMalformed, what)
	}
	if base64.RawURLEncoding.DecodedLen(len(s)) > limit+2 {
		return nil, fmt.Errorf("%w: %s is over %d bytes", attestation.ErrMalformed, what, limit)
	}
	enc := base64.RawURLEncoding
	if strings.HasSuffix(s, "=") {
		enc = base64.URLEncoding
	}
	b, err := enc.Strict().DecodeString(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %s is not URL-safe base64: %v", attestation.ErrMalformed, what, err)
	case len(b) == 0 || len(b) > limit:
		return nil, fmt.Errorf("%w: %s is %d bytes, want 1 to %d", attestation.ErrMalformed, what, len(b), limit)
	}
	return b, nil
}

// pemCertificate reads the older az-snp-vtpm evidence's vcek: a string
// holding one PEM certificate.
func pemCertificate(raw json.RawMessage) ([]byte, error) {
	var s string
	if isNull(raw) || json.Unmarshal(raw, &s) != nil {
		return nil, fmt.Errorf("%w: vcek is not a PEM string", attestation.ErrMalformed)
	}
	if len(s) > 2*maxVCEKSize {
		return nil, fmt.Errorf("%w: vcek is over %d bytes", attestation.ErrMalformed, 2*maxVCEKSize)
	}
	block, rest := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: vcek is not one PEM certificate", attestation.ErrMalformed)
	}
	return []byte(s), nil
}
