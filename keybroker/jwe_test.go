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
	"testing"

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

// TestJWEInterop: what the broker encrypts, a standard JOSE library
// (jwx) decrypts with the TEE's private key, for every key type.
func TestJWEInterop(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	x, _ := ecdh.X25519().GenerateKey(rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		name string
		priv any
		alg  jwa.KeyEncryptionAlgorithm
	}{
		{"P-256", ecKey, jwa.ECDH_ES_A256KW()},
		{"P-384", p384, jwa.ECDH_ES_A256KW()},
		{"X25519", x, jwa.ECDH_ES_A256KW()},
		{"RSA", rsaKey, jwa.RSA_OAEP_256()},
	} {
		priv, err := jwk.Import(tc.priv)
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := priv.PublicKey()
		pubJSON, _ := json.Marshal(pub)
		r, err := parseRecipient(pubJSON)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		msg := []byte("secret for " + tc.name)
		out, err := r.encrypt(msg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := jwe.Decrypt(out, jwe.WithKey(tc.alg, priv))
		if err != nil || !bytes.Equal(got, msg) {
			t.Errorf("%s: decrypt = %q, %v", tc.name, got, err)
		}
		out[len(out)-10] ^= 1 // inside the tag
		if _, err := jwe.Decrypt(out, jwe.WithKey(tc.alg, priv)); err == nil {
			t.Errorf("%s: tampered JWE decrypted", tc.name)
		}
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	k, _ := jwk.Import(&small.PublicKey)
	smallJSON, _ := json.Marshal(k)
	if _, err := parseRecipient(smallJSON); err == nil {
		t.Error("RSA-1024 tee-pubkey accepted")
	}
}
