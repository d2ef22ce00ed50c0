package coco

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/tdx"
	"github.com/kura-cc/kura/internal/captures"
)

// Pinned times, as in package tdx: no real TDX vector verifies completely
// (spr_e4 fails at "tcb level", v5 at expired collateral; see
// TestVerifyVectors there), so the round trip checks that the converted
// bundle gets exactly the original's checks, outcome included.
var tdxTimes = map[string]time.Time{
	"spr_e4": time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC),
	"v5":     time.Date(2026, time.February, 3, 1, 0, 0, 0, time.UTC),
}

func tdxVector(t testing.TB, dir string) ([]byte, *attestation.Collateral) {
	t.Helper()
	path := t.TempDir()
	if err := captures.WriteTDX(path, dir); err != nil {
		t.Fatal(err)
	}
	col, err := tdx.LoadCollateralDir(path)
	if err != nil {
		t.Fatal(err)
	}
	quote, err := os.ReadFile(filepath.Join(path, "quote.dat"))
	if err != nil {
		t.Fatal(err)
	}
	return quote, col
}

func sprQuote(t testing.TB) ([]byte, *attestation.Collateral) { return tdxVector(t, "spr_e4") }

// TestTDXRoundTrip: real quotes in TdxEvidence form convert to bundles
// kura's TDX verifier treats exactly as the originals.
func TestTDXRoundTrip(t *testing.T) {
	for dir, now := range tdxTimes {
		quote, col := tdxVector(t, dir)
		v, err := tdx.NewVerifier(tdx.Config{Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		orig := &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.TDX, Evidence: quote, Collateral: col}
		want, wantErr := v.Verify(context.Background(), orig)
		if len(want.Checks) < 3 {
			t.Fatalf("%s: original verified only %v", dir, want.Checks)
		}
		for name, ev := range map[string][]byte{
			"serde_json":                     tdxEvidenceJSON(quote),
			"with event logs":                []byte(`{"cc_eventlog":"AAEC","quote":"` + base64.StdEncoding.EncodeToString(quote) + `","aa_eventlog":"INIT sha384/00\n"}`),
			"older attester, no aa_eventlog": []byte(`{"cc_eventlog":null,"quote":"` + base64.StdEncoding.EncodeToString(quote) + `"}`),
			"protocol 0.1.0 string evidence": []byte(fmt.Sprintf("%q", tdxEvidenceJSON(quote))),
			"whitespace":                     []byte("{\n  \"quote\": \"" + base64.StdEncoding.EncodeToString(quote) + "\"\n}"),
		} {
			t.Run(dir+"/"+name, func(t *testing.T) {
				b, err := ParseTDX(ev)
				if err != nil {
					t.Fatalf("ParseTDX: %v", err)
				}
				if !bytes.Equal(b.Evidence, quote) || b.TEE != attestation.TDX {
					t.Fatal("bundle evidence is not the quote")
				}
				b.Collateral = col // the broker's verifier fetches it; here it comes with the test
				got, err := v.Verify(context.Background(), b)
				if fmt.Sprint(err) != fmt.Sprint(wantErr) {
					t.Errorf("converted: %v, original: %v", err, wantErr)
				}
				if fmt.Sprint(got.Checks) != fmt.Sprint(want.Checks) || fmt.Sprint(got.Claims) != fmt.Sprint(want.Claims) {
					t.Errorf("converted bundle verified differently:\n%v\n%v", got.Checks, want.Checks)
				}
			})
		}
	}
	// A flipped byte in the signed quote body parses and fails the signature.
	quote, col := sprQuote(t)
	bad := bytes.Clone(quote)
	bad[100] ^= 1
	b, err := ParseTDX(tdxEvidenceJSON(bad))
	if err != nil {
		t.Fatal(err)
	}
	b.Collateral = col
	v, _ := tdx.NewVerifier(tdx.Config{Now: func() time.Time { return tdxTimes["spr_e4"] }})
	if _, err := v.Verify(context.Background(), b); !errors.Is(err, attestation.ErrBadSignature) {
		t.Errorf("tampered quote: %v, want ErrBadSignature", err)
	}
}

func TestTDXMalformed(t *testing.T) {
	quote, _ := sprQuote(t)
	q := base64.StdEncoding.EncodeToString(quote)
	good := `{"cc_eventlog":null,"quote":"` + q + `","aa_eventlog":null}`
	tests := []struct{ name, in string }{
		{"empty", ``},
		{"truncated", good[:len(good)/2]},
		{"trailing data", good + `[]`},
		{"no quote", `{"cc_eventlog":null}`},
		{"null quote", `{"quote":null}`},
		{"empty quote", `{"quote":""}`},
		{"quote not base64", `{"quote":"%%%"}`},
		{"quote base64url", `{"quote":"` + base64.URLEncoding.EncodeToString(append(quote, 0xfb, 0xff)) + `"}`},
		{"quote unpadded", `{"quote":"` + base64.RawStdEncoding.EncodeToString(quote[:100]) + `"}`},
		{"quote a number", `{"quote":5}`},
		{"quote oversized", `{"quote":"` + base64.StdEncoding.EncodeToString(make([]byte, tdx.MaxQuoteSize+1)) + `"}`},
		{"cc_eventlog a number", strings.Replace(good, `"cc_eventlog":null`, `"cc_eventlog":5`, 1)},
		{"aa_eventlog an array", strings.Replace(good, `"aa_eventlog":null`, `"aa_eventlog":[]`, 1)},
		{"unknown field", strings.Replace(good, `{`, `{"td_report":"AA==",`, 1)},
		{"duplicate quote", strings.Replace(good, `{`, `{"quote":"AA==",`, 1)},
		{"snp evidence", `{"attestation_report":{},"cert_chain":null}`},
		{"oversized", `{"quote":"` + strings.Repeat("A", MaxEvidenceSize) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseTDX([]byte(tt.in)); !errors.Is(err, attestation.ErrMalformed) {
				t.Errorf("ParseTDX error = %v, want ErrMalformed", err)
			}
		})
	}
}
