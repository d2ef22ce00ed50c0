package cca

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/veraison/ear"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/captures"
	"github.com/kura-cc/kura/verifier"
)

// comidReference translates the vector's CoMID reference values into
// kura's (docs/spec/attestation.md §6.1): the platform's software
// components and configuration, the realm's RIM, REMs and personalization
// value.
func comidReference(t testing.TB) *appraisal.ReferenceValues {
	t.Helper()
	_, platform, realm := captures.CCACoMIDs()
	type typed struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	}
	type document struct {
		Triples struct {
			RefVals []struct {
				Measurements []struct {
					Key   *typed `json:"key"`
					Value struct {
						Digests  []string `json:"digests"`
						Name     string   `json:"name"`
						Version  *typed   `json:"version"`
						RawValue *typed   `json:"raw-value"`
						Regs     map[string]struct {
							Value []string `json:"value"`
						} `json:"integrity-registers"`
					} `json:"value"`
				} `json:"measurements"`
			} `json:"reference-values"`
		} `json:"triples"`
	}
	b64hex := func(s string) string {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(b)
	}
	digest := func(s string) string { // "sha-256:BASE64" or "sha-512;BASE64"
		i := strings.IndexAny(s, ":;")
		return b64hex(s[i+1:])
	}
	rv := &appraisal.CCAValues{}
	var measurements []appraisal.Measurement
	for _, src := range [][]byte{platform, realm} {
		var doc document
		if err := json.Unmarshal(src, &doc); err != nil {
			t.Fatal(err)
		}
		for _, m := range doc.Triples.RefVals[0].Measurements {
			v := m.Value
			switch {
			case m.Key != nil && m.Key.Value == "cca.software-component":
				rv.SWComponents = append(rv.SWComponents, appraisal.CCASoftwareComponent{
					MeasurementType: v.Name, Value: digest(v.Digests[0]), Version: v.Version.Value,
				})
			case m.Key != nil && m.Key.Value == "cca.platform-config":
				rv.PlatformConfig = append(rv.PlatformConfig, b64hex(v.RawValue.Value))
			case v.Regs != nil:
				measurements = append(measurements, appraisal.Measurement{TEE: "cca", Name: "veraison realm", Value: digest(v.Regs["rim"].Value[0])})
				rv.REM0 = []string{digest(v.Regs["rem0"].Value[0])}
				rv.REM1 = []string{digest(v.Regs["rem1"].Value[0])}
				rv.REM2 = []string{digest(v.Regs["rem2"].Value[0])}
				rv.REM3 = []string{digest(v.Regs["rem3"].Value[0])}
				rv.PersonalizationValue = []string{b64hex(v.RawValue.Value)}
			default:
				t.Fatalf("unexpected CoMID measurement %+v", m)
			}
		}
	}
	data, err := json.Marshal(&appraisal.ReferenceValues{Measurements: measurements, CCA: rv})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := appraisal.ParseReferenceValues(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(ref.CCA.SWComponents) != 4 || len(ref.Measurements) != 1 {
		t.Fatalf("CoMIDs gave %d components and %d RIMs, want 4 and 1", len(ref.CCA.SWComponents), len(ref.Measurements))
	}
	return ref
}

