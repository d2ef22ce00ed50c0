package cca

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/kura-cc/kura/attestation"
)

// FuzzVerify feeds arbitrary tokens to ParseToken, NewBundle and the
// Verifier, which trusts the vector's CPAK and a test key. Nothing may
// panic; every parse failure must be ErrMalformed and every verification
// failure must wrap one of attestation's sentinels; what verifies must
// bind the realm key and give 64 bytes of report data.
func FuzzVerify(f *testing.F) {
	token, cpaks := vector(f)
	b := newBuilder(f, bytes.Repeat([]byte{0xab}, 64))
	fresh := b.build(f)
	raw := newBuilder(f, make([]byte, 64))
	raw.cpak = b.cpak
	delete(raw.realm, claimProfile)
	point, _ := raw.rak.PublicKey.Bytes()
	raw.realm[claimRealmPublicKey] = point
	seeds := [][]byte{token, fresh, raw.build(f), token[:len(token)/2]}
	for _, s := range seeds {
		if len(s) == 0 {
			f.Fatal("empty seed: the capture in internal/captures is missing")
		}
		f.Add(s)
	}
	v := newVerifier(f, append(cpaks, CPAK{Key: &b.cpak.PublicKey, Name: "test"})...)
	sentinels := []error{attestation.ErrMalformed, attestation.ErrBadSignature, attestation.ErrUntrustedRoot}
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, perr := ParseToken(data)
		if perr != nil && !errors.Is(perr, attestation.ErrMalformed) {
			t.Fatalf("ParseToken error is not ErrMalformed: %v", perr)
		}
		if _, err := NewBundle(data); (err == nil) != (perr == nil) {
			t.Fatalf("NewBundle and ParseToken disagree: %v, %v", err, perr)
		}
		res, err := v.Verify(context.Background(), bundleOf(data))
		if err != nil {
			if !isAny(err, sentinels) {
				t.Fatalf("Verify error wraps no sentinel: %v", err)
			}
			return
		}
		if perr != nil {
			t.Fatalf("Verify accepted what ParseToken refused: %v", perr)
		}
		if len(res.ReportData) != attestation.ReportDataSize || !bytes.Equal(tok.Platform.Challenge, tok.Realm.rakHash()) {
			t.Fatalf("verified token with report data %x and platform challenge %x", res.ReportData, tok.Platform.Challenge)
		}
	})
}

// FuzzParse feeds arbitrary tokens to ParseToken alone, which does no
// cryptography and so is fuzzed much faster than FuzzVerify. Nothing may
// panic, every failure must be ErrMalformed, and what parses must give
// claims.
func FuzzParse(f *testing.F) {
	token, _ := vector(f)
	f.Add(token)
	f.Add(newBuilder(f, make([]byte, 64)).build(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := ParseToken(data)
		if err != nil {
			if !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("ParseToken error is not ErrMalformed: %v", err)
			}
			return
		}
		c := claims(tok)
		if c["tee"] != "cca" || len(tok.Realm.Challenge) != attestation.ReportDataSize || tok.rak == nil {
			t.Fatalf("parsed token gives claims %v", c)
		}
	})
}

func isAny(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
