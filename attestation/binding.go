package attestation

import (
	"bytes"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Limits on runtime data fields.
const (
	MinNonceSize     = 16
	MaxNonceSize     = 64
	MaxPublicKeySize = 8 << 10
	MaxContextSize   = 8 << 10
)

// ReportDataSize is the size of the hardware report_data field on SNP and TDX.
const ReportDataSize = 64

// runtimeDataTag separates kura's runtime-data hash from any other use of SHA-512.
const runtimeDataTag = "kura/runtime-data/v1"

// RuntimeData is the data an attester binds into the hardware report_data:
// the verifier's nonce, the attester's public key (usually a JWK serialised
// as JSON, whose private half never leaves the TEE), and an optional
// caller-defined context such as a manifest hash and run id.
type RuntimeData struct {
	Nonce     []byte `json:"nonce"`
	PublicKey []byte `json:"public_key,omitempty"`
	Context   []byte `json:"context,omitempty"`
	// Devices are the other devices' evidence a composite bundle carries
	// (§2.2), bound by their digests.
	Devices []Device `json:"devices,omitempty"`
}

// Empty reports whether no runtime data was bound: evidence captured outside
// kura (raw vendor artifacts) has none, and its binding cannot be checked.
func (r *RuntimeData) Empty() bool { return len(r.Nonce) == 0 }

// Check reports whether the runtime data fields are within their limits.
// Runtime data is either empty or carries a nonce.
func (r *RuntimeData) Check() error {
	switch {
	case len(r.Nonce) == 0 && (len(r.PublicKey) > 0 || len(r.Context) > 0):
		return fmt.Errorf("%w: runtime data has a public key or context but no nonce", ErrMalformed)
	case len(r.Nonce) != 0 && (len(r.Nonce) < MinNonceSize || len(r.Nonce) > MaxNonceSize):
		return fmt.Errorf("%w: nonce is %d bytes, want %d to %d", ErrMalformed, len(r.Nonce), MinNonceSize, MaxNonceSize)
	case len(r.PublicKey) > MaxPublicKeySize:
		return fmt.Errorf("%w: public key is %d bytes, limit is %d", ErrMalformed, len(r.PublicKey), MaxPublicKeySize)
	case len(r.Context) > MaxContextSize:
		return fmt.Errorf("%w: context is %d bytes, limit is %d", ErrMalformed, len(r.Context), MaxContextSize)
	}
	return r.checkDevices()
}

// Hash returns SHA-512 over the tag and the length-prefixed public key and
// context, and, for a composite bundle, the devices' digest
// (docs/spec/attestation.md §3).
func (r *RuntimeData) Hash() [sha512.Size]byte {
	h := sha512.New()
	h.Write([]byte(runtimeDataTag))
	var n [4]byte
	fields := [][]byte{r.PublicKey, r.Context}
	if len(r.Devices) > 0 {
		fields = append(fields, r.devicesDigest())
	}
	for _, field := range fields {
		binary.BigEndian.PutUint32(n[:], uint32(len(field)))
		h.Write(n[:])
		h.Write(field)
	}
	var out [sha512.Size]byte
	h.Sum(out[:0])
	return out
}

// ReportData returns the value the hardware report_data must hold:
// SHA-512(nonce ‖ Hash()).
func (r *RuntimeData) ReportData() [ReportDataSize]byte {
	inner := r.Hash()
	h := sha512.New()
	h.Write(r.Nonce)
	h.Write(inner[:])
	var out [ReportDataSize]byte
	h.Sum(out[:0])
	return out
}

// Binding names the rule by which an attester binds runtime data into
// report_data (docs/spec/attestation.md §3).
type Binding string

// The binding rules kura verifies.
const (
	// BindingKura is kura's own rule: report_data = SHA-512(nonce ‖
	// Hash()). It is the empty string, so bundles without a "binding"
	// field use it.
	BindingKura Binding = ""
	// BindingCoCoKBS01 is the rule of Confidential Containers attesters
	// speaking KBS protocol 0.1.x: report_data = SHA-384 of the compact,
	// key-sorted JSON {"nonce": N, "tee-pubkey": K}, zero-padded to 64
	// bytes (see CoCoRuntimeData).
	BindingCoCoKBS01 Binding = "coco-kbs-0.1-sha384"
	// BindingCoCoKBS04 is the rule of Confidential Containers attesters
	// speaking KBS protocol 0.4.x, whose runtime data also names the
	// additional (device) evidence, here always none:
	// {"additional-evidence": "", "nonce": N, "tee-pubkey": K}.
	BindingCoCoKBS04 Binding = "coco-kbs-0.4-sha384"
)

// coCoDigestSize is the size of the digest at the start of a CoCo report_data;
// zero bytes follow it.
const coCoDigestSize = sha512.Size384

// Check reports whether b names a binding rule kura knows.
func (b Binding) Check() error {
	switch b {
	case BindingKura, BindingCoCoKBS01, BindingCoCoKBS04:
		return nil
	}
	return fmt.Errorf("%w: unknown binding %q (want absent, %q or %q)", ErrMalformed, string(b), BindingCoCoKBS01, BindingCoCoKBS04)
}

// CoCo reports whether b is one of the Confidential Containers rules.
func (b Binding) CoCo() bool { return b == BindingCoCoKBS01 || b == BindingCoCoKBS04 }

// Rule describes the rule in one line, for check details.
func (b Binding) Rule() string {
	switch b {
	case BindingKura:
		return "report_data = SHA-512(nonce ‖ runtime data hash)"
	case BindingCoCoKBS01:
		return `report_data = SHA-384({"nonce","tee-pubkey"} JSON) ‖ 16 zero bytes (CoCo KBS 0.1)`
	case BindingCoCoKBS04:
		return `report_data = SHA-384({"additional-evidence","nonce","tee-pubkey"} JSON) ‖ 16 zero bytes (CoCo KBS 0.4)`
	}
	return "unknown binding " + strconv.Quote(string(b))
}

// checkFor reports whether the runtime data can be bound under rule b. A
// CoCo rule needs a nonce and a public key in canonical form (CoCoRuntimeData
// embeds it verbatim) and has no place for a context.
func (r *RuntimeData) checkFor(b Binding) error {
	if err := r.Check(); err != nil {
		return err
	}
	if !b.CoCo() {
		return nil
	}
	switch {
	case r.Empty():
		return fmt.Errorf("%w: binding %s needs runtime data with a nonce", ErrMalformed, b)
	case len(r.PublicKey) == 0:
		return fmt.Errorf("%w: binding %s needs a public key (the tee-pubkey JWK)", ErrMalformed, b)
	case len(r.Context) != 0:
		return fmt.Errorf("%w: binding %s has no place for a context", ErrMalformed, b)
	case len(r.Devices) != 0:
		return fmt.Errorf("%w: binding %s has no place for kura's devices (a composite bundle binds them under kura's rule)", ErrMalformed, b)
	}
	canon, err := canonicalJSONObject(r.PublicKey)
	if err != nil {
		return fmt.Errorf("%w: binding %s: public key: %v", ErrMalformed, b, err)
	}
	if !bytes.Equal(canon, r.PublicKey) {
		return fmt.Errorf("%w: binding %s: public key is not in canonical form (compact, keys sorted)", ErrMalformed, b)
	}
	return nil
}

// CoCoRuntimeData returns the JSON document a Confidential Containers
// attester hashes into report_data under rule b: the nonce string is the
// standard base64 (padded) of Nonce — the challenge exactly as a KBS sends
// it — and "tee-pubkey" is PublicKey verbatim, which must be the canonical
// (compact, key-sorted) JWK. Keys are sorted and nothing is indented, as
// serde_json serialises a JSON value and as RFC 8785 does for these
// ASCII-only documents.
func (r *RuntimeData) CoCoRuntimeData(b Binding) ([]byte, error) {
	if !b.CoCo() {
		return nil, fmt.Errorf("%w: binding %q is not a CoCo rule", ErrMalformed, string(b))
	}
	if err := r.checkFor(b); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	if b == BindingCoCoKBS04 {
		buf.WriteString(`"additional-evidence":"",`)
	}
	buf.WriteString(`"nonce":"`)
	buf.WriteString(base64.StdEncoding.EncodeToString(r.Nonce)) // A-Z a-z 0-9 + / =: nothing to escape
	buf.WriteString(`","tee-pubkey":`)
	buf.Write(r.PublicKey)
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// ReportDataFor returns the value the hardware report_data must hold under
// rule b: ReportData() for BindingKura; for a CoCo rule, SHA-384 of
// CoCoRuntimeData followed by 16 zero bytes.
func (r *RuntimeData) ReportDataFor(b Binding) ([ReportDataSize]byte, error) {
	var out [ReportDataSize]byte
	switch {
	case b == BindingKura:
		if err := r.Check(); err != nil {
			return out, err
		}
		return r.ReportData(), nil
	case b.CoCo():
		doc, err := r.CoCoRuntimeData(b)
		if err != nil {
			return out, err
		}
		sum := sha512.Sum384(doc)
		copy(out[:coCoDigestSize], sum[:])
		return out, nil
	}
	return out, b.Check()
}

// maxJSONDepth bounds nesting in a canonicalised public key.
const maxJSONDepth = 8

// canonicalJSONObject re-encodes a JSON object compactly with its keys
// sorted at every level. It accepts only what encodes identically under
// serde_json, RFC 8785 and Go: printable ASCII, no numbers, unique keys.
func canonicalJSONObject(data []byte) ([]byte, error) {
	for _, c := range data {
		if c < 0x20 || c > 0x7e {
			return nil, fmt.Errorf("byte 0x%02x: only printable ASCII is accepted", c)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	v, err := decodeCanonical(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decodeCanonical reads one JSON value, refusing numbers, duplicate keys
// and nesting deeper than maxJSONDepth.
func decodeCanonical(dec *json.Decoder, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("duplicate key %q", k)
				}
				if m[k], err = decodeCanonical(dec, depth+1); err != nil {
					return nil, err
				}
			}
			_, err := dec.Token() // '}'
			return m, err
		case '[':
			l := []any{}
			for dec.More() {
				v, err := decodeCanonical(dec, depth+1)
				if err != nil {
					return nil, err
				}
				l = append(l, v)
			}
			_, err := dec.Token() // ']'
			return l, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case float64, json.Number:
		return nil, errors.New("numbers are not accepted")
	default: // string, bool, nil
		return t, nil
	}
}
