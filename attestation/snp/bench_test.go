package snp

import (
	"context"
	"testing"

	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/validate"
	"github.com/google/go-sev-guest/verify"

	"github.com/kura-cc/kura/internal/captures"
)

// BenchmarkGoSevGuestVerifyValidate is the baseline: go-sev-guest alone
// parsing, verifying and validating the Milan vector offline, with the same
// vendor-rules-only validation options the Verifier uses.
func BenchmarkGoSevGuestVerifyValidate(b *testing.B) {
	report, vcek, askArk := captures.SNPMilan()
	set, err := parseCerts(askArk)
	if err != nil {
		b.Fatal(err)
	}
	opts := &verify.Options{DisableCertFetching: true, Now: milanTime}
	b.ReportAllocs()
	for b.Loop() {
		r, err := abi.ReportToProto(report)
		if err != nil {
			b.Fatal(err)
		}
		att := &spb.Attestation{Report: r, CertificateChain: &spb.CertificateChain{
			VcekCert: vcek, AskCert: set.der[roleASK], ArkCert: set.der[roleARK],
		}}
		if err := verify.SnpAttestation(att, opts); err != nil {
			b.Fatal(err)
		}
		if err := validate.SnpAttestation(att, vendorRulesOnly()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify is the whole Verifier on the Milan vector, offline, with
// a warm chain cache.
func BenchmarkVerify(b *testing.B) {
	v := newTestVerifier(b, milanTime, nil)
	bundle := milanBundle(b)
	ctx := context.Background()
	if _, err := v.Verify(ctx, bundle); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, bundle); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCold is the Verifier with its chain cache emptied before
// every report, as for a machine it has not seen before.
func BenchmarkVerifyCold(b *testing.B) {
	v := newTestVerifier(b, milanTime, nil)
	bundle := milanBundle(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v.chains = chainCache{}
		if _, err := v.Verify(ctx, bundle); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewVerifier is making a Verifier: parsing AMD's embedded roots
// and checking each intermediate's signature by its ARK.
func BenchmarkNewVerifier(b *testing.B) {
	for b.Loop() {
		newTestVerifier(b, milanTime, nil)
	}
}
