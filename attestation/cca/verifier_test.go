package cca

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/captures"
)

func mustCBOR(t testing.TB, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bundleOf(token []byte) *attestation.Bundle {
	return &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.CCA, Evidence: token}
}

func checkNames(res *attestation.Result, status attestation.CheckStatus) []string {
	var out []string
	for _, c := range res.Checks {
		if c.Status == status {
			out = append(out, c.Name)
		}
	}
	return out
}

// TestVerifyVector verifies Veraison's token with the CPAK of its CoMID
// and compares the claims with Veraison's own decoding of them.
func TestVerifyVector(t *testing.T) {
	token, cpaks := vector(t)
	if len(cpaks) != 1 || len(cpaks[0].InstanceID) != instanceIDSize || len(cpaks[0].ImplementationID) != implementationIDSize {
		t.Fatalf("CoMID CPAKs %+v: want one key tied to an instance and an implementation", cpaks)
	}
	res, err := newVerifier(t, cpaks...).Verify(context.Background(), bundleOf(token))
	if err != nil {
		t.Fatalf("Verify: %v; checks %+v", err, res.Checks)
	}
	want := []string{checkParse, checkPlatform, checkRealm, checkBinding}
	if got := checkNames(res, attestation.Passed); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("passed checks %v, want %v", got, want)
	}

	_, claimsJSON := captures.CCAToken()
	var ref struct {
		P struct {
			Profile   string `json:"cca-platform-profile"`
			ImplID    []byte `json:"cca-platform-implementation-id"`
			InstID    []byte `json:"cca-platform-instance-id"`
			Config    []byte `json:"cca-platform-config"`
			Lifecycle int    `json:"cca-platform-lifecycle"`
			SW        []struct {
				Type    string `json:"measurement-type"`
				Value   []byte `json:"measurement-value"`
				Signer  []byte `json:"signer-id"`
				Version string `json:"version"`
			} `json:"cca-platform-sw-components"`
			VSI     string `json:"cca-platform-service-indicator"`
			HashAlg string `json:"cca-platform-hash-algo-id"`
		} `json:"cca-platform-token"`
		R struct {
			Challenge  []byte   `json:"cca-realm-challenge"`
			RPV        []byte   `json:"cca-realm-personalization-value"`
			RIM        []byte   `json:"cca-realm-initial-measurement"`
			REM        [][]byte `json:"cca-realm-extensible-measurements"`
			HashAlg    string   `json:"cca-realm-hash-algo-id"`
			RAK        []byte   `json:"cca-realm-public-key"`
			RAKHashAlg string   `json:"cca-realm-public-key-hash-algo-id"`
		} `json:"cca-realm-delegated-token"`
	}
	if err := json.Unmarshal(claimsJSON, &ref); err != nil {
		t.Fatal(err)
	}
	h := hex.EncodeToString
	c := res.Claims
	cca := c["cca"].(map[string]any)
	eq := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	eq("tee", c["tee"], "cca")
	eq("measurement", c["measurement"], h(ref.R.RIM))
	eq("debug", c["debug"], false)
	eq("report_data", c["report_data"], h(ref.R.Challenge))
	eq("platform_id", c["platform_id"], h(ref.P.InstID))
	eq("platform_profile", cca["platform_profile"], ref.P.Profile)
	eq("implementation_id", cca["implementation_id"], h(ref.P.ImplID))
	eq("instance_id", cca["instance_id"], h(ref.P.InstID))
	eq("platform_config", cca["platform_config"], h(ref.P.Config))
	eq("lifecycle", cca["lifecycle"], ref.P.Lifecycle)
	eq("lifecycle_state", cca["lifecycle_state"], "secured")
	eq("verification_service", cca["verification_service"], ref.P.VSI)
	eq("platform_hash_algo_id", cca["platform_hash_algo_id"], ref.P.HashAlg)
	eq("realm_profile", cca["realm_profile"], realmProfile)
	eq("rim", cca["rim"], h(ref.R.RIM))
	eq("personalization_value", cca["personalization_value"], h(ref.R.RPV))
	eq("realm_hash_algo_id", cca["realm_hash_algo_id"], ref.R.HashAlg)
	eq("rak", cca["rak"], h(ref.R.RAK))
	eq("rak_hash_algo_id", cca["rak_hash_algo_id"], ref.R.RAKHashAlg)
	for i, rem := range ref.R.REM {
		eq("rem", cca["rem"+string(rune('0'+i))], h(rem))
	}
	sw := cca["sw_components"].([]any)
	if len(sw) != len(ref.P.SW) {
		t.Fatalf("%d software components, want %d", len(sw), len(ref.P.SW))
	}
	for i, want := range ref.P.SW {
		got := sw[i].(map[string]any)
		eq("measurement_type", got["measurement_type"], want.Type)
		eq("measurement_value", got["measurement_value"], h(want.Value))
		eq("signer_id", got["signer_id"], h(want.Signer))
		eq("version", got["version"], want.Version)
	}
	if !bytes.Equal(res.ReportData, ref.R.Challenge) {
		t.Errorf("ReportData %x, want the realm challenge", res.ReportData)
	}
	// The JSON was written before the platform challenge was bound; the
	// token's is SHA-512 of the RAK.
	sum := sha512.Sum512(ref.R.RAK)
	tok, err := ParseToken(token)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tok.Platform.Challenge, sum[:]) {
		t.Errorf("platform challenge %x, want SHA-512 of the RAK", tok.Platform.Challenge)
	}
}

