package cca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"slices"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"github.com/kura-cc/kura/attestation"
)

// MaxTokenSize bounds an encoded CCA token. Real tokens are 1 to 2 KiB: a
// platform token with a handful of software components and a realm token.
const MaxTokenSize = 64 << 10

// The CCA token collection (Arm CCA Security Model 1.0 §A7.2.2; the
// "legacy" EAT collection of draft-ffm-rats-cca-token): a CBOR map under tag
// 399 whose two entries are byte strings holding COSE_Sign1_Tagged tokens.
const (
	tagCollection    = 399
	keyPlatformToken = 44234 // 0xACCA
	keyRealmToken    = 44241 // 0xACD1
)

// Claim keys of the platform token.
const (
	claimProfile             = 265
	claimChallenge           = 10
	claimImplementationID    = 2396
	claimInstanceID          = 256
	claimPlatformConfig      = 2401
	claimLifecycle           = 2395
	claimSoftwareComponents  = 2399
	claimVerificationService = 2400
	claimPlatformHashAlgID   = 2402
)

// Claim keys of the realm token (besides profile and challenge).
const (
	claimPersonalizationValue   = 44235
	claimRealmHashAlgID         = 44236
	claimRealmPublicKey         = 44237
	claimInitialMeasurement     = 44238
	claimExtensibleMeasurements = 44239
	claimRAKHashAlgID           = 44240
)

// Keys of a software component map in the platform token.
const (
	swMeasurementType  = 1
	swMeasurementValue = 2
	swVersion          = 4
	swSignerID         = 5
	swHashAlgID        = 6
)

// The platform profiles kura reads: the claims it uses mean the same in
// each. A token naming another profile is refused, since its claims might
// not.
var platformProfiles = []string{
	"http://arm.com/CCA-SSD/1.0.0",
	"tag:arm.com,2023:cca_platform#1.0.0",
	"tag:arm.com,2024:cca_platform#2.0.0",
}

// realmProfile is the realm profile whose RAK is a COSE_Key. A realm token
// without a profile claim (RMM 1.0 EAC5 and earlier) carries the RAK as a
// raw uncompressed P-384 point.
const realmProfile = "tag:arm.com,2023:realm#1.0.0"

// Sizes fixed by the token format.
const (
	challengeSize        = 64 // the realm challenge, and kura's report_data
	personalizationSize  = 64
	implementationIDSize = 32
	instanceIDSize       = 33 // a UEID of type RAND: 0x01 then 32 bytes
	ueidTypeRAND         = 0x01
	rawRAKSize           = 97 // 0x04 ‖ X ‖ Y on P-384
	extensibleCount      = 4  // REM0–REM3
	maxSoftwareComps     = 64
)

// hashSizes are the sizes of a measurement or hash: SHA-256, SHA-384,
// SHA-512.
var hashSizes = []int{32, 48, 64}

// Token is a parsed CCA attestation token. Nothing in it is verified:
// Verifier checks the signatures and the binding.
type Token struct {
	Platform PlatformClaims
	Realm    RealmClaims

	platform *cose.Sign1Message
	realm    *cose.Sign1Message
	rak      *ecdsa.PublicKey
}

// PlatformClaims are the claims of the CCA platform token.
type PlatformClaims struct {
	Profile string
	// Challenge is the hash of the realm public key (RAK).
	Challenge []byte
	// ImplementationID names the platform's implementation (its make
	// and model), 32 bytes.
	ImplementationID []byte
	// InstanceID is the platform's UEID, 33 bytes: derived from its CPAK.
	InstanceID []byte
	// Config is the platform's security-relevant configuration.
	Config []byte
	// Lifecycle is the security lifecycle of the platform's root of
	// trust; LifecycleState names its range.
	Lifecycle uint16
	// SoftwareComponents are the measured firmware components.
	SoftwareComponents []SoftwareComponent
	// VerificationService is a hint naming a verifier; optional.
	VerificationService string
	// HashAlgID names the hash of the platform's measurements.
	HashAlgID string
}

