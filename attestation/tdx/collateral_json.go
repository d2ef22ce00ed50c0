package tdx

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/kura-cc/kura/attestation"
)

// MaxCollateralJSONSize bounds the input of ParseCollateralJSON: the hex of
// a processor CA PCK CRL of a few hundred KiB fits with room to spare.
const MaxCollateralJSONSize = 4 << 20

// intelSignatureSize is the size of the raw ECDSA P-256 signature (r ‖ s)
// Intel puts on TCB info and QE identity.
const intelSignatureSize = 64

// The members of the one-object collateral JSON (docs/spec/attestation.md
// §10.1), in the order dcap-qvl's QuoteCollateralV3 declares them.
const (
	cjPCKCRLIssuerChain     = "pck_crl_issuer_chain"
	cjRootCACRL             = "root_ca_crl"
	cjPCKCRL                = "pck_crl"
	cjTCBInfoIssuerChain    = "tcb_info_issuer_chain"
	cjTCBInfo               = "tcb_info"
	cjTCBInfoSignature      = "tcb_info_signature"
	cjQEIdentityIssuerChain = "qe_identity_issuer_chain"
	cjQEIdentity            = "qe_identity"
	cjQEIdentitySignature   = "qe_identity_signature"
	cjPCKCertificateChain   = "pck_certificate_chain" // newer dcap-qvl; optional, not used
)

var collateralJSONRequired = []string{
	cjPCKCRLIssuerChain, cjRootCACRL, cjPCKCRL,
	cjTCBInfoIssuerChain, cjTCBInfo, cjTCBInfoSignature,
	cjQEIdentityIssuerChain, cjQEIdentity, cjQEIdentitySignature,
}