// TestVerifyFresh verifies tokens made with test keys: a raw-RAK token of
// the realm format before profiles, and each platform key curve.
func TestVerifyFresh(t *testing.T) {
	challenge := bytes.Repeat([]byte{0xc4}, 64)
	for _, tt := range []struct {
		name  string
		curve elliptic.Curve
		raw   bool
	}{{"P-256 CPAK", elliptic.P256(), false}, {"P-384 CPAK", elliptic.P384(), false}, {"P-521 CPAK", elliptic.P521(), false}, {"raw RAK, no realm profile", elliptic.P256(), true}} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder(t, challenge)
			b.cpak = genKey(t, tt.curve)
			if tt.raw {
				delete(b.realm, claimProfile)
				point, _ := b.rak.PublicKey.Bytes()
				b.realm[claimRealmPublicKey] = point
			}
			res, err := newVerifier(t, b.cpakOf()).Verify(context.Background(), bundleOf(b.build(t)))
			if err != nil {
				t.Fatalf("Verify: %v; checks %+v", err, res.Checks)
			}
			if !bytes.Equal(res.ReportData, challenge) {
				t.Errorf("ReportData %x, want the realm challenge", res.ReportData)
			}
			cca := res.Claims["cca"].(map[string]any)
			if cca["rem3"] != hex.EncodeToString(testREM) || cca["lifecycle"] != 0x3003 {
				t.Errorf("claims %v", cca)
			}
		})
	}
}

