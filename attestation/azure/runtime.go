package azure

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/kura-cc/kura/attestation"
)

// akKeyID is the kid of the vTPM attestation key in the runtime data's
// "keys" (the HCL also lists the endorsement key, "HCLEkPub").
const akKeyID = "HCLAkPub"

// Bounds on the attestation key: Azure's is RSA-2048 with exponent 65537.
const (
	minAKBits = 2048
	maxAKBits = 4096
)

// runtimeData is what kura reads from the HCL report's runtime data.
type runtimeData struct {
	ak       *rsa.PublicKey
	vmConfig map[string]any // "vm-configuration", nil when absent
	userData string         // "user-data", "" when absent
}

// maxRuntimeDepth bounds nesting in runtime data.
const maxRuntimeDepth = 8

// parseRuntimeData reads the runtime data JSON: an object whose "keys" is
// an array of JWKs, exactly one of them with kid "HCLAkPub", an RSA key;
// optionally "vm-configuration" (an object) and "user-data" (a string).
// Duplicate keys at any level, trailing data and nesting deeper than 8 are
// refused; other members are ignored.
func parseRuntimeData(data []byte) (*runtimeData, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: runtime data: %s", attestation.ErrMalformed, fmt.Sprintf(format, args...))
	}
	if err := checkJSON(data); err != nil {
		return nil, bad("%v", err)
	}
	var doc struct {
		Keys     []map[string]json.RawMessage `json:"keys"`
		VMConfig json.RawMessage              `json:"vm-configuration"`
		UserData *string                      `json:"user-data"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, bad("%v", err)
	}
	var ak map[string]json.RawMessage
	for i, k := range doc.Keys {
		var kid string
		if raw, ok := k["kid"]; ok {
			if err := json.Unmarshal(raw, &kid); err != nil {
				return nil, bad("keys[%d].kid is not a string", i)
			}
		}
		if kid != akKeyID {
			continue
		}
		if ak != nil {
			return nil, bad("two keys with kid %q", akKeyID)
		}
		ak = k
	}
	if ak == nil {
		return nil, bad("no key with kid %q in \"keys\"", akKeyID)
	}
	key, err := rsaJWK(ak)
	if err != nil {
		return nil, bad("%s: %v", akKeyID, err)
	}
	rd := &runtimeData{ak: key}
	if doc.UserData != nil {
		rd.userData = *doc.UserData
	}
	if len(doc.VMConfig) > 0 && string(doc.VMConfig) != "null" {
		dec := json.NewDecoder(bytes.NewReader(doc.VMConfig))
		dec.UseNumber()
		if err := dec.Decode(&rd.vmConfig); err != nil {
			return nil, bad("vm-configuration is not an object")
		}
	}
	return rd, nil
}

// rsaJWK reads an RSA public JWK (RFC 7518 §6.3.1): n and e base64url
// without padding and without leading zero octets.
func rsaJWK(k map[string]json.RawMessage) (*rsa.PublicKey, error) {
	str := func(name string) (string, error) {
		var s string
		if err := json.Unmarshal(k[name], &s); err != nil {
			return "", fmt.Errorf("%q is missing or not a string", name)
		}
		return s, nil
	}
	kty, err := str("kty")
	if err != nil {
		return nil, err
	}
	if kty != "RSA" {
		return nil, fmt.Errorf("kty %q, want \"RSA\"", kty)
	}
	num := func(name string, maxBytes int) (*big.Int, error) {
		s, err := str(name)
		if err != nil {
			return nil, err
		}
		if base64.RawURLEncoding.DecodedLen(len(s)) > maxBytes {
			return nil, fmt.Errorf("%q is longer than %d bytes", name, maxBytes)
		}
		b, err := base64.RawURLEncoding.Strict().DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not base64url without padding", name)
		}
		if len(b) == 0 || b[0] == 0 {
			return nil, fmt.Errorf("%q is empty or has a leading zero octet", name)
		}
		return new(big.Int).SetBytes(b), nil
	}
	n, err := num("n", maxAKBits/8)
	if err != nil {
		return nil, err
	}
	e, err := num("e", 4)
	if err != nil {
		return nil, err
	}
	switch {
	case n.BitLen() < minAKBits:
		return nil, fmt.Errorf("modulus of %d bits, want %d to %d", n.BitLen(), minAKBits, maxAKBits)
	case n.Bit(0) == 0:
		return nil, errors.New("even modulus")
	case e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0:
		return nil, fmt.Errorf("exponent %d, want an odd number from 3 to 2^31-1", e.Int64())
	}
	return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
}

// checkJSON reports whether data is one JSON object with no duplicate
// member names at any level, nesting at most maxRuntimeDepth, and nothing
// after it but white space.
func checkJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("not a JSON object")
	}
	if err := checkValue(dec, '{', 1); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// checkValue walks the members of an object or the elements of an array
// whose opening delimiter has been read.
func checkValue(dec *json.Decoder, open json.Delim, depth int) error {
	if depth > maxRuntimeDepth {
		return errors.New("nested too deeply")
	}
	seen := map[string]bool{}
	for dec.More() {
		if open == '{' {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string)
			if seen[k] {
				return fmt.Errorf("duplicate member %q", k)
			}
			seen[k] = true
		}
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			if err := checkValue(dec, d, depth+1); err != nil {
				return err
			}
		}
	}
	_, err := dec.Token() // the closing delimiter
	return err
}
