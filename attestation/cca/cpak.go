package cca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// CPAK is a trusted CCA platform attestation key: the key whose signature
// on a platform token kura believes.
type CPAK struct {
	// Key is the public key, ECDSA on P-256, P-384 or P-521.
	Key *ecdsa.PublicKey
	// InstanceID, when set, is the platform instance id (33-byte UEID)
	// the key belongs to: tokens naming another instance are not checked
	// with it.
	InstanceID []byte
	// ImplementationID, when set, is the platform implementation id (32
	// bytes) the key belongs to, likewise.
	ImplementationID []byte
	// Name says where the key came from, for check details and logs.
	Name string
}

// Thumbprint is the hex SHA-256 of the key's PKIX DER: short enough for a
// check detail, unique enough to name the key.
func (c CPAK) Thumbprint() string {
	der, err := x509.MarshalPKIXPublicKey(c.Key)
	if err != nil {
		return "?"
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8])
}

// matches reports whether the key may be used for a token naming the
// platform instance and implementation ids.
func (c CPAK) matches(instanceID, implementationID []byte) bool {
	return (len(c.InstanceID) == 0 || bytes.Equal(c.InstanceID, instanceID)) &&
		(len(c.ImplementationID) == 0 || bytes.Equal(c.ImplementationID, implementationID))
}

// maxCPAKFile bounds a CPAK file.
const maxCPAKFile = 1 << 20

// LoadCPAKs reads the CPAKs in a file (see ParseCPAKs).
func LoadCPAKs(path string) ([]CPAK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cca cpak: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCPAKFile+1))
	if err != nil {
		return nil, fmt.Errorf("cca cpak %s: %w", path, err)
	}
	if len(data) > maxCPAKFile {
		return nil, fmt.Errorf("cca cpak %s: larger than %d bytes", path, maxCPAKFile)
	}
	// Keys are named by the file's base name: the name reaches check
	// details, which a verifier returns to clients, and the directory is
	// the server's business.
	keys, err := ParseCPAKs(data, filepath.Base(path))
	if err != nil {
		return nil, fmt.Errorf("cca cpak %s: %w", path, err)
	}
	return keys, nil
}

// ParseCPAKs reads trusted platform attestation keys from data, in one of
// three forms:
//
//   - PEM: one or more PUBLIC KEY blocks (PKIX), tied to no instance;
//   - a JWK (kty EC) or a JWK set ({"keys": [...]}), tied to no instance;
//   - a CoMID in JSON (as Veraison's tools write it) whose
//     attester-verification-keys triples carry pkix-base64-key keys: each
//     key is tied to its environment's instance id (type ueid) and class
//     id (the implementation id), when these are given.
//
// name (a file name, say) labels the keys.
func ParseCPAKs(data []byte, name string) ([]CPAK, error) {
	trimmed := bytes.TrimSpace(data)
	var keys []CPAK
	var err error
	switch {
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		keys, err = parsePEMKeys(trimmed, name)
	case bytes.HasPrefix(trimmed, []byte("{")):
		keys, err = parseJSONKeys(trimmed, name)
	default:
		return nil, errors.New("not a PEM public key, a JWK or a CoMID (JSON)")
	}
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("no key found")
	}
	return keys, nil
}

func parsePEMKeys(data []byte, name string) ([]CPAK, error) {
	var keys []CPAK
	for rest := data; len(bytes.TrimSpace(rest)) > 0; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("data after the last PEM block")
		}
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("PEM block %q, want PUBLIC KEY", block.Type)
		}
		k, err := parsePKIX(block.Bytes)
		if err != nil {
			return nil, err
		}
		keys = append(keys, CPAK{Key: k, Name: fmt.Sprintf("%s#%d", name, len(keys))})
	}
	return keys, nil
}

func parsePKIX(der []byte) (*ecdsa.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, err
	}
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%T key, want ECDSA", pub)
	}
	if _, err := k.ECDH(); err != nil { // on a curve crypto/ecdh knows: P-256, P-384, P-521
		return nil, fmt.Errorf("ECDSA key: %v", err)
	}
	return k, nil
}

// jwk is the part of an EC JWK (RFC 7517, RFC 7518 §6.2) kura reads.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
	Kid string `json:"kid"`
}

func parseJSONKeys(data []byte, name string) ([]CPAK, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, err
	}
	switch {
	case probe["kty"] != nil:
		var k jwk
		if err := json.Unmarshal(data, &k); err != nil {
			return nil, err
		}
		c, err := k.cpak(name)
		if err != nil {
			return nil, err
		}
		return []CPAK{c}, nil
	case probe["keys"] != nil:
		var set struct {
			Keys []jwk `json:"keys"`
		}
		if err := json.Unmarshal(data, &set); err != nil {
			return nil, err
		}
		var keys []CPAK
		for i, k := range set.Keys {
			c, err := k.cpak(fmt.Sprintf("%s#%d", name, i))
			if err != nil {
				return nil, fmt.Errorf("keys[%d]: %w", i, err)
			}
			keys = append(keys, c)
		}
		return keys, nil
	case probe["triples"] != nil:
		return parseCoMID(data, name)
	}
	return nil, errors.New("JSON is neither a JWK, a JWK set nor a CoMID")
}