// TestVerifyRefused checks that each kind of bad token fails at its check
// with its sentinel.
func TestVerifyRefused(t *testing.T) {
	token, cpaks := vector(t)
	other := genKey(t, elliptic.P256())
	vectorCPAK := cpaks[0]

	fresh := func(f func(b *builder)) func(t *testing.T) ([]byte, []CPAK) {
		return func(t *testing.T) ([]byte, []CPAK) {
			b := newBuilder(t, make([]byte, 64))
			f(b)
			return b.build(t), []CPAK{b.cpakOf()}
		}
	}
	withVector := func(tok []byte, keys ...CPAK) func(t *testing.T) ([]byte, []CPAK) {
		return func(*testing.T) ([]byte, []CPAK) { return tok, keys }
	}
	// One byte changed inside a claim: the CBOR stays well formed.
	platformTampered := replaceOnce(t, token, []byte("3.4.2"), []byte("3.4.3"))
	realmTampered := replaceOnce(t, token, bytes.Repeat([]byte("AD"), 32), append(bytes.Repeat([]byte("AD"), 31), 'A', 'E'))
	sigTampered := bytes.Clone(token)
	sigTampered[len(sigTampered)-1] ^= 1 // the realm token's signature ends the token
	// The outer tag 399 (d9 01 8f) becomes 907 (d9 03 8b); the realm token's
	// COSE tag 18 (d2) becomes 17 (d1, COSE_Mac0).
	tag907 := append([]byte{0xd9, 0x03, 0x8b}, token[3:]...)
	mac0 := replaceOnce(t, token, []byte{0xd2, 0x84, 0x44, 0xa1, 0x01, 0x38, 0x22}, []byte{0xd1, 0x84, 0x44, 0xa1, 0x01, 0x38, 0x22})

	tests := []struct {
		name  string
		make  func(t *testing.T) ([]byte, []CPAK)
		check string
		err   error
	}{
		{"tampered platform payload", withVector(platformTampered, vectorCPAK), checkPlatform, attestation.ErrBadSignature},
		{"tampered realm payload", withVector(realmTampered, vectorCPAK), checkRealm, attestation.ErrBadSignature},
		{"tampered realm signature", withVector(sigTampered, vectorCPAK), checkRealm, attestation.ErrBadSignature},
		{"wrong cpak for the instance", withVector(token, CPAK{Key: &other.PublicKey, InstanceID: vectorCPAK.InstanceID, Name: "other"}), checkPlatform, attestation.ErrBadSignature},
		{"wrong cpaks tied to no instance", withVector(token, CPAK{Key: &other.PublicKey, Name: "other"}, CPAK{Key: &genKey(t, elliptic.P384()).PublicKey, Name: "another"}), checkPlatform, attestation.ErrBadSignature},
		{"cpak of another instance", withVector(token, CPAK{Key: vectorCPAK.Key, InstanceID: testInstID, Name: "moved"}), checkPlatform, attestation.ErrUntrustedRoot},
		{"cpak of another implementation", withVector(token, CPAK{Key: vectorCPAK.Key, ImplementationID: testImplID, Name: "moved"}), checkPlatform, attestation.ErrUntrustedRoot},
		{"no cpak", withVector(token), checkPlatform, attestation.ErrUntrustedRoot},
		{"realm key not the platform challenge's", fresh(func(b *builder) { b.bindKey = &genKey(t, elliptic.P384()).PublicKey }), checkBinding, attestation.ErrBadSignature},
		{"realm token signed by another key", fresh(func(b *builder) { b.realm[claimRealmPublicKey] = coseKey(t, &genKey(t, elliptic.P384()).PublicKey) }), checkRealm, attestation.ErrBadSignature},
		{"platform challenge hashed with another algorithm", fresh(func(b *builder) {
			sum := sha512.Sum384(coseKey(t, &b.rak.PublicKey))
			b.realm[claimRealmPublicKey] = coseKey(t, &b.rak.PublicKey)
			b.platform[claimChallenge] = sum[:]
		}), checkBinding, attestation.ErrBadSignature},
		{"truncated by one byte", withVector(token[:len(token)-1], vectorCPAK), checkParse, attestation.ErrMalformed},
		{"truncated to 100 bytes", withVector(token[:100], vectorCPAK), checkParse, attestation.ErrMalformed},
		{"empty", withVector(nil, vectorCPAK), checkParse, attestation.ErrMalformed},
		{"trailing byte", withVector(append(bytes.Clone(token), 0), vectorCPAK), checkParse, attestation.ErrMalformed},
		{"oversized", withVector(append(bytes.Clone(token), make([]byte, MaxTokenSize)...), vectorCPAK), checkParse, attestation.ErrMalformed},
		{"collection tag 907", withVector(tag907, vectorCPAK), checkParse, attestation.ErrMalformed},
		{"no collection tag", withVector(token[3:], vectorCPAK), checkParse, attestation.ErrMalformed},
		{"realm token tagged COSE_Mac0", withVector(mac0, vectorCPAK), checkParse, attestation.ErrMalformed},
		{"unknown platform profile", fresh(func(b *builder) { b.platform[claimProfile] = "tag:example.com,2026:other#1" }), checkParse, attestation.ErrMalformed},
		{"unknown realm profile", fresh(func(b *builder) { b.realm[claimProfile] = "tag:example.com,2026:realm#9" }), checkParse, attestation.ErrMalformed},
		{"no lifecycle", fresh(func(b *builder) { delete(b.platform, claimLifecycle) }), checkParse, attestation.ErrMalformed},
		{"lifecycle in no state", fresh(func(b *builder) { b.platform[claimLifecycle] = 0x7000 }), checkParse, attestation.ErrMalformed},
		{"no software components", fresh(func(b *builder) { b.platform[claimSoftwareComponents] = []any{} }), checkParse, attestation.ErrMalformed},
		{"short realm challenge", fresh(func(b *builder) { b.realm[claimChallenge] = make([]byte, 32) }), checkParse, attestation.ErrMalformed},
		{"three extensible measurements", fresh(func(b *builder) { b.realm[claimExtensibleMeasurements] = []any{testREM, testREM, testREM} }), checkParse, attestation.ErrMalformed},
		{"challenge as text", fresh(func(b *builder) { b.realm[claimChallenge] = strings.Repeat("x", 64) }), checkParse, attestation.ErrMalformed},
		{"instance id not a RAND UEID", fresh(func(b *builder) { b.platform[claimInstanceID] = append([]byte{0x02}, testInstID[1:]...) }), checkParse, attestation.ErrMalformed},
		{"unknown rak hash", fresh(func(b *builder) { b.realm[claimRAKHashAlgID] = "md5" }), checkParse, attestation.ErrMalformed},
		// go-cose v1.3.0's COSE_Key decoder panics on this key (its curve a
		// simple value); kura reads COSE_Keys itself.
		{"rak curve a simple value", fresh(func(b *builder) {
			p, _ := b.rak.PublicKey.Bytes()
			b.realm[claimRealmPublicKey] = mustCBOR(t, map[int64]any{1: 2, -1: cbor.SimpleValue(16), -2: p[1:49], -3: p[49:]})
		}), checkParse, attestation.ErrMalformed},
		{"rak with a private key", fresh(func(b *builder) {
			p, _ := b.rak.PublicKey.Bytes()
			b.realm[claimRealmPublicKey] = mustCBOR(t, map[int64]any{1: 2, -1: 2, -2: p[1:49], -3: p[49:], -4: b.rak.D.FillBytes(make([]byte, 48))})
		}), checkParse, attestation.ErrMalformed},
		{"rak compressed", fresh(func(b *builder) {
			p, _ := b.rak.PublicKey.Bytes()
			b.realm[claimRealmPublicKey] = mustCBOR(t, map[int64]any{1: 2, -1: 2, -2: p[1:49], -3: true})
		}), checkParse, attestation.ErrMalformed},
		{"rak of another key type", fresh(func(b *builder) {
			b.realm[claimRealmPublicKey] = mustCBOR(t, map[int64]any{1: 1, -1: 6, -2: make([]byte, 32)})
		}), checkParse, attestation.ErrMalformed},
		{"raw rak under a profile", fresh(func(b *builder) { p, _ := b.rak.PublicKey.Bytes(); b.realm[claimRealmPublicKey] = p }), checkParse, attestation.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, keys := tt.make(t)
			res, err := newVerifier(t, keys...).Verify(context.Background(), bundleOf(tok))
			if !errors.Is(err, tt.err) {
				t.Fatalf("Verify: %v, want %v", err, tt.err)
			}
			if failed := checkNames(res, attestation.Failed); len(failed) != 1 || failed[0] != tt.check {
				t.Errorf("failed checks %v, want [%s]; checks %+v", failed, tt.check, res.Checks)
			}
			if res.Claims != nil || res.ReportData != nil {
				t.Error("a refused token yielded claims")
			}
		})
	}

	t.Run("wrong tee", func(t *testing.T) {
		b := bundleOf(token)
		b.TEE = attestation.SNP
		if _, err := newVerifier(t, vectorCPAK).Verify(context.Background(), b); !errors.Is(err, attestation.ErrMalformed) {
			t.Errorf("Verify: %v, want ErrMalformed", err)
		}
		if _, err := newVerifier(t, vectorCPAK).Verify(context.Background(), nil); !errors.Is(err, attestation.ErrMalformed) {
			t.Errorf("Verify(nil): %v, want ErrMalformed", err)
		}
	})
}

