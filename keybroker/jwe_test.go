package keybroker

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"slices"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwe"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// RFC 3394 §4.6: wrap 256 bits of key data with a 256-bit KEK.
func TestAESKeyWrapVector(t *testing.T) {
	kek, _ := hex.DecodeString("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	key, _ := hex.DecodeString("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
	want := "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21"
	got, err := aesKeyWrap(kek, key)
	if err != nil || hex.EncodeToString(got) != want {
		t.Fatalf("wrap = %x, %v; want %s", got, err, want)
	}
}

// TestJWEInterop: what the broker encrypts, two JOSE libraries decrypt with
// the TEE's private key, for every key type: jwx, which kura's client also
// uses, and go-jose, an independent implementation (it has no X25519 ECDH-ES,
// so X25519 is checked with jwx alone). Every JWE keeps its header
// parameters in the protected header alone (RFC 7516 §7.2.1: protected,
// shared and per-recipient headers must be disjoint; python jwcrypto and npm
// jose refuse a JWE that repeats "alg" in a per-recipient header). Tampered
// and truncated JWEs do not decrypt.
func TestJWEInterop(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	x, _ := ecdh.X25519().GenerateKey(rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		name     string
		priv     any
		alg      jwa.KeyEncryptionAlgorithm
		joseAlg  jose.KeyAlgorithm // "" when go-jose cannot decrypt it
		wantAlg  string
		extraHdr []string
	}{
		{"P-256", ecKey, jwa.ECDH_ES_A256KW(), jose.ECDH_ES_A256KW, "ECDH-ES+A256KW", []string{"epk"}},
		{"P-384", p384, jwa.ECDH_ES_A256KW(), jose.ECDH_ES_A256KW, "ECDH-ES+A256KW", []string{"epk"}},
		{"P-521", p521, jwa.ECDH_ES_A256KW(), jose.ECDH_ES_A256KW, "ECDH-ES+A256KW", []string{"epk"}},
		{"X25519", x, jwa.ECDH_ES_A256KW(), "", "ECDH-ES+A256KW", []string{"epk"}},
		{"RSA", rsaKey, jwa.RSA_OAEP_256(), jose.RSA_OAEP_256, "RSA-OAEP-256", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			priv, err := jwk.Import(tc.priv)
			if err != nil {
				t.Fatal(err)
			}
			pub, _ := priv.PublicKey()
			pubJSON, _ := json.Marshal(pub)
			r, err := parseRecipient(pubJSON)
			if err != nil {
				t.Fatal(err)
			}
			msg := []byte("secret for " + tc.name)
			out, err := r.encrypt(msg)
			if err != nil {
				t.Fatal(err)
			}
			checkFlattenedJWE(t, out, tc.wantAlg, tc.extraHdr)
			got, err := jwe.Decrypt(out, jwe.WithKey(tc.alg, priv))
			if err != nil || !bytes.Equal(got, msg) {
				t.Errorf("jwx: decrypt = %q, %v", got, err)
			}
			if tc.joseAlg != "" {
				got, err := joseDecrypt(out, tc.joseAlg, tc.priv)
				if err != nil || !bytes.Equal(got, msg) {
					t.Errorf("go-jose: decrypt = %q, %v", got, err)
				}
			}
			var members map[string]string
			json.Unmarshal(out, &members)
			for name, bad := range map[string][]byte{
				"tag":           bytes.Replace(out, []byte(members["tag"]), []byte(flipB64(members["tag"])), 1),
				"ciphertext":    bytes.Replace(out, []byte(members["ciphertext"]), []byte(flipB64(members["ciphertext"])), 1),
				"encrypted_key": bytes.Replace(out, []byte(members["encrypted_key"]), []byte(flipB64(members["encrypted_key"])), 1),
				"protected":     bytes.Replace(out, []byte(members["protected"]), []byte(flipB64(members["protected"])), 1),
				"truncated":     out[:len(out)/2],
			} {
				if _, err := jwe.Decrypt(bad, jwe.WithKey(tc.alg, priv)); err == nil {
					t.Errorf("jwx: %s tampered: decrypted", name)
				}
				if tc.joseAlg != "" {
					if _, err := joseDecrypt(bad, tc.joseAlg, tc.priv); err == nil {
						t.Errorf("go-jose: %s tampered: decrypted", name)
					}
				}
			}
		})
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	k, _ := jwk.Import(&small.PublicKey)
	smallJSON, _ := json.Marshal(k)
	if _, err := parseRecipient(smallJSON); err == nil {
		t.Error("RSA-1024 tee-pubkey accepted")
	}
}

// joseDecrypt decrypts a flattened JSON JWE with go-jose.
func joseDecrypt(data []byte, alg jose.KeyAlgorithm, priv any) ([]byte, error) {
	obj, err := jose.ParseEncryptedJSON(string(data), []jose.KeyAlgorithm{alg}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		return nil, err
	}
	return obj.Decrypt(priv)
}

// checkFlattenedJWE checks the shape the KBS protocol and RFC 7516 §7.2.2
// want: exactly protected, encrypted_key, iv, ciphertext and tag; a
// protected header with alg, enc "A256GCM" and extra, and nothing else;
// no shared ("unprotected") or per-recipient ("header") header, so no
// parameter appears twice (§7.2.1).
func checkFlattenedJWE(t *testing.T, data []byte, alg string, extra []string) {
	t.Helper()
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range members {
		names = append(names, k)
	}
	slices.Sort(names)
	if want := []string{"ciphertext", "encrypted_key", "iv", "protected", "tag"}; !slices.Equal(names, want) {
		t.Errorf("JWE members %v, want %v", names, want)
	}
	var protected string
	json.Unmarshal(members["protected"], &protected)
	raw, err := b64.DecodeString(protected)
	if err != nil {
		t.Fatal(err)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(raw, &hdr); err != nil {
		t.Fatal(err)
	}
	if string(hdr["alg"]) != `"`+alg+`"` || string(hdr["enc"]) != `"A256GCM"` || len(hdr) != 2+len(extra) {
		t.Errorf("protected header %s, want alg %s, enc A256GCM and %v", raw, alg, extra)
	}
	for _, k := range extra {
		if _, ok := hdr[k]; !ok {
			t.Errorf("protected header %s lacks %s", raw, k)
		}
	}
}

// flipB64 changes the first character of a base64url string.
func flipB64(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}
