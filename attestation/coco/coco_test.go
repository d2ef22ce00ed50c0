package coco

import (
	"context"
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

// TestSampleRefused: Trustee's sample evidence cannot be checked by the sim
// TEE, so it is refused as unsupported, with the reason.
func TestSampleRefused(t *testing.T) {
	sample := `{"svn":"1","report_data":"` + strings.Repeat("A", 64) + `"}`
	_, err := ParseEvidence(attestation.Sim, []byte(sample))
	if !errors.Is(err, ErrUnsupported) || !errors.Is(err, attestation.ErrMalformed) || !strings.Contains(err.Error(), "sample") {
		t.Errorf("sample evidence: %v, want ErrUnsupported naming sample", err)
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
	}
	for _, tt := range tests {
		_, err := ParseEvidence(tt.tee, tt.ev)
		if !errors.Is(err, attestation.ErrMalformed) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%s evidence for %s: %v, want ErrMalformed saying %q", tt.says, tt.tee, err, tt.says)
		}
	}
}