func newService(t testing.TB, ref *appraisal.ReferenceValues, cpaks ...CPAK) *verifier.Service {
	t.Helper()
	ctx := context.Background()
	ap, err := appraisal.New(ctx, appraisal.Config{Reference: ref})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := verifier.New(verifier.Config{
		TEEs:      map[attestation.TEE]attestation.Verifier{attestation.CCA: newVerifier(t, cpaks...)},
		Appraiser: ap,
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func reportCheck(t testing.TB, rep *verifier.Report, name string) attestation.Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %q check in %+v", name, rep.Checks)
	return attestation.Check{}
}

// TestVectorAppraisal runs Veraison's token through the whole pipeline
// with its CoMIDs' CPAK and reference values: signatures, the realm key
// binding and every reference value pass, and it is affirmed. Its realm
// challenge binds no kura runtime data, so the binding check is reported
// as skipped, and an expected nonce is refused.
func TestVectorAppraisal(t *testing.T) {
	token, cpaks := vector(t)
	ref := comidReference(t)
	svc := newService(t, ref, cpaks...)
	b, err := NewBundle(token)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := svc.Verify(context.Background(), b, verifier.Options{Freshness: verifier.NoFreshness})
	if err != nil {
		t.Fatalf("Verify: %v; checks %+v", err, rep.Checks)
	}
	if rep.Appraisal.Status != ear.TrustTierAffirming || rep.Failed() {
		t.Fatalf("status %v; checks %+v", rep.Appraisal.Status, rep.Checks)
	}
	for _, name := range []string{checkPlatform, checkRealm, checkBinding, "measurement", "cca platform software", "cca rem0", "cca rem3",
		"cca platform config", "cca personalization value", "cca lifecycle", "debug disabled"} {
		if c := reportCheck(t, rep, name); c.Status != attestation.Passed {
			t.Errorf("check %q is %s: %s", name, c.Status, c.Detail)
		}
	}
	if c := reportCheck(t, rep, "binding"); c.Status != attestation.Skipped || !strings.Contains(c.Detail, "no runtime data") {
		t.Errorf("binding check %+v, want skipped: the vector binds no kura runtime data", c)
	}

	// Another platform firmware: the executables claim is a warning.
	other := *ref
	cca := *ref.CCA
	cca.SWComponents = append([]appraisal.CCASoftwareComponent(nil), ref.CCA.SWComponents...)
	cca.SWComponents[1].Version = "1.2.1"
	other.CCA = &cca
	rep, err = newService(t, &other, cpaks...).Verify(context.Background(), b, verifier.Options{Freshness: verifier.NoFreshness})
	if err != nil {
		t.Fatal(err)
	}
	if c := reportCheck(t, rep, "cca platform software"); c.Status != attestation.Failed || !strings.Contains(c.Detail, "M1") {
		t.Errorf("platform software check %+v, want M1 unknown", c)
	}
	if rep.Appraisal.Status != ear.TrustTierWarning {
		t.Errorf("status %v, want warning", rep.Appraisal.Status)
	}

	// The realm challenge is not a kura nonce.
	_, err = svc.Verify(context.Background(), b, verifier.Options{Freshness: verifier.ExpectedNonce, Nonce: make([]byte, 32)})
	if !errors.Is(err, attestation.ErrNonce) {
		t.Errorf("expected nonce: %v, want ErrNonce", err)
	}
	// Runtime data it does not bind is refused.
	b.RuntimeData = attestation.RuntimeData{Nonce: make([]byte, 32), PublicKey: []byte(`{"kty":"OKP"}`)}
	if _, err := svc.Verify(context.Background(), b, verifier.Options{Freshness: verifier.NoFreshness}); !errors.Is(err, attestation.ErrBinding) {
		t.Errorf("unbound runtime data: %v, want ErrBinding", err)
	}
}

// TestEndToEnd makes a token with test keys whose realm challenge is kura's
// report_data for a nonce, a public key and a context, and verifies it the
// way the verifier service does: freshness, signatures, the realm key
// binding, the runtime-data binding and the appraisal.
func TestEndToEnd(t *testing.T) {
	rd := attestation.RuntimeData{
		Nonce:     []byte("0123456789abcdef0123456789abcdef"),
		PublicKey: []byte(`{"kty":"OKP","crv":"X25519","x":"AAAA"}`),
		Context:   []byte("manifest:sha256:00"),
	}
	reportData := rd.ReportData()
	b := newBuilder(t, reportData[:])
	token := b.build(t)
	ref, err := appraisal.ParseReferenceValues([]byte(`
measurements:
  - {tee: cca, name: test-realm, value: ` + hex.EncodeToString(testRIM) + `}
cca:
  sw_components:
    - {measurement_type: BL, value: ` + hex.EncodeToString(testBL) + `, signer_id: ` + hex.EncodeToString(testSigner) + `, version: 1.0.0}
    - {value: ` + strings.Repeat("88", 32) + `}
  platform_config: [cf]
  implementation_ids: [` + hex.EncodeToString(testImplID) + `]
  rem0: [` + hex.EncodeToString(testREM) + `]
  personalization_value: [` + hex.EncodeToString(testRPV) + `]
`))
	if err != nil {
		t.Fatal(err)
	}
	svc := newService(t, ref, b.cpakOf())
	bundle, err := NewBundle(token)
	if err != nil {
		t.Fatal(err)
	}
	bundle.RuntimeData = rd
	if err := bundle.Check(); err != nil {
		t.Fatal(err)
	}
	rep, err := svc.Verify(context.Background(), bundle, verifier.Options{Freshness: verifier.ExpectedNonce, Nonce: rd.Nonce})
	if err != nil {
		t.Fatalf("Verify: %v; checks %+v", err, rep.Checks)
	}
	if rep.Appraisal.Status != ear.TrustTierAffirming || rep.Failed() {
		t.Fatalf("status %v; checks %+v", rep.Appraisal.Status, rep.Checks)
	}
	for _, name := range []string{"freshness", checkPlatform, checkRealm, checkBinding, "binding", "measurement", "cca platform software", "cca implementation id"} {
		if c := reportCheck(t, rep, name); c.Status != attestation.Passed {
			t.Errorf("check %q is %s: %s", name, c.Status, c.Detail)
		}
	}
	if got := rep.Claims["report_data"]; got != hex.EncodeToString(reportData[:]) {
		t.Errorf("report_data claim %v", got)
	}

	// Each part of the runtime data is bound.
	for name, change := range map[string]func(r *attestation.RuntimeData){
		"nonce":      func(r *attestation.RuntimeData) { r.Nonce = []byte("fedcba9876543210fedcba9876543210") },
		"public key": func(r *attestation.RuntimeData) { r.PublicKey = []byte(`{"kty":"OKP","crv":"X25519","x":"BBBB"}`) },
		"context":    func(r *attestation.RuntimeData) { r.Context = []byte("manifest:sha256:01") },
	} {
		other := *bundle
		change(&other.RuntimeData)
		if _, err := svc.Verify(context.Background(), &other, verifier.Options{Freshness: verifier.NoFreshness}); !errors.Is(err, attestation.ErrBinding) {
			t.Errorf("another %s: %v, want ErrBinding", name, err)
		}
	}
	// Another nonce than the expected one.
	if _, err := svc.Verify(context.Background(), bundle, verifier.Options{Freshness: verifier.ExpectedNonce, Nonce: make([]byte, 32)}); !errors.Is(err, attestation.ErrNonce) {
		t.Errorf("wrong nonce: %v, want ErrNonce", err)
	}
	// A nonce the service issued, consumed once.
	n, _, err := svc.Nonce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rd.Nonce = n
	reportData = rd.ReportData()
	b.realm[claimChallenge] = reportData[:]
	bundle = &attestation.Bundle{Version: 1, TEE: attestation.CCA, Evidence: b.build(t), RuntimeData: rd}
	if _, err := svc.Verify(context.Background(), bundle, verifier.Options{Freshness: verifier.IssuedNonce}); err != nil {
		t.Fatalf("issued nonce: %v", err)
	}
	if _, err := svc.Verify(context.Background(), bundle, verifier.Options{Freshness: verifier.IssuedNonce}); !errors.Is(err, attestation.ErrNonce) {
		t.Errorf("replay: %v, want ErrNonce", err)
	}
}
