package coco

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/fault"
)

// MaxEvidenceSize bounds encoded native evidence, as attestation bounds an
// encoded bundle.
const MaxEvidenceSize = attestation.MaxBundleSize

// ErrUnsupported means the evidence is well formed but of a kind kura does
// not accept (a sev crate serialisation older than version 5, an Azure
// vTPM evidence version other than 1 and 2). It is in attestation's family, of kind fault.Unsupported;
// errors wrapping it also wrap attestation.ErrMalformed, first.
var ErrUnsupported = fault.New(attestation.ErrAttestation, fault.Unsupported, "unsupported evidence")

// simFormat is the format field of kura's sim evidence document
// (docs/spec/attestation.md §4.3).
const simFormat = "kura-sim-evidence/v1"

// ParseEvidence converts a CoCo attester's evidence for tee into a bundle.
// data is the evidence JSON object, or a JSON string holding it (as KBS
// protocol 0.1.0 clients send it). The bundle's RuntimeData and Binding are
// left empty for the caller, who knows the nonce and key the evidence must
// bind. Nothing is verified.
func ParseEvidence(tee attestation.TEE, data []byte) (*attestation.Bundle, error) {
	data, err := unwrap(data)
	if err != nil {
		return nil, err
	}
	members, err := object(data, "evidence")
	if err != nil {
		return nil, err
	}
	// Trustee's sample TEE maps to kura's sim (parseSim).
	if got := guess(members); got != "" && got != string(tee) && (got != "sample" || tee != attestation.Sim) {
		return nil, fmt.Errorf("%w: the evidence looks like %s evidence, but %s evidence was expected", attestation.ErrMalformed, got, tee)
	}
	switch tee {
	case attestation.SNP:
		return parseSNP(members)
	case attestation.TDX:
		return parseTDX(members)
	case attestation.Sim:
		return parseSim(data, members)
	case attestation.AzSNPvTPM, attestation.AzTDXvTPM:
		return parseAzure(tee, members)
	case attestation.CCA:
		return parseCCA(members)
	case attestation.TPM:
		return parseTPM(members)
	}
	return nil, fmt.Errorf("%w: no CoCo evidence format for tee %q", attestation.ErrMalformed, tee)
}

// ParseSNP converts guest-components' SnpEvidence JSON into an SNP bundle.
func ParseSNP(data []byte) (*attestation.Bundle, error) {
	return ParseEvidence(attestation.SNP, data)
}

// ParseAzSNPvTPM converts guest-components' az-snp-vtpm evidence JSON into
// an az-snp-vtpm bundle.
func ParseAzSNPvTPM(data []byte) (*attestation.Bundle, error) {
	return ParseEvidence(attestation.AzSNPvTPM, data)
}

// ParseAzTDXvTPM converts guest-components' az-tdx-vtpm evidence JSON into
// an az-tdx-vtpm bundle.
func ParseAzTDXvTPM(data []byte) (*attestation.Bundle, error) {
	return ParseEvidence(attestation.AzTDXvTPM, data)
}

// ParseCCA converts guest-components' CcaEvidence JSON into a cca bundle.
func ParseCCA(data []byte) (*attestation.Bundle, error) {
	return ParseEvidence(attestation.CCA, data)
}

// ParseTDX converts guest-components' TdxEvidence JSON into a TDX bundle.
func ParseTDX(data []byte) (*attestation.Bundle, error) {
	return ParseEvidence(attestation.TDX, data)
}

// unwrap bounds data and, when it is a JSON string, returns its contents.
func unwrap(data []byte) ([]byte, error) {
	if len(data) > MaxEvidenceSize {
		return nil, fmt.Errorf("%w: evidence is %d bytes, limit is %d", attestation.ErrMalformed, len(data), MaxEvidenceSize)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '"' {
		return data, nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%w: evidence string: %v", attestation.ErrMalformed, err)
	}
	return []byte(s), nil
}

// guess names the TEE whose CoCo evidence has members like these: "snp",
// "tdx", "az-snp-vtpm", "az-tdx-vtpm", "cca", "tpm", "sim", "sample" (Trustee's
// sample), or "" when it cannot tell.
func guess(m map[string]json.RawMessage) string {
	has := func(k string) bool { _, ok := m[k]; return ok }
	switch {
	case has("tpm_quote") && has("ak_public"):
		return string(attestation.TPM)
	case has("tpm_quote") && has("td_quote"):
		return string(attestation.AzTDXvTPM)
	case has("tpm_quote") || has("quote") && has("vcek"):
		return string(attestation.AzSNPvTPM)
	case has("token"):
		return string(attestation.CCA)
	case has("attestation_report"):
		return "snp"
	case has("quote"):
		return "tdx"
	case has("format") && has("signature"):
		return "sim"
	case has("svn"):
		return "sample"
	}
	return ""
}

// parseSim accepts kura's sim evidence document, or Trustee's sample
// evidence ({"svn", "report_data", "init_data"}: unsigned, which the sim
// verifier accepts as INSECURE as the rest of the sim TEE), as the sim
// TEE's native evidence.
func parseSim(data []byte, m map[string]json.RawMessage) (*attestation.Bundle, error) {
	if _, ok := m["svn"]; ok {
		if err := fields(m, "Trustee sample evidence", []string{"svn"}, []string{"report_data", "init_data"}); err != nil {
			return nil, err
		}
		for _, k := range []string{"svn", "report_data", "init_data"} {
			if _, err := stringField(m, k, k == "svn"); err != nil {
				return nil, err
			}
		}
		return &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.Sim, Evidence: bytes.Clone(data)}, nil
	}
	format, err := stringField(m, "format", true)
	if err != nil {
		return nil, err
	}
	if format != simFormat {
		return nil, fmt.Errorf("%w: sim evidence format is %q, want %q", attestation.ErrMalformed, format, simFormat)
	}
	return &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.Sim, Evidence: bytes.Clone(data)}, nil
}

