package inference

import (
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/binary"
	"fmt"
)

// HPKE algorithm identifiers (RFC 9180 §7, draft-ietf-hpke-pq) this
// package implements.
const (
	// KEMX25519 is DHKEM(X25519, HKDF-SHA256).
	KEMX25519 uint16 = 0x0020
	// KEMMLKEM768X25519 is the hybrid ML-KEM-768 + X25519 KEM (X-Wing).
	KEMMLKEM768X25519 uint16 = 0x647a
	// KDFHKDFSHA256 is HKDF-SHA256.
	KDFHKDFSHA256 uint16 = 0x0001
	// AEADAES128GCM is AES-128-GCM.
	AEADAES128GCM uint16 = 0x0001
	// AEADChaCha20Poly1305 is ChaCha20Poly1305.
	AEADChaCha20Poly1305 uint16 = 0x0003
)

// SymmetricSuite is a KDF and AEAD pair a key configuration accepts.
type SymmetricSuite struct {
	KDF, AEAD uint16
}

// Suite is a full HPKE ciphersuite: what a client seals a request with.
type Suite struct {
	KEM, KDF, AEAD uint16
}

// String names the suite by its identifiers.
func (s Suite) String() string {
	return fmt.Sprintf("kem=0x%04x kdf=0x%04x aead=0x%04x", s.KEM, s.KDF, s.AEAD)
}

// KeyConfig is one HPKE key configuration of a gateway, encoded as an
// RFC 9458 §3 key configuration (docs/spec/inference.md §2).
type KeyConfig struct {
	KeyID     byte
	KEM       uint16
	PublicKey []byte // the KEM's serialized public key (Npk bytes)
	Suites    []SymmetricSuite
}

// kemInfo is what this package knows of a KEM.
type kemInfo struct {
	kem  hpke.KEM
	npk  int // public key length
	nenc int // encapsulated key length
}

func kemFor(id uint16) (kemInfo, bool) {
	switch id {
	case KEMX25519:
		return kemInfo{hpke.DHKEM(ecdh.X25519()), 32, 32}, true
	case KEMMLKEM768X25519:
		return kemInfo{hpke.MLKEM768X25519(), 1216, 1120}, true
	}
	return kemInfo{}, false
}

// aeadInfo is what this package knows of an AEAD: its HPKE
// implementation and its key and nonce lengths.
type aeadInfo struct {
	aead   hpke.AEAD
	nk, nn int
}

func aeadFor(id uint16) (aeadInfo, bool) {
	switch id {
	case AEADAES128GCM:
		return aeadInfo{hpke.AES128GCM(), 16, 12}, true
	case AEADChaCha20Poly1305:
		return aeadInfo{hpke.ChaCha20Poly1305(), 32, 12}, true
	}
	return aeadInfo{}, false
}

// tagSize is the authentication tag length of both AEADs (Nt).
const tagSize = 16

// supported reports whether this package implements s.
func supported(s Suite) bool {
	_, kok := kemFor(s.KEM)
	_, aok := aeadFor(s.AEAD)
	return kok && aok && s.KDF == KDFHKDFSHA256
}

// offers reports whether c accepts the symmetric part of s.
func (c *KeyConfig) offers(s Suite) bool {
	if c.KEM != s.KEM {
		return false
	}
	for _, ss := range c.Suites {
		if ss.KDF == s.KDF && ss.AEAD == s.AEAD {
			return true
		}
	}
	return false
}

// marshal encodes c as an RFC 9458 §3 key configuration.
func (c *KeyConfig) marshal() ([]byte, error) {
	k, ok := kemFor(c.KEM)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: key configuration %d: unknown KEM 0x%04x", ErrMalformed, c.KeyID, c.KEM)
	case len(c.PublicKey) != k.npk:
		return nil, fmt.Errorf("%w: key configuration %d: public key is %d bytes, KEM 0x%04x wants %d", ErrMalformed, c.KeyID, len(c.PublicKey), c.KEM, k.npk)
	case len(c.Suites) == 0 || len(c.Suites) > maxSuites:
		return nil, fmt.Errorf("%w: key configuration %d: %d symmetric suites, want 1 to %d", ErrMalformed, c.KeyID, len(c.Suites), maxSuites)
	}
	b := make([]byte, 0, 5+len(c.PublicKey)+4*len(c.Suites))
	b = append(b, c.KeyID)
	b = binary.BigEndian.AppendUint16(b, c.KEM)
	b = append(b, c.PublicKey...)
	b = binary.BigEndian.AppendUint16(b, uint16(4*len(c.Suites)))
	for _, s := range c.Suites {
		b = binary.BigEndian.AppendUint16(b, s.KDF)
		b = binary.BigEndian.AppendUint16(b, s.AEAD)
	}
	return b, nil
}

// maxSuites is the most symmetric suites a key configuration can list
// (a 16-bit length of 4-byte entries).
const maxSuites = 65532 / 4

// MarshalKeyConfigs encodes configurations as application/ohttp-keys: each
// RFC 9458 §3 key configuration preceded by its length as 2 bytes.
func MarshalKeyConfigs(cs []KeyConfig) ([]byte, error) {
	var out []byte
	for i := range cs {
		b, err := cs[i].marshal()
		if err != nil {
			return nil, err
		}
		if len(b) > 0xffff {
			return nil, fmt.Errorf("%w: key configuration %d is %d bytes", ErrMalformed, cs[i].KeyID, len(b))
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
		out = append(out, b...)
	}
	return out, nil
}

// ParseKeyConfigs decodes application/ohttp-keys. A configuration of a KEM
// this package does not implement is skipped, as RFC 9540 asks; one that
// does not parse, or input that is not a sequence of length-prefixed
// configurations, is ErrMalformed. The result may be empty.
func ParseKeyConfigs(b []byte) ([]KeyConfig, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: no key configurations", ErrMalformed)
	}
	var cs []KeyConfig
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: key configurations: truncated length", ErrMalformed)
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return nil, fmt.Errorf("%w: key configurations: a configuration of %d bytes is truncated", ErrMalformed, n)
		}
		c, known, err := parseKeyConfig(b[2 : 2+n])
		if err != nil {
			return nil, err
		}
		if known {
			cs = append(cs, c)
		}
		b = b[2+n:]
	}
	return cs, nil
}

// parseKeyConfig decodes one key configuration that fills b exactly;
// known is false for a KEM this package does not implement, whose public
// key length it cannot know.
func parseKeyConfig(b []byte) (c KeyConfig, known bool, err error) {
	if len(b) < 3 {
		return c, false, fmt.Errorf("%w: key configuration of %d bytes", ErrMalformed, len(b))
	}
	c.KeyID, c.KEM = b[0], binary.BigEndian.Uint16(b[1:3])
	k, ok := kemFor(c.KEM)
	if !ok {
		return c, false, nil
	}
	b = b[3:]
	if len(b) < k.npk+2 {
		return c, false, fmt.Errorf("%w: key configuration %d: truncated", ErrMalformed, c.KeyID)
	}
	c.PublicKey = append([]byte(nil), b[:k.npk]...)
	b = b[k.npk:]
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n == 0 || n%4 != 0 || n != len(b) {
		return c, false, fmt.Errorf("%w: key configuration %d: symmetric suites of %d bytes in %d", ErrMalformed, c.KeyID, n, len(b))
	}
	for ; len(b) > 0; b = b[4:] {
		c.Suites = append(c.Suites, SymmetricSuite{KDF: binary.BigEndian.Uint16(b), AEAD: binary.BigEndian.Uint16(b[2:])})
	}
	return c, true, nil
}