// TestUnboundCPAK checks that a CPAK tied to no instance verifies any
// platform's token it signed.
func TestUnboundCPAK(t *testing.T) {
	token, cpaks := vector(t)
	if _, err := newVerifier(t, CPAK{Key: cpaks[0].Key, Name: "pem"}).Verify(context.Background(), bundleOf(token)); err != nil {
		t.Fatal(err)
	}
	// Among several keys, the one that verifies is found.
	other := genKey(t, elliptic.P256())
	res, err := newVerifier(t, CPAK{Key: &other.PublicKey, Name: "other"}, CPAK{Key: cpaks[0].Key, Name: "right"}).Verify(context.Background(), bundleOf(token))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Checks[1].Detail, "right") {
		t.Errorf("platform signature detail %q does not name the CPAK that verified", res.Checks[1].Detail)
	}
}

func TestNewBundle(t *testing.T) {
	token, _ := vector(t)
	b, err := NewBundle(token)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Check(); err != nil || b.TEE != attestation.CCA || !b.RuntimeData.Empty() {
		t.Errorf("bundle %+v: %v", b, err)
	}
	if _, err := NewBundle(token[:50]); !errors.Is(err, attestation.ErrMalformed) {
		t.Errorf("NewBundle(truncated): %v, want ErrMalformed", err)
	}
}

