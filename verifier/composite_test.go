package verifier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/token"
)

// compositeBundle returns a sim bundle carrying a sim device gpu0, both for
// nonce.
func compositeBundle(t *testing.T, nonce []byte) *attestation.Bundle {
	t.Helper()
	b, err := attestation.AttestComposite(context.Background(), simAttester(t),
		[]attestation.DeviceAttester{{Name: "gpu0", Attester: simAttester(t)}},
		attestation.RuntimeData{Nonce: nonce, PublicKey: []byte(`{"kty":"OKP"}`)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestComposite verifies a composite bundle: the device's evidence is
// verified, bound and appraised, the token has a submod per device, and
// the primary appraisal sees the device's.
func TestComposite(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, true)
	nonce := bytes.Repeat([]byte{5}, 32)
	rep, err := f.svc.Verify(ctx, compositeBundle(t, nonce), Options{Freshness: ExpectedNonce, Nonce: nonce})
	if err != nil {
		t.Fatalf("Verify: %v\nchecks %+v", err, rep.Checks)
	}
	if len(rep.Devices) != 1 || rep.Devices[0].Name != "gpu0" || rep.Devices[0].Appraisal == nil {
		t.Fatalf("devices = %+v", rep.Devices)
	}
	var names []string
	for _, c := range rep.Checks {
		names = append(names, c.Name)
	}
	if all := strings.Join(names, ","); !strings.Contains(all, "gpu0: evidence signature") || !strings.Contains(all, "gpu0: binding") || !strings.Contains(all, "device gpu0") {
		t.Errorf("checks = %v, want the device's own, its binding and the primary's judgement of it", names)
	}
	dev := rep.Claims["devices"].(map[string]any)["gpu0"].(map[string]any)
	if dev["tee"] != "sim" || dev["status"] != "warning" {
		t.Errorf("devices claim = %v", dev)
	}
	claims := verifyToken(t, f, rep.Token)
	if len(claims.Submods) != 2 || claims.Submods["gpu0"].Evidence["tee"] != "sim" {
		t.Errorf("token submods = %v, want cpu0 and gpu0", claims.Submods)
	}

	for _, tc := range []struct {
		name   string
		mutate func(b *attestation.Bundle)
		want   error
		msg    string
	}{
		{"device bundle altered", func(b *attestation.Bundle) {
			b.RuntimeData.Devices[0].Bundle = bytes.Replace(b.RuntimeData.Devices[0].Bundle, []byte(`"version":1`), []byte(`"version": 1`), 1)
		}, attestation.ErrBinding, "report_data is"},
		{"device dropped", func(b *attestation.Bundle) { b.RuntimeData.Devices = nil }, attestation.ErrBinding, "report_data is"},
		{"device renamed", func(b *attestation.Bundle) { b.RuntimeData.Devices[0].Name = "gpu1" }, attestation.ErrBinding, "report_data is"},
		{"device named cpu0", func(b *attestation.Bundle) { b.RuntimeData.Devices[0].Name = "cpu0" }, attestation.ErrMalformed, "cpu0 is the bundle's own"},
		{"device twice", func(b *attestation.Bundle) {
			b.RuntimeData.Devices = append(b.RuntimeData.Devices, b.RuntimeData.Devices[0])
		}, attestation.ErrMalformed, "appears twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := compositeBundle(t, nonce)
			tc.mutate(b)
			_, err := f.svc.Verify(ctx, b, Options{Freshness: ExpectedNonce, Nonce: nonce})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want %v naming %q", err, tc.want, tc.msg)
			}
		})
	}
}

// TestCompositeDeviceFreshness checks that a device's evidence must bind
// the bundle's nonce: a device bundle made for another nonce, even one
// the primary binds, is refused.
func TestCompositeDeviceFreshness(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, true)
	nonce := bytes.Repeat([]byte{5}, 32)
	old := compositeBundle(t, bytes.Repeat([]byte{6}, 32)).RuntimeData.Devices[0]

	// The old device bundle, relabelled with the new nonce: its evidence
	// still binds the old one.
	var db attestation.Bundle
	if err := json.Unmarshal(old.Bundle, &db); err != nil {
		t.Fatal(err)
	}
	db.RuntimeData.Nonce = nonce
	relabelled, _ := json.Marshal(&db)
	for name, dev := range map[string]attestation.Device{
		"old device bundle":        old,
		"relabelled device bundle": {Name: "gpu0", Bundle: relabelled},
	} {
		rd := attestation.RuntimeData{Nonce: nonce, Devices: []attestation.Device{dev}}
		b, err := simAttester(t).Attest(ctx, rd.ReportData())
		if err != nil {
			t.Fatal(err)
		}
		b.RuntimeData = rd
		_, err = f.svc.Verify(ctx, b, Options{Freshness: ExpectedNonce, Nonce: nonce})
		if !errors.Is(err, attestation.ErrBinding) || !strings.Contains(err.Error(), "gpu0") {
			t.Errorf("%s: %v, want ErrBinding naming gpu0", name, err)
		}
	}
}

// verifyToken verifies an EAR the fixture's service issued.
func verifyToken(t *testing.T, f *fixture, tok []byte) *token.Claims {
	t.Helper()
	jwks, err := f.client.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := token.ParseJWKS(jwks)
	if err != nil {
		t.Fatal(err)
	}
	tv, err := token.NewVerifier(token.VerifierConfig{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := tv.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return claims
}
