package attestation

import (
	"bytes"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestReportDataVector(t *testing.T) {
	// The vector in docs/spec/attestation.md §3; a second implementation
	// must reproduce it.
	r := RuntimeData{
		Nonce:     bytes.Repeat([]byte{0x01}, 32),
		PublicKey: []byte(`{"kty":"OKP","crv":"X25519","x":"AAAA"}`),
		Context:   []byte("manifest:sha256:00"),
	}
	inner := sha512.New()
	inner.Write([]byte("kura/runtime-data/v1"))
	inner.Write([]byte{0, 0, 0, byte(len(r.PublicKey))})
	inner.Write(r.PublicKey)
	inner.Write([]byte{0, 0, 0, byte(len(r.Context))})
	inner.Write(r.Context)
	outer := sha512.Sum512(append(bytes.Clone(r.Nonce), inner.Sum(nil)...))
	got := r.ReportData()
	if !bytes.Equal(got[:], outer[:]) {
		t.Fatalf("ReportData = %x, want %x", got, outer)
	}
	const want = "0fa9c0482de6b759d3ee83f15e93b84c136885eb042b59ea58eb8ae1bb24615a1a405974ea6c41be0e0a63fd32d1311977e25077c49992d06f55e7e97060c867" // docs/spec/attestation.md §3
	if hex.EncodeToString(got[:]) != want {
		t.Errorf("ReportData = %x, want %s (update docs/spec/attestation.md if the rule changed on purpose)", got, want)
	}
}

func TestReportDataSeparatesFields(t *testing.T) {
	a := RuntimeData{Nonce: make([]byte, 32), PublicKey: []byte("ab"), Context: []byte("c")}
	b := RuntimeData{Nonce: make([]byte, 32), PublicKey: []byte("a"), Context: []byte("bc")}
	if a.ReportData() == b.ReportData() {
		t.Error("moving a byte between public key and context kept report data")
	}
}

func validBundle() string {
	return `{"version":1,"tee":"sim","evidence":"AAEC","runtime_data":{"nonce":"AAAAAAAAAAAAAAAAAAAAAA=="}}`
}

func TestParseBundle(t *testing.T) {
	if _, err := ParseBundle([]byte(validBundle())); err != nil {
		t.Fatalf("valid bundle: %v", err)
	}
	tests := []struct{ name, in string }{
		{"empty", ``},
		{"truncated", validBundle()[:40]},
		{"trailing data", validBundle() + `{}`},
		{"unknown field", strings.Replace(validBundle(), `"version":1`, `"version":1,"x":1`, 1)},
		{"version 2", strings.Replace(validBundle(), `"version":1`, `"version":2`, 1)},
		{"unknown tee", strings.Replace(validBundle(), `"sim"`, `"sgx"`, 1)},
		{"no evidence", strings.Replace(validBundle(), `"AAEC"`, `""`, 1)},
		{"short nonce", strings.Replace(validBundle(), `AAAAAAAAAAAAAAAAAAAAAA==`, `AAAA`, 1)},
		{"context without nonce", `{"version":1,"tee":"sim","evidence":"AAEC","runtime_data":{"context":"AAAA"}}`},
		{"oversized", `{"version":1,"tee":"sim","evidence":"` + strings.Repeat("A", MaxBundleSize) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseBundle([]byte(tt.in)); !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseBundle error = %v, want ErrMalformed", err)
			}
		})
	}
}

func FuzzParseBundle(f *testing.F) {
	f.Add([]byte(validBundle()))
	f.Add([]byte(`{"version":1,"tee":"tdx","evidence":"AAEC","collateral":{"tcb_info":"AA=="},"runtime_data":{}}`))
	device := base64.StdEncoding.EncodeToString([]byte(`{"version":1,"tee":"nvidia","evidence":"AAEC","certs":"AA==","runtime_data":{"nonce":"AAAAAAAAAAAAAAAAAAAAAA=="}}`))
	f.Add([]byte(`{"version":1,"tee":"sim","evidence":"AAEC","runtime_data":{"nonce":"AAAAAAAAAAAAAAAAAAAAAA==","devices":[{"name":"gpu0","bundle":"` + device + `"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundle(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		for _, d := range b.RuntimeData.Devices {
			if _, err := d.ParseDevice(&b.RuntimeData); err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBinding) {
				t.Fatalf("device %s: error %v is neither malformed nor a binding mismatch", d.Name, err)
			}
		}
		out, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseBundle(out); err != nil {
			t.Fatalf("re-parse of marshalled bundle: %v", err)
		}
	})
}
