package azure

import (
	"context"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/verifier"
)

// TestServiceEndToEnd runs synthetic az-snp-vtpm evidence through the
// verifier service as the HTTP API does: an issued nonce, runtime data
// bound through the TPM quote's extraData under kura's rule and a CoCo
// rule, the appraisal with PCR reference values, and the refusals of a
// replay and of a quote binding other runtime data.
func TestServiceEndToEnd(t *testing.T) {
	ctx := context.Background()
	service := func(t *testing.T, ref *appraisal.ReferenceValues, hw *fakeHW) *verifier.Service {
		ap, err := appraisal.New(ctx, appraisal.Config{Reference: ref})
		if err != nil {
			t.Fatal(err)
		}
		az := newVerifier(t, Config{SNP: hw})
		svc, err := verifier.New(verifier.Config{
			TEEs:      map[attestation.TEE]attestation.Verifier{attestation.AzSNPvTPM: az},
			Appraiser: ap,
		})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	// evidence returns a bundle whose quote over the first npcr of
	// testPCRs has the first n bytes of what rule gives for its runtime
	// data as extraData (64 for kura's rule, 48 for CoCo's).
	evidence := func(t *testing.T, svc *verifier.Service, pub []byte, rule attestation.Binding, n, npcr int) *attestation.Bundle {
		nonce, _, err := svc.Nonce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rd := attestation.RuntimeData{Nonce: nonce, PublicKey: pub}
		want, err := rd.ReportDataFor(rule)
		if err != nil {
			t.Fatal(err)
		}
		c := newSNPCase(t, nil)
		c.pcrs = testPCRs()[:npcr]
		c.attest, c.sig = makeQuote(t, quoteSpec{key: testKey(), extraData: want[:n], pcrs: c.pcrs})
		b := c.bundle()
		b.RuntimeData, b.Binding = rd, rule
		if err := b.Check(); err != nil {
			t.Fatal(err)
		}
		return b
	}
	pub := []byte(`{"crv":"P-256","kty":"EC","x":"gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0","y":"SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps"}`)
	// Every case's runtime data names testKey, so one stand-in serves all.
	hw := newSNPCase(t, nil).hw

	t.Run("kura rule", func(t *testing.T) {
		svc := service(t, nil, hw)
		b := evidence(t, svc, pub, attestation.BindingKura, 64, 24)
		rep, err := svc.Verify(ctx, b, verifier.Options{Freshness: verifier.IssuedNonce})
		if err != nil {
			t.Fatalf("Verify() = %v; checks %v", err, rep.Checks)
		}
		if rep.Appraisal.Status.String() != "affirming" || rep.Failed() {
			t.Fatalf("status %s; checks %v", rep.Appraisal.Status, rep.Checks)
		}
		if !hasCheck(rep.Checks, "binding", attestation.Passed) || !hasCheck(rep.Checks, "freshness", attestation.Passed) ||
			!hasCheck(rep.Checks, "snp minimum tcb", attestation.Skipped) {
			t.Errorf("checks %v", rep.Checks)
		}
		// The same evidence again: the nonce is spent.
		if _, err := svc.Verify(ctx, b, verifier.Options{Freshness: verifier.IssuedNonce}); !errors.Is(err, attestation.ErrNonce) {
			t.Fatalf("replay: %v, want ErrNonce", err)
		}
	})
	t.Run("coco rule", func(t *testing.T) {
		svc := service(t, nil, hw)
		b := evidence(t, svc, pub, attestation.BindingCoCoKBS04, 48, 24)
		rep, err := svc.Verify(ctx, b, verifier.Options{Freshness: verifier.IssuedNonce})
		if err != nil || !hasCheck(rep.Checks, "binding", attestation.Passed) {
			t.Fatalf("Verify() = %v; checks %v", err, rep.Checks)
		}
	})
	t.Run("quote binds other runtime data", func(t *testing.T) {
		svc := service(t, nil, hw)
		b := evidence(t, svc, pub, attestation.BindingKura, 64, 24)
		b.RuntimeData.PublicKey = []byte(`{"kty":"other"}`)
		if _, err := svc.Verify(ctx, b, verifier.Options{Freshness: verifier.IssuedNonce}); !errors.Is(err, attestation.ErrBinding) {
			t.Fatalf("Verify() = %v, want ErrBinding", err)
		}
	})
	t.Run("reference values", func(t *testing.T) {
		pcrs := testPCRs()
		x := hex.EncodeToString
		for _, tc := range []struct {
			name   string
			ref    map[string]any
			npcr   int
			status string
			check  string
		}{
			{"pcrs allowed", map[string]any{"vtpm": map[string]any{"pcrs": map[string]any{"sha256": map[string][]string{"7": {x(pcrs[6]), x(pcrs[7])}, "4": {x(pcrs[4])}}}}},
				24, "affirming", "vtpm pcr sha256:7"},
			{"pcr of another value", map[string]any{"vtpm": map[string]any{"pcrs": map[string]any{"sha256": map[string][]string{"7": {x(pcrs[6])}}}}},
				24, "warning", "vtpm pcr sha256:7"},
			{"pcr not quoted", map[string]any{"vtpm": map[string]any{"pcrs": map[string]any{"sha256": map[string][]string{"23": {x(pcrs[23])}}}}},
				8, "warning", "vtpm pcr sha256:23"},
			{"snp minimum tcb", map[string]any{"snp": map[string]any{"min_tcb": map[string]int{"bootloader": 200}}},
				24, "contraindicated", "snp minimum tcb"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ref, err := appraisal.ParseReferenceValues(mustJSON(t, tc.ref))
				if err != nil {
					t.Fatal(err)
				}
				svc := service(t, ref, hw)
				b := evidence(t, svc, pub, attestation.BindingKura, 64, tc.npcr)
				rep, err := svc.Verify(ctx, b, verifier.Options{Freshness: verifier.IssuedNonce})
				if err != nil {
					t.Fatalf("Verify() = %v; checks %v", err, rep.Checks)
				}
				if got := rep.Appraisal.Status.String(); got != tc.status {
					t.Errorf("status %s, want %s; checks %v", got, tc.status, rep.Appraisal.Checks)
				}
				wantStatus := attestation.Passed
				if tc.status != "affirming" {
					wantStatus = attestation.Failed
				}
				if !hasCheck(rep.Checks, tc.check, wantStatus) {
					t.Errorf("no %s=%s in %v", tc.check, wantStatus, rep.Appraisal.Checks)
				}
			})
		}
	})
}

func hasCheck(checks []attestation.Check, name string, status attestation.CheckStatus) bool {
	for _, c := range checks {
		if c.Name == name && c.Status == status {
			return true
		}
	}
	return false
}
