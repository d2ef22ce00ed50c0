package coco

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
)

func TestParseSim(t *testing.T) {
	a, err := sim.NewAttester(sim.AttesterConfig{Measurement: make([]byte, sim.MeasurementSize)})
	if err != nil {
		t.Fatal(err)
	}
	orig, err := a.Attest(context.Background(), [attestation.ReportDataSize]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseEvidence(attestation.Sim, orig.Evidence)
	if err != nil {
		t.Fatalf("ParseEvidence(sim): %v", err)
	}
	if string(b.Evidence) != string(orig.Evidence) || b.TEE != attestation.Sim {
		t.Fatal("sim evidence changed")
	}
	v, _ := sim.NewVerifier(sim.Config{})
	if _, err := v.Verify(context.Background(), b); err != nil {
		t.Errorf("verify: %v", err)
	}
	other := strings.Replace(string(orig.Evidence), "kura-sim-evidence/v1", "kura-sim-evidence/v2", 1)
	if _, err := ParseEvidence(attestation.Sim, []byte(other)); !errors.Is(err, attestation.ErrMalformed) {
		t.Errorf("other sim format: %v, want ErrMalformed", err)
	}
}

// TestSample: Trustee's sample evidence becomes a sim bundle, which the sim
// verifier accepts, INSECURE, with its report_data zero-padded and no
// measurement; malformed sample evidence is refused here, and the verifier
// refuses it where sim keys are pinned.
func TestSample(t *testing.T) {
	rd := bytes.Repeat([]byte{7}, 48)
	sample := `{"svn":"1","report_data":"` + base64.StdEncoding.EncodeToString(rd) + `","init_data":"` + base64.StdEncoding.EncodeToString([]byte{1, 2}) + `"}`
	b, err := ParseEvidence(attestation.Sim, []byte(sample))
	if err != nil || b.TEE != attestation.Sim || !sim.IsSample(b.Evidence) {
		t.Fatalf("sample evidence: %v, %+v", err, b)
	}
	v, _ := sim.NewVerifier(sim.Config{})
	res, err := v.Verify(context.Background(), b)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	want := make([]byte, 64)
	copy(want, rd)
	if !bytes.Equal(res.ReportData, want) || res.Claims["insecure"] != true || res.Claims["measurement"] != "" || !sim.IsSampleClaims(res.Claims) ||
		res.Claims["sim"].(map[string]any)["init_data"] != "0102" || !strings.Contains(res.Claims["warning"].(string), "INSECURE") {
		t.Errorf("sample claims %v, report data %x", res.Claims, res.ReportData)
	}
	a, _ := sim.NewAttester(sim.AttesterConfig{Measurement: make([]byte, sim.MeasurementSize)})
	pinned, _ := sim.NewVerifier(sim.Config{TrustedKeys: []crypto.PublicKey{a.PublicKey()}})
	if _, err := pinned.Verify(context.Background(), b); !errors.Is(err, attestation.ErrUntrustedRoot) {
		t.Errorf("sample evidence with pinned sim keys: %v, want ErrUntrustedRoot", err)
	}
	for name, bad := range map[string]string{
		"svn not a string":   `{"svn":1}`,
		"svn null":           `{"svn":null}`,
		"unknown member":     `{"svn":"1","extra":""}`,
		"report_data number": `{"svn":"1","report_data":5}`,
		"duplicate member":   `{"svn":"1","svn":"2"}`,
		"trailing data":      `{"svn":"1"} {}`,
	} {
		if _, err := ParseEvidence(attestation.Sim, []byte(bad)); !errors.Is(err, attestation.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	for name, bad := range map[string]string{
		"report_data not base64": `{"svn":"1","report_data":"!!"}`,
		"report_data too long":   `{"svn":"1","report_data":"` + base64.StdEncoding.EncodeToString(make([]byte, 65)) + `"}`,
		"init_data too long":     `{"svn":"1","init_data":"` + base64.StdEncoding.EncodeToString(make([]byte, 65)) + `"}`,
	} {
		b, err := ParseEvidence(attestation.Sim, []byte(bad))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := v.Verify(context.Background(), b); !errors.Is(err, attestation.ErrMalformed) {
			t.Errorf("%s: verify %v, want ErrMalformed", name, err)
		}
	}
}

// TestEvidenceForAnotherTEE: evidence shaped for one TEE is refused for
// another, and the error says which.
func TestEvidenceForAnotherTEE(t *testing.T) {
	report, certs, _ := milan(t)
	quote, _ := sprQuote(t)
	tests := []struct {
		tee  attestation.TEE
		ev   []byte
		says string
	}{
		{attestation.TDX, snpEvidenceJSON(report, certs, sevStyle{}), "looks like snp"},
		{attestation.SNP, tdxEvidenceJSON(quote), "looks like tdx"},
		{attestation.Sim, tdxEvidenceJSON(quote), "looks like tdx"},
		{attestation.SNP, []byte(`{"svn":"1","report_data":""}`), "looks like sample"},
		{"sgx", []byte(`{}`), "no CoCo evidence format"},
		{attestation.CCA, azVectors(t)[1].json(1), "looks like az-tdx-vtpm"},
		{attestation.AzTDXvTPM, azVectors(t)[0].json(0), "looks like az-snp-vtpm"},
		{attestation.AzSNPvTPM, ccaEvidenceJSON([]byte{1}), "looks like cca"},
		{attestation.TDX, azVectors(t)[0].json(0), "looks like az-snp-vtpm"},
	}
	for _, tt := range tests {
		_, err := ParseEvidence(tt.tee, tt.ev)
		if !errors.Is(err, attestation.ErrMalformed) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%s evidence for %s: %v, want ErrMalformed saying %q", tt.says, tt.tee, err, tt.says)
		}
	}
}
