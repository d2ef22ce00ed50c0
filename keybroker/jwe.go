package keybroker

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// recipient is a TEE public key prepared for encryption, once per token:
// EC and X25519 keys for ECDH-ES+A256KW, RSA keys for RSA-OAEP-256.
type recipient struct {
	ecdh *ecdh.PublicKey
	rsa  *rsa.PublicKey
}

// parseRecipient parses the tee-pubkey JWK and checks it is a key kura can
// encrypt to: EC P-256/P-384/P-521, OKP X25519, or RSA of at least 2048 bits.
func parseRecipient(data []byte) (*recipient, error) {
	k, err := jwk.ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("tee-pubkey is not a JWK: %w", err)
	}
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		return nil, fmt.Errorf("tee-pubkey: %w", err)
	}
	switch pub := raw.(type) {
	case *ecdsa.PublicKey:
		e, err := pub.ECDH()
		if err != nil {
			return nil, fmt.Errorf("tee-pubkey: %w", err)
		}
		return &recipient{ecdh: e}, nil
	case *ecdh.PublicKey:
		if pub.Curve() != ecdh.X25519() {
			return nil, errors.New("tee-pubkey: OKP keys must be X25519")
		}
		return &recipient{ecdh: pub}, nil
	case *rsa.PublicKey:
		if pub.Size() < 256 {
			return nil, errors.New("tee-pubkey RSA key is shorter than 2048 bits")
		}
		return &recipient{rsa: pub}, nil
	}
	return nil, fmt.Errorf("tee-pubkey key type %s: want EC, OKP (X25519) or RSA", k.KeyType())
}

var b64 = base64.RawURLEncoding

// encrypt returns value as a flattened JSON JWE (RFC 7516 §7.2.2) to the
// recipient: ECDH-ES+A256KW with A256GCM (RFC 7518 §4.6, §5.3) for EC and
// X25519 keys, RSA-OAEP-256 with A256GCM (RFC 7518 §4.3) for RSA keys.
// Every header parameter is in the protected header, which the content
// encryption authenticates; there is no shared or per-recipient unprotected
// header, so the headers are disjoint as RFC 7516 §7.2.1 requires.
//
// Each call makes a fresh content key and, for EC and X25519 keys, a fresh
// ephemeral key pair: no two releases share key material.
func (r *recipient) encrypt(value []byte) ([]byte, error) {
	var cek [32]byte
	rand.Read(cek[:])
	defer clear(cek[:])
	var (
		header  []byte
		wrapped []byte
	)
	if r.rsa != nil {
		var err error
		if wrapped, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, r.rsa, cek[:], nil); err != nil {
			return nil, fmt.Errorf("rsa-oaep: %w", err)
		}
		header = []byte(`{"alg":"RSA-OAEP-256","enc":"A256GCM"}`)
	} else {
		eph, err := r.ecdh.Curve().GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		z, err := eph.ECDH(r.ecdh)
		if err != nil {
			return nil, fmt.Errorf("ecdh: %w", err)
		}
		const alg = "ECDH-ES+A256KW"
		kek := concatKDF(z, alg, 256)
		clear(z)
		wrapped, err = aesKeyWrap(kek, cek[:])
		clear(kek)
		if err != nil {
			return nil, err
		}
		header = append(make([]byte, 0, 200), `{"alg":"`+alg+`","enc":"A256GCM","epk":`...)
		if header, err = appendEPK(header, eph.PublicKey()); err != nil {
			return nil, err
		}
		header = append(header, '}')
	}
	block, err := aes.NewCipher(cek[:])
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	var iv [12]byte
	rand.Read(iv[:])
	// Every member is base64url, which needs no JSON escaping.
	out := make([]byte, 0, 96+b64.EncodedLen(len(header))+b64.EncodedLen(len(wrapped))+b64.EncodedLen(len(iv))+b64.EncodedLen(len(value)+gcm.Overhead()))
	out = append(out, `{"protected":"`...)
	out = b64.AppendEncode(out, header)
	protected := out[len(`{"protected":"`):]
	// The additional data is ASCII(BASE64URL(protected header)): no aad member.
	sealed := gcm.Seal(nil, iv[:], value, protected)
	ct, tag := sealed[:len(value)], sealed[len(value):]
	out = append(out, `","encrypted_key":"`...)
	out = b64.AppendEncode(out, wrapped)
	out = append(out, `","iv":"`...)
	out = b64.AppendEncode(out, iv[:])
	out = append(out, `","ciphertext":"`...)
	out = b64.AppendEncode(out, ct)
	out = append(out, `","tag":"`...)
	out = b64.AppendEncode(out, tag)
	out = append(out, `"}`...)
	return out, nil
}

// appendEPK appends the JWK of an ephemeral public key.
func appendEPK(b []byte, pub *ecdh.PublicKey) ([]byte, error) {
	raw := pub.Bytes()
	var crv string
	switch pub.Curve() {
	case ecdh.X25519():
		b = append(b, `{"kty":"OKP","crv":"X25519","x":"`...)
		b = b64.AppendEncode(b, raw)
		return append(b, `"}`...), nil
	case ecdh.P256():
		crv = "P-256"
	case ecdh.P384():
		crv = "P-384"
	case ecdh.P521():
		crv = "P-521"
	default:
		return nil, errors.New("unsupported ephemeral curve")
	}
	// Uncompressed point: 0x04 ‖ X ‖ Y.
	n := (len(raw) - 1) / 2
	b = append(b, `{"kty":"EC","crv":"`+crv+`","x":"`...)
	b = b64.AppendEncode(b, raw[1:1+n])
	b = append(b, `","y":"`...)
	b = b64.AppendEncode(b, raw[1+n:])
	return append(b, `"}`...), nil
}

// concatKDF is the single-step KDF of NIST SP 800-56A with SHA-256 as JOSE
// uses it (RFC 7518 §4.6.2), with empty PartyUInfo and PartyVInfo.
func concatKDF(z []byte, alg string, bits int) []byte {
	var other []byte
	other = binary.BigEndian.AppendUint32(other, uint32(len(alg)))
	other = append(other, alg...)
	other = binary.BigEndian.AppendUint32(other, 0) // apu
	other = binary.BigEndian.AppendUint32(other, 0) // apv
	other = binary.BigEndian.AppendUint32(other, uint32(bits))
	var out []byte
	h := sha256.New()
	for round := uint32(1); len(out) < bits/8; round++ {
		h.Reset()
		h.Write(binary.BigEndian.AppendUint32(nil, round))
		h.Write(z)
		h.Write(other)
		out = h.Sum(out)
	}
	return out[:bits/8]
}

// aesKeyWrap is the AES key wrap of RFC 3394.
func aesKeyWrap(kek, key []byte) ([]byte, error) {
	if len(key)%8 != 0 || len(key) < 16 {
		return nil, errors.New("key wrap: key must be a multiple of 8 bytes, at least 16")
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(key) / 8
	out := make([]byte, 8+len(key))
	a := out[:8]
	binary.BigEndian.PutUint64(a, 0xA6A6A6A6A6A6A6A6)
	copy(out[8:], key)
	var buf [16]byte
	for j := range 6 {
		for i := 1; i <= n; i++ {
			r := out[8*i : 8*i+8]
			copy(buf[:8], a)
			copy(buf[8:], r)
			block.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a, binary.BigEndian.Uint64(buf[:8])^t)
			copy(r, buf[8:])
		}
	}
	return out, nil
}
