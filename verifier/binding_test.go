package verifier

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation"
)

// TestCoCoBinding: a bundle naming a CoCo rule is checked under that rule,
// the check's detail names it, and evidence bound under another rule, or to
// another key, fails with ErrBinding.
func TestCoCoBinding(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, true)
	nonce := bytes.Repeat([]byte{1}, 32)
	rd := attestation.RuntimeData{Nonce: nonce, PublicKey: []byte(`{"crv":"X25519","kty":"OKP","x":"AAAA"}`)}
	attest := func(binding attestation.Binding, rd attestation.RuntimeData) [attestation.ReportDataSize]byte {
		t.Helper()
		v, err := rd.ReportDataFor(binding)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	bundle := func(reportData [attestation.ReportDataSize]byte, binding attestation.Binding) *attestation.Bundle {
		t.Helper()
		b, err := simAttester(t).Attest(ctx, reportData)
		if err != nil {
			t.Fatal(err)
		}
		b.RuntimeData, b.Binding = rd, binding
		return b
	}
	opts := Options{Freshness: ExpectedNonce, Nonce: nonce}
	for _, rule := range []attestation.Binding{attestation.BindingCoCoKBS01, attestation.BindingCoCoKBS04} {
		rep, err := f.svc.Verify(ctx, bundle(attest(rule, rd), rule), opts)
		if err != nil {
			t.Fatalf("%s: %v", rule, err)
		}
		var detail string
		for _, c := range rep.Checks {
			if c.Name == "binding" && c.Status == attestation.Passed {
				detail = c.Detail
			}
		}
		if detail != rule.Rule() || !strings.Contains(detail, "SHA-384") {
			t.Errorf("%s: binding check detail %q", rule, detail)
		}
	}
	otherKey := rd
	otherKey.PublicKey = []byte(`{"crv":"X25519","kty":"OKP","x":"BBBB"}`)
	for name, b := range map[string]*attestation.Bundle{
		"0.1 evidence named 0.4":  bundle(attest(attestation.BindingCoCoKBS01, rd), attestation.BindingCoCoKBS04),
		"kura evidence named 0.1": bundle(attest(attestation.BindingKura, rd), attestation.BindingCoCoKBS01),
		"0.1 evidence as kura":    bundle(attest(attestation.BindingCoCoKBS01, rd), attestation.BindingKura),
		"another key":             bundle(attest(attestation.BindingCoCoKBS01, otherKey), attestation.BindingCoCoKBS01),
	} {
		if _, err := f.svc.Verify(ctx, b, opts); !errors.Is(err, attestation.ErrBinding) {
			t.Errorf("%s: %v, want ErrBinding", name, err)
		}
	}
	if !strings.Contains(f.logs.String(), `"binding":"coco-kbs-0.4-sha384"`) {
		t.Error("the verifier's log does not name the binding rule")
	}
}