// ParseCollateralJSON converts Intel collateral in the one-object JSON form
// that dcap-qvl (QuoteCollateralV3), Phala's dstack and Automata's tools
// ship into kura's collateral, rebuilding the Intel PCS response bodies the
// Verifier reads: TCBInfo becomes {"tcbInfo":<tcb_info>,"signature":"<hex>"}
// and QEIdentity {"enclaveIdentity":<qe_identity>,"signature":"<hex>"}, with
// tcb_info and qe_identity carried byte for byte, since Intel's signature
// covers exactly those bytes.
//
// The input is at most MaxCollateralJSONSize bytes: one JSON object with all
// nine members of QuoteCollateralV3. The issuer chains are PEM strings;
// tcb_info and qe_identity are strings holding the signed JSON object, with
// no surrounding whitespace; the signatures (64 bytes, r ‖ s) and the CRLs
// (DER, or PEM which is converted to DER) are hexadecimal strings (either
// case, no prefix, no whitespace) or arrays of integers 0 to 255 (serde_json's
// form of dcap-qvl's byte fields). pck_certificate_chain, which newer
// dcap-qvl adds, is accepted and ignored: kura verifies the PCK chain the
// quote carries. Other members, duplicate members, null values and trailing
// data are refused, as kura's bundles refuse unknown fields (dcap-qvl
// ignores unknown members). Errors wrap attestation.ErrMalformed. Nothing is
// verified here.
func ParseCollateralJSON(data []byte) (*attestation.Collateral, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: tdx collateral json: %s", attestation.ErrMalformed, fmt.Sprintf(format, args...))
	}
	if len(data) > MaxCollateralJSONSize {
		return nil, bad("%d bytes, limit is %d", len(data), MaxCollateralJSONSize)
	}
	m, err := jsonObject(data)
	if err != nil {
		return nil, bad("%v", err)
	}
	var unknown []string
	for k := range m {
		if !slices.Contains(collateralJSONRequired, k) && k != cjPCKCertificateChain {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, bad("unknown member %s", strings.Join(unknown, ", "))
	}
	for _, k := range collateralJSONRequired {
		if _, ok := m[k]; !ok {
			return nil, bad("missing member %q", k)
		}
	}
	if raw, ok := m[cjPCKCertificateChain]; ok && string(raw) != "null" {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, bad("%s is not a string", cjPCKCertificateChain)
		}
	}

	str := func(k string) (string, error) {
		var s string
		if err := json.Unmarshal(m[k], &s); err != nil || string(m[k]) == "null" {
			return "", bad("%s is not a string", k)
		}
		if s == "" {
			return "", bad("%s is empty", k)
		}
		return s, nil
	}
	chain := func(k string) ([]byte, error) {
		s, err := str(k)
		if err != nil {
			return nil, err
		}
		if !strings.Contains(s, "-----BEGIN CERTIFICATE-----") {
			return nil, bad("%s is not a PEM certificate chain", k)
		}
		return []byte(s), nil
	}
	signedJSON := func(k string) (string, error) {
		s, err := str(k)
		if err != nil {
			return "", err
		}
		if s[0] != '{' || s[len(s)-1] != '}' || !json.Valid([]byte(s)) {
			return "", bad("%s is not a JSON object without surrounding whitespace", k)
		}
		return s, nil
	}
	bin := func(k string, limit int) ([]byte, error) {
		b, err := hexOrByteArray(m[k], limit)
		if err != nil {
			return nil, bad("%s: %v", k, err)
		}
		if len(b) == 0 {
			return nil, bad("%s is empty", k)
		}
		return b, nil
	}
	crl := func(k string) ([]byte, error) {
		b, err := bin(k, maxCollateralFileSize)
		if err != nil {
			return nil, err
		}
		if bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("-----BEGIN")) {
			block, rest := pem.Decode(b)
			if block == nil || block.Type != "X509 CRL" || len(bytes.TrimSpace(rest)) != 0 {
				return nil, bad("%s is PEM but not one X509 CRL", k)
			}
			return block.Bytes, nil
		}
		return b, nil
	}
	sig := func(k string) (string, error) {
		b, err := bin(k, intelSignatureSize)
		if err != nil {
			return "", err
		}
		if len(b) != intelSignatureSize {
			return "", bad("%s is %d bytes, want %d", k, len(b), intelSignatureSize)
		}
		return hex.EncodeToString(b), nil
	}

	col := new(attestation.Collateral)
	if col.TCBInfoIssuerChain, err = chain(cjTCBInfoIssuerChain); err != nil {
		return nil, err
	}
	if col.QEIdentityIssuerChain, err = chain(cjQEIdentityIssuerChain); err != nil {
		return nil, err
	}
	if col.PCKCRLIssuerChain, err = chain(cjPCKCRLIssuerChain); err != nil {
		return nil, err
	}
	if col.PCKCRL, err = crl(cjPCKCRL); err != nil {
		return nil, err
	}
	if col.RootCACRL, err = crl(cjRootCACRL); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		body, sig, member string
		out               *[]byte
	}{
		{cjTCBInfo, cjTCBInfoSignature, "tcbInfo", &col.TCBInfo},
		{cjQEIdentity, cjQEIdentitySignature, "enclaveIdentity", &col.QEIdentity},
	} {
		body, err := signedJSON(p.body)
		if err != nil {
			return nil, err
		}
		s, err := sig(p.sig)
		if err != nil {
			return nil, err
		}
		*p.out = []byte(`{"` + p.member + `":` + body + `,"signature":"` + s + `"}`)
	}
	return col, nil
}