func (k jwk) cpak(name string) (CPAK, error) {
	if k.Kty != "EC" {
		return CPAK{}, fmt.Errorf("JWK kty %q, want EC", k.Kty)
	}
	if k.D != "" {
		return CPAK{}, errors.New("JWK holds a private key; give the public key only")
	}
	var curve elliptic.Curve
	switch k.Crv {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	case "P-521":
		curve = elliptic.P521()
	default:
		return CPAK{}, fmt.Errorf("JWK crv %q, want P-256, P-384 or P-521", k.Crv)
	}
	size := (curve.Params().BitSize + 7) / 8
	x, errX := base64.RawURLEncoding.DecodeString(k.X)
	y, errY := base64.RawURLEncoding.DecodeString(k.Y)
	if errX != nil || errY != nil || len(x) != size || len(y) != size {
		return CPAK{}, fmt.Errorf("JWK x and y must be %d bytes, base64url without padding", size)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
	if err != nil {
		return CPAK{}, fmt.Errorf("JWK: %v", err)
	}
	if k.Kid != "" {
		name += " (kid " + k.Kid + ")"
	}
	return CPAK{Key: pub, Name: name}, nil
}

// comid is the part of a CoMID in JSON (the form of Veraison's cocli and
// corim libraries) that carries attester verification keys.
type comid struct {
	Triples struct {
		AttesterVerificationKeys []struct {
			Environment struct {
				Class    *comidClass     `json:"class"`
				Instance *comidTypedVal  `json:"instance"`
				Group    json.RawMessage `json:"group"`
			} `json:"environment"`
			VerificationKeys []comidTypedVal `json:"verification-keys"`
		} `json:"attester-verification-keys"`
	} `json:"triples"`
}

type comidClass struct {
	ID     *comidTypedVal  `json:"id"`
	Vendor json.RawMessage `json:"vendor"`
	Model  json.RawMessage `json:"model"`
	Layer  json.RawMessage `json:"layer"`
	Index  json.RawMessage `json:"index"`
}

type comidTypedVal struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

func parseCoMID(data []byte, name string) ([]CPAK, error) {
	var c comid
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("CoMID: %w", err)
	}
	var keys []CPAK
	for i, avk := range c.Triples.AttesterVerificationKeys {
		env := avk.Environment
		where := fmt.Sprintf("CoMID attester-verification-keys[%d]", i)
		if env.Group != nil {
			return nil, fmt.Errorf("%s: environment group is not supported", where)
		}
		var implID, instID []byte
		if cl := env.Class; cl != nil {
			// Vendor and model name the platform but are not in the
			// token; layer and index have no meaning for CCA. Refuse
			// them rather than drop a constraint silently.
			if cl.Vendor != nil || cl.Model != nil || cl.Layer != nil || cl.Index != nil {
				return nil, fmt.Errorf("%s: only a class id can tie a key to a platform (vendor, model, layer and index are not in CCA tokens)", where)
			}
			if cl.ID != nil {
				if cl.ID.Type != "bytes" && cl.ID.Type != "psa.impl-id" {
					return nil, fmt.Errorf("%s: class id type %q, want bytes or psa.impl-id", where, cl.ID.Type)
				}
				b, err := base64.StdEncoding.DecodeString(cl.ID.Value)
				if err != nil || len(b) != implementationIDSize {
					return nil, fmt.Errorf("%s: class id must be %d bytes, base64", where, implementationIDSize)
				}
				implID = b
			}
		}
		if in := env.Instance; in != nil {
			if in.Type != "ueid" && in.Type != "bytes" {
				return nil, fmt.Errorf("%s: instance type %q, want ueid", where, in.Type)
			}
			b, err := base64.StdEncoding.DecodeString(in.Value)
			if err != nil || len(b) != instanceIDSize {
				return nil, fmt.Errorf("%s: instance id must be %d bytes, base64", where, instanceIDSize)
			}
			instID = b
		}
		for j, vk := range avk.VerificationKeys {
			if vk.Type != "pkix-base64-key" {
				return nil, fmt.Errorf("%s: verification key type %q, want pkix-base64-key", where, vk.Type)
			}
			k, err := parsePKIXBase64(vk.Value)
			if err != nil {
				return nil, fmt.Errorf("%s: verification key %d: %w", where, j, err)
			}
			keys = append(keys, CPAK{Key: k, InstanceID: instID, ImplementationID: implID, Name: fmt.Sprintf("%s#%d.%d", name, i, j)})
		}
	}
	return keys, nil
}

// parsePKIXBase64 reads a pkix-base64-key: PEM, or the bare base64 of the
// DER.
func parsePKIXBase64(s string) (*ecdsa.PublicKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		block, rest := pem.Decode([]byte(s))
		if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
			return nil, errors.New("want one PEM PUBLIC KEY block")
		}
		return parsePKIX(block.Bytes)
	}
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not PEM nor base64: %v", err)
	}
	return parsePKIX(der)
}
