package nvidiatest

import (
	"context"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/nvidia"
)

// TestGPU: the test GPU's bundles verify under its root and answer the
// report data given; NVIDIA's root refuses them.
func TestGPU(t *testing.T) {
	g, err := New()
	if err != nil {
		t.Fatal(err)
	}
	var rd [attestation.ReportDataSize]byte
	rd[0], rd[31], rd[63] = 1, 2, 3
	b, err := g.Attest(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := nvidia.NewVerifier(nvidia.Config{Roots: []*x509.Certificate{g.Root}})
	res, err := v.Verify(context.Background(), b)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.ReportData[0] != 1 || res.ReportData[31] != 2 || res.ReportData[63] != 0 {
		t.Errorf("report data %x, want the first 32 bytes of the given", res.ReportData)
	}
	real, _ := nvidia.NewVerifier(nvidia.Config{})
	if _, err := real.Verify(context.Background(), b); !errors.Is(err, attestation.ErrUntrustedRoot) {
		t.Errorf("under NVIDIA's root: %v, want untrusted root", err)
	}
}