// MarshalCollateralJSON renders collateral in the one-object JSON form
// ParseCollateralJSON reads (dcap-qvl's QuoteCollateralV3 with hexadecimal
// byte fields, as dstack ships it): the signed members of the PCS bodies
// verbatim, the signatures and DER CRLs as lowercase hex, the issuer chains
// as PEM. Every field of col must be present.
func MarshalCollateralJSON(col *attestation.Collateral) ([]byte, error) {
	if col == nil {
		return nil, fmt.Errorf("%w: tdx collateral json: no collateral", attestation.ErrMalformed)
	}
	for _, f := range collateralFiles {
		if len(*f.field(col)) == 0 {
			return nil, fmt.Errorf("%w: tdx collateral json: %s is missing", attestation.ErrMalformed, f.name)
		}
	}
	tcb, tcbSig, err := signedBody("tcb info", "tcbInfo", col.TCBInfo)
	if err != nil {
		return nil, err
	}
	qe, qeSig, err := signedBody("qe identity", "enclaveIdentity", col.QEIdentity)
	if err != nil {
		return nil, err
	}
	out := struct {
		PCKCRLIssuerChain     string `json:"pck_crl_issuer_chain"`
		RootCACRL             string `json:"root_ca_crl"`
		PCKCRL                string `json:"pck_crl"`
		TCBInfoIssuerChain    string `json:"tcb_info_issuer_chain"`
		TCBInfo               string `json:"tcb_info"`
		TCBInfoSignature      string `json:"tcb_info_signature"`
		QEIdentityIssuerChain string `json:"qe_identity_issuer_chain"`
		QEIdentity            string `json:"qe_identity"`
		QEIdentitySignature   string `json:"qe_identity_signature"`
	}{
		PCKCRLIssuerChain:     string(decodeIssuerChain(col.PCKCRLIssuerChain)),
		RootCACRL:             hex.EncodeToString(col.RootCACRL),
		PCKCRL:                hex.EncodeToString(col.PCKCRL),
		TCBInfoIssuerChain:    string(decodeIssuerChain(col.TCBInfoIssuerChain)),
		TCBInfo:               string(tcb),
		TCBInfoSignature:      hex.EncodeToString(tcbSig),
		QEIdentityIssuerChain: string(decodeIssuerChain(col.QEIdentityIssuerChain)),
		QEIdentity:            string(qe),
		QEIdentitySignature:   hex.EncodeToString(qeSig),
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("tdx collateral json: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// hexOrByteArray decodes a JSON string of hexadecimal digits (even length,
// either case, nothing else) or a JSON array of integers 0 to 255, of at
// most limit bytes.
func hexOrByteArray(raw json.RawMessage, limit int) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var nums []uint8Num
		if err := json.Unmarshal(raw, &nums); err != nil {
			return nil, fmt.Errorf("not an array of bytes")
		}
		if len(nums) > limit {
			return nil, fmt.Errorf("more than %d bytes", limit)
		}
		out := make([]byte, len(nums))
		for i, n := range nums {
			out[i] = byte(n)
		}
		return out, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || string(raw) == "null" {
		return nil, fmt.Errorf("not a hex string or an array of bytes")
	}
	if len(s)%2 != 0 || !isHex([]byte(s)) && s != "" {
		return nil, fmt.Errorf("not an even-length string of hex digits")
	}
	if len(s)/2 > limit {
		return nil, fmt.Errorf("more than %d bytes", limit)
	}
	return hex.DecodeString(s)
}

// uint8Num is a JSON integer 0 to 255 written as digits only.
type uint8Num uint8

// UnmarshalJSON reads digits only, refusing signs, fractions, exponents
// and leading zeros.
func (n *uint8Num) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || len(b) > 3 || (len(b) > 1 && b[0] == '0') {
		return fmt.Errorf("not a byte")
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return fmt.Errorf("not a byte")
		}
		v = v*10 + int(c-'0')
	}
	if v > 255 {
		return fmt.Errorf("not a byte")
	}
	*n = uint8Num(v)
	return nil
}

// jsonObject decodes one JSON object into its members, refusing anything
// else, duplicate members and trailing data.
func jsonObject(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("not a JSON object")
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := kt.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("member %q: %v", k, err)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("duplicate member %q", k)
		}
		m[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after the JSON object")
	}
	return m, nil
}