func TestNewVerifierRefusesBadCPAKs(t *testing.T) {
	k := &genKey(t, elliptic.P256()).PublicKey
	for _, c := range []CPAK{{}, {Key: k, InstanceID: []byte{1}}, {Key: k, ImplementationID: make([]byte, 31)}} {
		if _, err := NewVerifier(Config{CPAKs: []CPAK{c}}); err == nil {
			t.Errorf("NewVerifier accepted %+v", c)
		}
	}
}

func TestParseCPAKs(t *testing.T) {
	token, comidKeys := vector(t)
	want := comidKeys[0].Key
	ta, _, _ := captures.CCACoMIDs()
	var doc struct {
		Triples struct {
			AVK []struct {
				Keys []struct{ Value string } `json:"verification-keys"`
			} `json:"attester-verification-keys"`
		}
	}
	if err := json.Unmarshal(ta, &doc); err != nil {
		t.Fatal(err)
	}
	pemKey := doc.Triples.AVK[0].Keys[0].Value
	point, _ := want.Bytes()
	x, y := base64.RawURLEncoding.EncodeToString(point[1:33]), base64.RawURLEncoding.EncodeToString(point[33:])
	jwkKey := `{"kty":"EC","crv":"P-256","x":"` + x + `","y":"` + y + `","kid":"cpak-1"}`
	other := &genKey(t, elliptic.P384()).PublicKey
	otherPoint, _ := other.Bytes()
	otherJWK := `{"kty":"EC","crv":"P-384","x":"` + base64.RawURLEncoding.EncodeToString(otherPoint[1:49]) + `","y":"` + base64.RawURLEncoding.EncodeToString(otherPoint[49:]) + `"}`

	for _, tt := range []struct {
		name string
		in   string
		n    int
	}{
		{"pem", pemKey, 1},
		{"two pems", pemKey + "\n" + pemKey + "\n", 2},
		{"jwk", jwkKey, 1},
		{"jwk set", `{"keys":[` + otherJWK + `,` + jwkKey + `]}`, 2},
		{"comid", string(ta), 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParseCPAKs([]byte(tt.in), tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != tt.n || !keys[len(keys)-1].Key.Equal(want) {
				t.Fatalf("got %d keys, want %d ending with the vector's CPAK", len(keys), tt.n)
			}
			if _, err := newVerifier(t, keys...).Verify(context.Background(), bundleOf(token)); err != nil {
				t.Errorf("the token does not verify with them: %v", err)
			}
		})
	}

	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER, err := x509.MarshalPKIXPublicKey(edPub)
	if err != nil {
		t.Fatal(err)
	}
	edPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: edDER}))
	for _, in := range []string{
		"",
		"not a key",
		`{"kty":"EC","crv":"P-256","x":"` + x + `","y":"` + y + `","d":"AAAA"}`,
		`{"kty":"EC","crv":"secp256k1","x":"` + x + `","y":"` + y + `"}`,
		`{"kty":"EC","crv":"P-256","x":"` + x + `","y":"` + x + `"}`,
		`{"kty":"OKP","crv":"Ed25519","x":"` + x + `"}`,
		`{"keys":[]}`,
		`{"hello":"world"}`,
		edPEM,
		"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		pemKey + "\ntrailing",
		strings.Replace(string(ta), `"ueid"`, `"uuid"`, 1),
		strings.Replace(string(ta), `"pkix-base64-key"`, `"cose-key"`, 1),
		strings.Replace(string(ta), `"id": {`, `"vendor": "ACME", "id": {`, 1),
		strings.Replace(string(ta), `"AQICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIC"`, `"AQID"`, 1),
		strings.Replace(string(ta), `"environment": {`, `"environment": {"group": {"type": "uuid", "value": "x"},`, 1),
	} {
		if keys, err := ParseCPAKs([]byte(in), "bad"); err == nil {
			t.Errorf("ParseCPAKs(%.60q) = %d keys, want an error", in, len(keys))
		}
	}
}