// SoftwareComponent is one measured platform firmware component.
type SoftwareComponent struct {
	MeasurementType  string // optional: BL, M1, …
	MeasurementValue []byte
	Version          string // optional
	SignerID         []byte // hash of the key that signed the component
	HashAlgID        string // optional
}

// RealmClaims are the claims of the CCA realm token.
type RealmClaims struct {
	// Profile is empty for tokens from before realm profiles.
	Profile string
	// Challenge is the 64 bytes the realm asked to bind: kura's
	// report_data.
	Challenge []byte
	// PersonalizationValue is the realm personalization value (RPV), set
	// by the realm's owner at creation.
	PersonalizationValue []byte
	// InitialMeasurement is the realm initial measurement (RIM).
	InitialMeasurement []byte
	// ExtensibleMeasurements are the realm extensible measurements
	// REM0–REM3.
	ExtensibleMeasurements [extensibleCount][]byte
	// HashAlgID names the hash of the RIM and REMs.
	HashAlgID string
	// PublicKey is the realm attestation key (RAK), exactly as the token
	// carries it: a COSE_Key, or a raw P-384 point without a profile.
	PublicKey []byte
	// PublicKeyHashAlgID names the hash whose value of PublicKey is the
	// platform challenge.
	PublicKeyHashAlgID string
}

// Lifecycle states (Arm CCA Security Model 1.0, "CCA platform lifecycle"):
// each is a range of 256 lifecycle values.
var lifecycleStates = map[uint16]string{
	0x00: "unknown",
	0x10: "assembly-and-test",
	0x20: "cca-platform-rot-provisioning",
	0x30: "secured",
	0x40: "non-cca-platform-debug",
	0x50: "recoverable-cca-platform-debug",
	0x60: "decommissioned",
}

// LifecycleState names the range lifecycle v falls in, or "" when v is in
// none.
func LifecycleState(v uint16) string {
	return lifecycleStates[v>>8]
}

// decMode decodes every CBOR item of a token: no duplicate map keys, no
// indefinite lengths, bounded nesting and sizes.
var decMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		MaxNestedLevels:  16,
		MaxArrayElements: 1024,
		MaxMapPairs:      1024,
		IntDec:           cbor.IntDecConvertSigned,
	}.DecMode()
	if err != nil {
		panic(err) // constant options
	}
	return dm
}()

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", attestation.ErrMalformed, fmt.Sprintf(format, args...))
}

// ParseToken decodes a CCA attestation token and checks the shape of every
// claim kura reads. It verifies nothing; every error wraps
// attestation.ErrMalformed.
func ParseToken(data []byte) (*Token, error) {
	if len(data) > MaxTokenSize {
		return nil, malformed("token is %d bytes, limit is %d", len(data), MaxTokenSize)
	}
	var tag cbor.RawTag
	if err := decMode.Unmarshal(data, &tag); err != nil {
		return nil, malformed("token is not a tagged CBOR item: %v", err)
	}
	if tag.Number != tagCollection {
		return nil, malformed("token has CBOR tag %d, want %d (CCA token collection)", tag.Number, tagCollection)
	}
	var coll map[int64]cbor.RawMessage
	if err := decMode.Unmarshal(tag.Content, &coll); err != nil {
		return nil, malformed("token collection: %v", err)
	}
	for k := range coll {
		if k != keyPlatformToken && k != keyRealmToken {
			return nil, malformed("token collection has an unknown entry %d", k)
		}
	}
	t := &Token{}
	var err error
	var payload []byte
	if t.platform, payload, err = sign1(coll, keyPlatformToken, "platform"); err != nil {
		return nil, err
	}
	if err := t.Platform.decode(payload); err != nil {
		return nil, err
	}
	if t.realm, payload, err = sign1(coll, keyRealmToken, "realm"); err != nil {
		return nil, err
	}
	if err := t.Realm.decode(payload); err != nil {
		return nil, err
	}
	if t.rak, err = t.Realm.publicKey(); err != nil {
		return nil, err
	}
	return t, nil
}

