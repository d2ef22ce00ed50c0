package sim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation"
)

var testMeasurement = bytes.Repeat([]byte{0xab}, MeasurementSize)

func attest(t testing.TB, cfg AttesterConfig) (*Attester, *attestation.Bundle, [64]byte) {
	t.Helper()
	if cfg.Measurement == nil {
		cfg.Measurement = testMeasurement
	}
	a, err := NewAttester(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var rd [64]byte
	copy(rd[:], "report data under test")
	b, err := a.Attest(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	return a, b, rd
}

func TestRoundTrip(t *testing.T) {
	a, b, rd := attest(t, AttesterConfig{})
	v, err := NewVerifier(Config{TrustedKeys: []crypto.PublicKey{a.PublicKey()}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.Verify(context.Background(), b)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !bytes.Equal(res.ReportData, rd[:]) {
		t.Errorf("report data = %x, want %x", res.ReportData, rd)
	}
	if res.Claims["insecure"] != true || res.Claims["tee"] != "sim" {
		t.Errorf("claims = %v, want insecure sim", res.Claims)
	}
	if !strings.Contains(string(b.Evidence), "INSECURE") {
		t.Error("sim evidence does not say INSECURE")
	}
	if res.Failed() {
		t.Errorf("checks failed: %+v", res.Checks)
	}
}

func TestExecutableMeasurement(t *testing.T) {
	a, err := NewAttester(AttesterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m1, err := a.Measurement()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ExecutableMeasurement()
	if err != nil {
		t.Fatal(err)
	}
	if len(m1) != MeasurementSize || !bytes.Equal(m1, m2) {
		t.Errorf("measurement %x, want SHA-384 of the test binary %x", m1, m2)
	}
}

// tamper rewrites one field of the evidence document.
func tamper(t *testing.T, b *attestation.Bundle, f func(ev map[string]any)) *attestation.Bundle {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(b.Evidence, &ev); err != nil {
		t.Fatal(err)
	}
	f(ev)
	out := *b
	var err error
	if out.Evidence, err = json.Marshal(ev); err != nil {
		t.Fatal(err)
	}
	return &out
}

func TestRefusals(t *testing.T) {
	_, b, _ := attest(t, AttesterConfig{})
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(field string) func(map[string]any) {
		return func(ev map[string]any) {
			s := []byte(ev[field].(string))
			if s[0] == '0' {
				s[0] = '1'
			} else {
				s[0] = '0'
			}
			ev[field] = string(s)
		}
	}
	tests := []struct {
		name    string
		bundle  *attestation.Bundle
		trusted []crypto.PublicKey
		want    error
	}{
		{"flipped measurement", tamper(t, b, flip("measurement")), nil, attestation.ErrBadSignature},
		{"flipped report data", tamper(t, b, flip("report_data")), nil, attestation.ErrBadSignature},
		{"debug flag set", tamper(t, b, func(ev map[string]any) { ev["debug"] = true }), nil, attestation.ErrBadSignature},
		{"flipped signature", tamper(t, b, func(ev map[string]any) {
			// Flip a bit of the signature itself, not of its base64,
			// where a flipped '+' or '/' is no base64 at all.
			sig, err := base64.StdEncoding.DecodeString(ev["signature"].(string))
			if err != nil {
				t.Fatal(err)
			}
			sig[10] ^= 1
			ev["signature"] = base64.StdEncoding.EncodeToString(sig)
		}), nil, attestation.ErrBadSignature},
		{"unpinned key", b, []crypto.PublicKey{&other.PublicKey}, attestation.ErrUntrustedRoot},
		{"short measurement", tamper(t, b, func(ev map[string]any) { ev["measurement"] = "abcd" }), nil, attestation.ErrMalformed},
		{"wrong format", tamper(t, b, func(ev map[string]any) { ev["format"] = "other" }), nil, attestation.ErrMalformed},
		{"unknown field", tamper(t, b, func(ev map[string]any) { ev["extra"] = 1 }), nil, attestation.ErrMalformed},
		{"truncated", &attestation.Bundle{Version: 1, TEE: attestation.Sim, Evidence: b.Evidence[:len(b.Evidence)/2]}, nil, attestation.ErrMalformed},
		{"oversized", &attestation.Bundle{Version: 1, TEE: attestation.Sim, Evidence: bytes.Repeat([]byte(" "), maxEvidenceSize+1)}, nil, attestation.ErrMalformed},
		{"wrong tee", &attestation.Bundle{Version: 1, TEE: attestation.SNP, Evidence: b.Evidence}, nil, attestation.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(Config{TrustedKeys: tt.trusted})
			if err != nil {
				t.Fatal(err)
			}
			res, err := v.Verify(context.Background(), tt.bundle)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify error = %v, want %v", err, tt.want)
			}
			if res == nil || !res.Failed() {
				t.Errorf("no failed check recorded: %+v", res)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	_, b, _ := attest(f, AttesterConfig{})
	f.Add(b.Evidence)
	f.Add([]byte(`{"format":"kura-sim-evidence/v1"}`))
	// Trustee's sample evidence, as guest-components' sample attester sends it.
	f.Add([]byte(`{"svn":"1","report_data":"` + base64.StdEncoding.EncodeToString(make([]byte, 48)) + `"}`))
	f.Add([]byte(`{"svn":"1","report_data":"","init_data":"AQI="}`))
	v, err := NewVerifier(Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ev []byte) {
		res, err := v.Verify(context.Background(), &attestation.Bundle{Version: 1, TEE: attestation.Sim, Evidence: ev})
		if err == nil && (res == nil || len(res.ReportData) != attestation.ReportDataSize) {
			t.Fatalf("accepted evidence without report data: %+v", res)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	_, bundle, _ := attest(b, AttesterConfig{})
	v, err := NewVerifier(Config{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if _, err := v.Verify(ctx, bundle); err != nil {
			b.Fatal(err)
		}
	}
}