// object decodes a JSON object into its members, refusing anything else,
// duplicate keys and trailing data.
func object(data []byte, what string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", attestation.ErrMalformed, what, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%w: %s is not a JSON object", attestation.ErrMalformed, what)
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", attestation.ErrMalformed, what, err)
		}
		k, _ := kt.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%w: %s.%s: %v", attestation.ErrMalformed, what, k, err)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("%w: %s: duplicate field %q", attestation.ErrMalformed, what, k)
		}
		m[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", attestation.ErrMalformed, what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: %s: trailing data after the JSON object", attestation.ErrMalformed, what)
	}
	return m, nil
}

// fields checks that m has every required member and no member outside
// required and optional.
func fields(m map[string]json.RawMessage, what string, required, optional []string) error {
	var unknown []string
	for k := range m {
		if !slices.Contains(required, k) && !slices.Contains(optional, k) {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("%w: %s: unknown field %s", attestation.ErrMalformed, what, strings.Join(unknown, ", "))
	}
	for _, k := range required {
		if _, ok := m[k]; !ok {
			return fmt.Errorf("%w: %s: missing field %q", attestation.ErrMalformed, what, k)
		}
	}
	return nil
}

// isNull reports whether a member is absent or JSON null (serde reads both
// as None).
func isNull(raw json.RawMessage) bool {
	return raw == nil || string(bytes.TrimSpace(raw)) == "null"
}

// stringField reads a string member; an absent or null optional one is "".
func stringField(m map[string]json.RawMessage, k string, required bool) (string, error) {
	raw := m[k]
	if isNull(raw) {
		if required {
			return "", fmt.Errorf("%w: field %q is missing or null", attestation.ErrMalformed, k)
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: field %q is not a string", attestation.ErrMalformed, k)
	}
	return s, nil
}

// uintValue reads a non-negative JSON integer of at most bits bits, written
// as serde_json writes one: decimal digits, no sign, fraction or exponent.
func uintValue(raw json.RawMessage, what string, bits int) (uint64, error) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || strings.Trim(s, "0123456789") != "" || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%w: %s is not an unsigned integer", attestation.ErrMalformed, what)
	}
	v, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%w: %s does not fit %d bits", attestation.ErrMalformed, what, bits)
	}
	return v, nil
}

// byteArray reads a JSON array of exactly n integers 0 to 255 (n < 0: any
// length up to limit), the serde form of [u8; n] and Vec<u8>.
func byteArray(raw json.RawMessage, what string, n, limit int) ([]byte, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: %s: %s", attestation.ErrMalformed, what, why)
	}
	s := bytes.TrimSpace(raw)
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, bad("not an array of bytes")
	}
	body := s[1 : len(s)-1]
	capHint := n
	if capHint < 0 {
		capHint = min(len(body)/2+1, limit)
	}
	out := make([]byte, 0, capHint)
	i := 0
	skip := func() {
		for i < len(body) && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r') {
			i++
		}
	}
	skip()
	for i < len(body) {
		start := i
		v := 0
		for i < len(body) && body[i] >= '0' && body[i] <= '9' && i-start < 4 {
			v = v*10 + int(body[i]-'0')
			i++
		}
		switch {
		case i == start:
			return nil, bad("element " + strconv.Itoa(len(out)) + " is not an integer")
		case i-start > 1 && body[start] == '0', v > 255, i < len(body) && body[i] >= '0' && body[i] <= '9':
			return nil, bad("element " + strconv.Itoa(len(out)) + " is not a byte (0 to 255)")
		}
		if want := n; (want >= 0 && len(out) == want) || (want < 0 && len(out) == limit) {
			if want < 0 {
				want = limit
			}
			return nil, bad("more than " + strconv.Itoa(want) + " elements")
		}
		out = append(out, byte(v))
		skip()
		if i == len(body) {
			break
		}
		if body[i] != ',' {
			return nil, bad("elements must be integers separated by commas")
		}
		i++
		skip()
		if i == len(body) {
			return nil, bad("trailing comma")
		}
	}
	if n >= 0 && len(out) != n {
		return nil, bad(fmt.Sprintf("has %d elements, want %d", len(out), n))
	}
	return out, nil
}