// sign1 decodes the collection entry key: a byte string holding a
// COSE_Sign1_Tagged with an attached payload.
func sign1(coll map[int64]cbor.RawMessage, key int64, name string) (*cose.Sign1Message, []byte, error) {
	raw, ok := coll[key]
	if !ok {
		return nil, nil, malformed("token collection has no %s token (%d)", name, key)
	}
	if majorType(raw) != 2 {
		return nil, nil, malformed("%s token entry is not a byte string", name)
	}
	var b []byte
	if err := decMode.Unmarshal(raw, &b); err != nil {
		return nil, nil, malformed("%s token entry: %v", name, err)
	}
	// A COSE_Sign1_Tagged begins with tag 18 (0xd2) and a 4-array (0x84).
	if len(b) < 2 || b[0] != 0xd2 || b[1] != 0x84 {
		return nil, nil, malformed("%s token is not a COSE_Sign1_Tagged (tag 18)", name)
	}
	// Check well-formedness with kura's limits before go-cose decodes it.
	if err := decMode.Wellformed(b); err != nil {
		return nil, nil, malformed("%s token: %v", name, err)
	}
	msg, err := unmarshalSign1(b)
	if err != nil {
		return nil, nil, malformed("%s token: COSE_Sign1: %v", name, err)
	}
	if msg.Payload == nil {
		return nil, nil, malformed("%s token has a detached payload", name)
	}
	alg, err := msg.Headers.Protected.Algorithm()
	if err != nil {
		return nil, nil, malformed("%s token's protected header names no signature algorithm: %v", name, err)
	}
	switch alg {
	case cose.AlgorithmES256, cose.AlgorithmES384, cose.AlgorithmES512:
	default:
		return nil, nil, malformed("%s token is signed with %v; kura accepts ES256, ES384 and ES512", name, alg)
	}
	if _, ok := msg.Headers.Protected[cose.HeaderLabelCritical]; ok {
		return nil, nil, malformed("%s token has critical headers, which kura does not understand", name)
	}
	return msg, msg.Payload, nil
}

// unmarshalSign1 decodes a COSE_Sign1_Tagged with go-cose, turning a panic
// of the library on hostile input into an error: kura never panics on
// input, and go-cose has panicked on crafted keys before.
func unmarshalSign1(b []byte) (msg *cose.Sign1Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("undecodable: %v", r)
		}
	}()
	msg = cose.NewSign1Message()
	if err := msg.UnmarshalCBOR(b); err != nil {
		return nil, err
	}
	return msg, nil
}

func majorType(raw []byte) byte {
	if len(raw) == 0 {
		return 0xff
	}
	return raw[0] >> 5
}

// claimSet reads typed claims from a decoded claims map.
type claimSet struct {
	token string
	m     map[int64]cbor.RawMessage
}

func decodeClaims(token string, payload []byte) (claimSet, error) {
	c := claimSet{token: token}
	if majorType(payload) != 5 {
		return c, malformed("%s is not a CBOR map", token)
	}
	if err := decMode.Unmarshal(payload, &c.m); err != nil {
		return c, malformed("%s: %v", token, err)
	}
	return c, nil
}

// bytes returns the byte-string claim key, which must be present and, when
// sizes are given, of one of them.
func (c claimSet) bytes(key int64, name string, sizes ...int) ([]byte, error) {
	raw, ok := c.m[key]
	if !ok {
		return nil, malformed("%s has no %s claim (%d)", c.token, name, key)
	}
	return decodeBytes(raw, c.token+" "+name, sizes...)
}

