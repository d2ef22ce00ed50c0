package cca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"github.com/kura-cc/kura/internal/captures"
)

// vector returns the captured token and the CPAKs of its CoMID.
func vector(t testing.TB) ([]byte, []CPAK) {
	t.Helper()
	token, _ := captures.CCAToken()
	ta, _, _ := captures.CCACoMIDs()
	cpaks, err := ParseCPAKs(ta, "comid-cca-ta.json")
	if err != nil {
		t.Fatal(err)
	}
	return token, cpaks
}

func newVerifier(t testing.TB, cpaks ...CPAK) *Verifier {
	t.Helper()
	v, err := NewVerifier(Config{CPAKs: cpaks})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func genKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// builder makes CCA tokens signed by test keys: a platform token signed by
// cpak whose challenge is the SHA-512 of bindKey (the RAK unless changed),
// and a realm token signed by rak carrying it as a COSE_Key. Tests change
// the claim maps before build.
type builder struct {
	cpak, rak *ecdsa.PrivateKey
	bindKey   *ecdsa.PublicKey
	platform  map[int64]any
	realm     map[int64]any
}

var (
	testImplID = bytes.Repeat([]byte{0x11}, 32)
	testInstID = append([]byte{0x01}, bytes.Repeat([]byte{0x22}, 32)...)
	testRIM    = bytes.Repeat([]byte{0x33}, 48)
	testREM    = bytes.Repeat([]byte{0x44}, 48)
	testRPV    = bytes.Repeat([]byte{0x55}, 64)
	testBL     = bytes.Repeat([]byte{0x66}, 32)
	testSigner = bytes.Repeat([]byte{0x77}, 32)
)

func newBuilder(t testing.TB, challenge []byte) *builder {
	t.Helper()
	b := &builder{cpak: genKey(t, elliptic.P256()), rak: genKey(t, elliptic.P384())}
	b.bindKey = &b.rak.PublicKey
	b.platform = map[int64]any{
		claimProfile:             "tag:arm.com,2023:cca_platform#1.0.0",
		claimImplementationID:    testImplID,
		claimInstanceID:          testInstID,
		claimPlatformConfig:      []byte{0xcf},
		claimLifecycle:           0x3003,
		claimVerificationService: "https://verifier.example",
		claimPlatformHashAlgID:   "sha-256",
		claimSoftwareComponents: []any{
			map[int64]any{swMeasurementType: "BL", swMeasurementValue: testBL, swVersion: "1.0.0", swSignerID: testSigner, swHashAlgID: "sha-256"},
			map[int64]any{swMeasurementValue: bytes.Repeat([]byte{0x88}, 32), swSignerID: testSigner},
		},
	}
	b.realm = map[int64]any{
		claimProfile:                realmProfile,
		claimChallenge:              challenge,
		claimPersonalizationValue:   testRPV,
		claimInitialMeasurement:     testRIM,
		claimExtensibleMeasurements: []any{testREM, testREM, testREM, testREM},
		claimRealmHashAlgID:         "sha-384",
		claimRAKHashAlgID:           "sha-512",
	}
	return b
}

// coseKey encodes k as a COSE_Key, coordinates padded to the curve size.
func coseKey(t testing.TB, k *ecdsa.PublicKey) []byte {
	t.Helper()
	point, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	n := (len(point) - 1) / 2
	key, err := cose.NewKeyEC2(curveAlgorithm(k), point[1:1+n], point[1+n:], nil)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := key.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func (b *builder) build(t testing.TB) []byte {
	t.Helper()
	if _, ok := b.realm[claimRealmPublicKey]; !ok {
		b.realm[claimRealmPublicKey] = coseKey(t, &b.rak.PublicKey)
	}
	if _, ok := b.platform[claimChallenge]; !ok {
		rak := b.realm[claimRealmPublicKey].([]byte)
		if b.bindKey != &b.rak.PublicKey {
			rak = coseKey(t, b.bindKey)
		}
		sum := sha512.Sum512(rak)
		b.platform[claimChallenge] = sum[:]
	}
	return collection(t, signToken(t, b.cpak, b.platform), signToken(t, b.rak, b.realm))
}

// signToken signs claims as a COSE_Sign1_Tagged with key.
func signToken(t testing.TB, key *ecdsa.PrivateKey, claims map[int64]any) []byte {
	t.Helper()
	payload, err := cbor.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	alg := curveAlgorithm(&key.PublicKey)
	signer, err := cose.NewSigner(alg, key)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cose.Sign1(rand.Reader, signer, cose.Headers{Protected: cose.ProtectedHeader{cose.HeaderLabelAlgorithm: alg}}, payload, nil)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// collection wraps the two tokens in the tag-399 collection.
func collection(t testing.TB, platform, realm []byte) []byte {
	t.Helper()
	data, err := cbor.Marshal(cbor.Tag{Number: tagCollection, Content: map[int64][]byte{keyPlatformToken: platform, keyRealmToken: realm}})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// cpakOf returns the builder's CPAK, tied to its instance.
func (b *builder) cpakOf() CPAK {
	return CPAK{Key: &b.cpak.PublicKey, InstanceID: testInstID, ImplementationID: testImplID, Name: "test cpak"}
}

// replaceOnce replaces the only occurrence of old in data.
func replaceOnce(t testing.TB, data, old, new []byte) []byte {
	t.Helper()
	if n := bytes.Count(data, old); n != 1 {
		t.Fatalf("%x occurs %d times, want once", old, n)
	}
	return bytes.Replace(data, old, new, 1)
}