func TestLifecycleState(t *testing.T) {
	for v, want := range map[uint16]string{
		0x0000: "unknown", 0x00ff: "unknown", 0x0100: "", 0x1000: "assembly-and-test", 0x2001: "cca-platform-rot-provisioning",
		0x3000: "secured", 0x30ff: "secured", 0x3100: "", 0x4000: "non-cca-platform-debug",
		0x5000: "recoverable-cca-platform-debug", 0x6000: "decommissioned", 0x7000: "", 0xffff: "",
	} {
		if got := LifecycleState(v); got != want {
			t.Errorf("LifecycleState(%#04x) = %q, want %q", v, got, want)
		}
	}
}

// TestDebugLifecycle checks that a platform in a debug lifecycle state
// claims debug.
func TestDebugLifecycle(t *testing.T) {
	for lc, debug := range map[int]bool{0x3000: false, 0x4001: true, 0x5000: true, 0x6000: false} {
		b := newBuilder(t, make([]byte, 64))
		b.platform[claimLifecycle] = lc
		res, err := newVerifier(t, b.cpakOf()).Verify(context.Background(), bundleOf(b.build(t)))
		if err != nil {
			t.Fatal(err)
		}
		if res.Claims["debug"] != debug {
			t.Errorf("lifecycle %#x: debug %v, want %v", lc, res.Claims["debug"], debug)
		}
	}
}
