package snp

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-sev-guest/abi"

	"github.com/kura-cc/kura/attestation"
)

// NewBundle builds an evidence bundle from raw vendor artifacts, as the CLI
// reads them from files: report is the 1184-byte attestation report or its
// hex; certs is empty, a certificate table, or any concatenation of PEM and
// DER certificates (VCEK or VLEK, ASK or ASVK, ARK), such as a VCEK file
// followed by AMD's cert_chain. The bundle's Certs is a PEM bundle and its
// RuntimeData is empty: raw artifacts bind no kura runtime data.
// NewBundle checks shape only; nothing is verified.
func NewBundle(report, certs []byte) (*attestation.Bundle, error) {
	raw, _, _, err := parseReport(report)
	if err != nil {
		return nil, fmt.Errorf("snp report: %w", err)
	}
	set, err := parseCerts(certs)
	if err != nil {
		return nil, fmt.Errorf("snp certificates: %w", err)
	}
	b := &attestation.Bundle{
		Version:  attestation.BundleVersion,
		TEE:      attestation.SNP,
		Evidence: raw,
		Certs:    set.pemBundle(),
	}
	if len(b.Certs) == 0 {
		b.Certs = nil
	}
	return b, nil
}

// tsmReport is the JSON capture of a configfs-tsm report entry, as the
// Veraison sevsnp scheme stores it: attribute contents in base64url.
type tsmReport struct {
	Provider string `json:"provider"`
	OutBlob  string `json:"outblob"`
	AuxBlob  string `json:"auxblob"`
}

// ParseTSMReport reads a configfs-tsm capture: a JSON object whose
// "provider" is "sev_guest", whose "outblob" is the report and whose
// "auxblob" is the certificate table, both base64url (padded or not), and
// nothing after it but white space. It returns a bundle with empty
// RuntimeData; nothing is verified.
func ParseTSMReport(data []byte) (*attestation.Bundle, error) {
	if len(data) > attestation.MaxBundleSize {
		return nil, fmt.Errorf("%w: tsm report is %d bytes, limit is %d", attestation.ErrMalformed, len(data), attestation.MaxBundleSize)
	}
	var t tsmReport
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: tsm report: %v", attestation.ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: tsm report: data after the JSON object", attestation.ErrMalformed)
	}
	if p := strings.TrimSpace(t.Provider); p != "sev_guest" {
		return nil, fmt.Errorf("%w: tsm report provider is %q, want \"sev_guest\"", attestation.ErrMalformed, p)
	}
	out, err := decodeBase64URL(t.OutBlob)
	if err != nil {
		return nil, fmt.Errorf("%w: tsm report outblob: %v", attestation.ErrMalformed, err)
	}
	aux, err := decodeBase64URL(t.AuxBlob)
	if err != nil {
		return nil, fmt.Errorf("%w: tsm report auxblob: %v", attestation.ErrMalformed, err)
	}
	if len(out) != abi.ReportSize {
		return nil, fmt.Errorf("%w: tsm report outblob is %d bytes, want %d", attestation.ErrMalformed, len(out), abi.ReportSize)
	}
	if _, err := parseCerts(aux); err != nil {
		return nil, fmt.Errorf("tsm report auxblob: %w", err)
	}
	b := &attestation.Bundle{
		Version:  attestation.BundleVersion,
		TEE:      attestation.SNP,
		Evidence: out,
		Certs:    aux,
	}
	if len(aux) == 0 {
		b.Certs = nil
	}
	return b, nil
}

func decodeBase64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(s), "="))
}