func decodeBytes(raw cbor.RawMessage, what string, sizes ...int) ([]byte, error) {
	if majorType(raw) != 2 {
		return nil, malformed("%s is not a byte string", what)
	}
	var b []byte
	if err := decMode.Unmarshal(raw, &b); err != nil {
		return nil, malformed("%s: %v", what, err)
	}
	if len(sizes) > 0 && !slices.Contains(sizes, len(b)) {
		return nil, malformed("%s is %d bytes, want %s", what, len(b), sizeList(sizes))
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

func sizeList(sizes []int) string {
	switch len(sizes) {
	case 1:
		return fmt.Sprint(sizes[0])
	case 3:
		return fmt.Sprintf("%d, %d or %d", sizes[0], sizes[1], sizes[2])
	}
	return fmt.Sprint(sizes)
}

// text returns the text-string claim key; ok is false when it is absent.
func (c claimSet) text(key int64, name string) (s string, ok bool, err error) {
	raw, ok := c.m[key]
	if !ok {
		return "", false, nil
	}
	s, err = decodeText(raw, c.token+" "+name)
	return s, true, err
}

func decodeText(raw cbor.RawMessage, what string) (string, error) {
	if majorType(raw) != 3 {
		return "", malformed("%s is not a text string", what)
	}
	var s string
	if err := decMode.Unmarshal(raw, &s); err != nil {
		return "", malformed("%s: %v", what, err)
	}
	return s, nil
}

// mandatoryText is text for a claim that must be present and not empty.
func (c claimSet) mandatoryText(key int64, name string) (string, error) {
	s, ok, err := c.text(key, name)
	switch {
	case err != nil:
		return "", err
	case !ok:
		return "", malformed("%s has no %s claim (%d)", c.token, name, key)
	case s == "":
		return "", malformed("%s's %s claim is empty", c.token, name)
	}
	return s, nil
}

func (p *PlatformClaims) decode(payload []byte) error {
	c, err := decodeClaims("platform token", payload)
	if err != nil {
		return err
	}
	if p.Profile, err = c.mandatoryText(claimProfile, "profile"); err != nil {
		return err
	}
	if !slices.Contains(platformProfiles, p.Profile) {
		return malformed("platform token profile %q is not one kura reads", p.Profile)
	}
	if p.Challenge, err = c.bytes(claimChallenge, "challenge", hashSizes...); err != nil {
		return err
	}
	if p.ImplementationID, err = c.bytes(claimImplementationID, "implementation id", implementationIDSize); err != nil {
		return err
	}
	if p.InstanceID, err = c.bytes(claimInstanceID, "instance id", instanceIDSize); err != nil {
		return err
	}
	if p.InstanceID[0] != ueidTypeRAND {
		return malformed("platform instance id is a UEID of type %#x, want %#x (RAND)", p.InstanceID[0], ueidTypeRAND)
	}
	if p.Config, err = c.bytes(claimPlatformConfig, "config"); err != nil {
		return err
	}
	raw, ok := c.m[claimLifecycle]
	if !ok {
		return malformed("platform token has no lifecycle claim (%d)", claimLifecycle)
	}
	var lc uint64
	if majorType(raw) != 0 || decMode.Unmarshal(raw, &lc) != nil || lc > 0xffff {
		return malformed("platform lifecycle is not an unsigned 16-bit integer")
	}
	p.Lifecycle = uint16(lc)
	if LifecycleState(p.Lifecycle) == "" {
		return malformed("platform lifecycle %#04x is in no lifecycle state", p.Lifecycle)
	}
	if p.SoftwareComponents, err = decodeSoftwareComponents(c.m[claimSoftwareComponents]); err != nil {
		return err
	}
	if p.VerificationService, _, err = c.text(claimVerificationService, "verification service"); err != nil {
		return err
	}
	if p.HashAlgID, err = c.mandatoryText(claimPlatformHashAlgID, "hash algorithm id"); err != nil {
		return err
	}
	return nil
}

func decodeSoftwareComponents(raw cbor.RawMessage) ([]SoftwareComponent, error) {
	if raw == nil {
		return nil, malformed("platform token has no software components claim (%d)", claimSoftwareComponents)
	}
	if majorType(raw) != 4 {
		return nil, malformed("platform software components are not an array")
	}
	var items []cbor.RawMessage
	if err := decMode.Unmarshal(raw, &items); err != nil {
		return nil, malformed("platform software components: %v", err)
	}
	if len(items) == 0 || len(items) > maxSoftwareComps {
		return nil, malformed("platform token has %d software components, want 1 to %d", len(items), maxSoftwareComps)
	}
	out := make([]SoftwareComponent, len(items))
	for i, item := range items {
		c, err := decodeClaims(fmt.Sprintf("platform software component %d", i), item)
		if err != nil {
			return nil, err
		}
		sc := &out[i]
		if sc.MeasurementType, _, err = c.text(swMeasurementType, "measurement type"); err != nil {
			return nil, err
		}
		if sc.MeasurementValue, err = c.bytes(swMeasurementValue, "measurement value", hashSizes...); err != nil {
			return nil, err
		}
		if sc.Version, _, err = c.text(swVersion, "version"); err != nil {
			return nil, err
		}
		if sc.SignerID, err = c.bytes(swSignerID, "signer id", hashSizes...); err != nil {
			return nil, err
		}
		if sc.HashAlgID, _, err = c.text(swHashAlgID, "hash algorithm id"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *RealmClaims) decode(payload []byte) error {
	c, err := decodeClaims("realm token", payload)
	if err != nil {
		return err
	}
	profile, ok, err := c.text(claimProfile, "profile")
	if err != nil {
		return err
	}
	if ok && profile != realmProfile {
		return malformed("realm token profile %q is not one kura reads (want %q or none)", profile, realmProfile)
	}
	r.Profile = profile
	if r.Challenge, err = c.bytes(claimChallenge, "challenge", challengeSize); err != nil {
		return err
	}
	if r.PersonalizationValue, err = c.bytes(claimPersonalizationValue, "personalization value", personalizationSize); err != nil {
		return err
	}
	if r.InitialMeasurement, err = c.bytes(claimInitialMeasurement, "initial measurement", hashSizes...); err != nil {
		return err
	}
	raw, ok := c.m[claimExtensibleMeasurements]
	if !ok {
		return malformed("realm token has no extensible measurements claim (%d)", claimExtensibleMeasurements)
	}
	var rems []cbor.RawMessage
	if majorType(raw) != 4 || decMode.Unmarshal(raw, &rems) != nil || len(rems) != extensibleCount {
		return malformed("realm extensible measurements are not an array of %d", extensibleCount)
	}
	for i, rem := range rems {
		if r.ExtensibleMeasurements[i], err = decodeBytes(rem, fmt.Sprintf("realm extensible measurement %d", i), hashSizes...); err != nil {
			return err
		}
	}
	if r.HashAlgID, err = c.mandatoryText(claimRealmHashAlgID, "hash algorithm id"); err != nil {
		return err
	}
	if r.PublicKey, err = c.bytes(claimRealmPublicKey, "public key"); err != nil {
		return err
	}
	if r.PublicKeyHashAlgID, err = c.mandatoryText(claimRAKHashAlgID, "public key hash algorithm id"); err != nil {
		return err
	}
	if _, err := newHash(r.PublicKeyHashAlgID); err != nil {
		return malformed("realm public key hash algorithm: %v", err)
	}
	return nil
}

// publicKey decodes the RAK: a COSE_Key (EC2) under the realm profile, a
// raw uncompressed P-384 point without one.
func (r *RealmClaims) publicKey() (*ecdsa.PublicKey, error) {
	if r.Profile == "" {
		if len(r.PublicKey) != rawRAKSize {
			return nil, malformed("realm public key is %d bytes, want a %d-byte P-384 point", len(r.PublicKey), rawRAKSize)
		}
		k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P384(), r.PublicKey)
		if err != nil {
			return nil, malformed("realm public key: %v", err)
		}
		return k, nil
	}
	return parseCOSEKey(r.PublicKey)
}

// COSE_Key labels and values (RFC 9052 §7, RFC 9053 §7.1).
const (
	coseKeyKty   = 1
	coseKeyAlg   = 3
	coseKeyCrv   = -1
	coseKeyX     = -2
	coseKeyY     = -3
	coseKeyD     = -4
	coseKtyEC2   = 2
	coseCrvP256  = 1
	coseCrvP384  = 2
	coseCrvP521  = 3
	maxKeyLabels = 16
)

// parseCOSEKey reads an EC2 COSE_Key holding a public key with both
// coordinates. kura decodes it itself, strictly: go-cose's decoder
// trusts the types of some parameters.
func parseCOSEKey(data []byte) (*ecdsa.PublicKey, error) {
	if majorType(data) != 5 {
		return nil, malformed("realm public key is not a COSE_Key")
	}
	var m map[int64]cbor.RawMessage
	if err := decMode.Unmarshal(data, &m); err != nil {
		return nil, malformed("realm public key: COSE_Key: %v", err)
	}
	if len(m) > maxKeyLabels {
		return nil, malformed("realm public key: COSE_Key has %d parameters", len(m))
	}
	integer := func(label int64) (int64, bool, error) {
		raw, ok := m[label]
		if !ok {
			return 0, false, nil
		}
		var v int64
		if mt := majorType(raw); (mt != 0 && mt != 1) || decMode.Unmarshal(raw, &v) != nil {
			return 0, true, malformed("realm public key: COSE_Key parameter %d is not an integer", label)
		}
		return v, true, nil
	}
	kty, ok, err := integer(coseKeyKty)
	if err != nil {
		return nil, err
	}
	if !ok || kty != coseKtyEC2 {
		return nil, malformed("realm public key: COSE_Key type is not EC2 (%d)", coseKtyEC2)
	}
	crv, _, err := integer(coseKeyCrv)
	if err != nil {
		return nil, err
	}
	var curve elliptic.Curve
	var alg cose.Algorithm
	switch crv {
	case coseCrvP256:
		curve, alg = elliptic.P256(), cose.AlgorithmES256
	case coseCrvP384:
		curve, alg = elliptic.P384(), cose.AlgorithmES384
	case coseCrvP521:
		curve, alg = elliptic.P521(), cose.AlgorithmES512
	default:
		return nil, malformed("realm public key: COSE_Key curve %d is not P-256, P-384 or P-521", crv)
	}
	if a, ok, err := integer(coseKeyAlg); err != nil {
		return nil, err
	} else if ok && cose.Algorithm(a) != alg {
		return nil, malformed("realm public key: COSE_Key algorithm %d is not %v, its curve's", a, alg)
	}
	if _, ok := m[coseKeyD]; ok {
		return nil, malformed("realm public key carries a private key")
	}
	size := (curve.Params().BitSize + 7) / 8
	x, err := decodeBytes(m[coseKeyX], "realm public key x", size)
	if err != nil {
		return nil, err
	}
	y, err := decodeBytes(m[coseKeyY], "realm public key y", size) // a bool here would be a compressed point
	if err != nil {
		return nil, err
	}
	k, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, malformed("realm public key: %v", err)
	}
	return k, nil
}

// newHash returns the hash a CCA hash algorithm id names (the names of the
// IANA "Named Information Hash Algorithm" registry).
func newHash(id string) (hash.Hash, error) {
	switch id {
	case "sha-256":
		return sha256.New(), nil
	case "sha-384":
		return sha512.New384(), nil
	case "sha-512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("%q is not sha-256, sha-384 or sha-512", id)
}

// rakHash returns the hash of the realm public key that the platform
// challenge must hold.
func (r *RealmClaims) rakHash() []byte {
	h, err := newHash(r.PublicKeyHashAlgID)
	if err != nil {
		return nil // refused by decode
	}
	h.Write(r.PublicKey)
	return h.Sum(nil)
}
