package snp

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/captures"
)

// FuzzVerify feeds arbitrary evidence and certificates to the Verifier,
// NewBundle and ParseTSMReport. Nothing may panic, and every failure must
// wrap one of attestation's sentinels.
func FuzzVerify(f *testing.F) {
	_, vcek, _ := captures.SNPMilan()
	milan, genoa := milanBundle(f), genoaBundle(f)
	seeds := [][2][]byte{
		{milan.Evidence, milan.Certs},
		{genoa.Evidence, genoa.Certs},
		{milan.Evidence, vcek},
		{captures.SNPGenoaTSM(), nil},
	}
	for _, s := range seeds {
		if len(s[0]) == 0 {
			f.Fatal("empty seed: a capture in internal/captures is missing")
		}
		f.Add(s[0], s[1])
	}
	sentinels := []error{
		attestation.ErrMalformed, attestation.ErrBadSignature, attestation.ErrUntrustedRoot,
		attestation.ErrCollateralUnavailable, attestation.ErrCollateralExpired,
	}
	v, err := NewVerifier(Config{Getter: &mapGetter{}, Now: func() time.Time { return genoaTime }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, evidence, certs []byte) {
		_, err := v.Verify(context.Background(), &attestation.Bundle{Version: 1, TEE: attestation.SNP, Evidence: evidence, Certs: certs})
		if err != nil && !isAny(err, sentinels) {
			t.Fatalf("Verify error wraps no sentinel: %v", err)
		}
		if _, err := NewBundle(evidence, certs); err != nil && !errors.Is(err, attestation.ErrMalformed) {
			t.Fatalf("NewBundle error is not ErrMalformed: %v", err)
		}
		if _, err := ParseTSMReport(evidence); err != nil && !errors.Is(err, attestation.ErrMalformed) {
			t.Fatalf("ParseTSMReport error is not ErrMalformed: %v", err)
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
