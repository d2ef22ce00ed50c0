package cca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/veraison/go-cose"

	"github.com/kura-cc/kura/attestation"
)

// Names of the checks a Verifier records on the Result, in order.
const (
	checkParse    = "token parse"
	checkPlatform = "platform signature"
	checkRealm    = "realm signature"
	checkBinding  = "realm key binding"
)

// Config configures a Verifier.
type Config struct {
	// CPAKs are the trusted platform attestation keys (LoadCPAKs reads
	// them from files). With none, every token fails with
	// attestation.ErrUntrustedRoot.
	CPAKs []CPAK
	// Logger receives one record per verification with its outcome. Nil
	// discards.
	Logger *slog.Logger
}

// Verifier verifies CCA attestation tokens. It implements
// attestation.Verifier and is safe for concurrent use.
type Verifier struct {
	cpaks []CPAK
	log   *slog.Logger
}

// NewVerifier returns a Verifier trusting cfg.CPAKs.
func NewVerifier(cfg Config) (*Verifier, error) {
	for i, c := range cfg.CPAKs {
		switch {
		case c.Key == nil:
			return nil, fmt.Errorf("cca: cpak %d (%s) has no key", i, c.Name)
		case len(c.InstanceID) != 0 && len(c.InstanceID) != instanceIDSize:
			return nil, fmt.Errorf("cca: cpak %d (%s): instance id is %d bytes, want %d", i, c.Name, len(c.InstanceID), instanceIDSize)
		case len(c.ImplementationID) != 0 && len(c.ImplementationID) != implementationIDSize:
			return nil, fmt.Errorf("cca: cpak %d (%s): implementation id is %d bytes, want %d", i, c.Name, len(c.ImplementationID), implementationIDSize)
		}
		if _, err := c.Key.ECDH(); err != nil {
			return nil, fmt.Errorf("cca: cpak %d (%s): %v", i, c.Name, err)
		}
	}
	v := &Verifier{cpaks: append([]CPAK(nil), cfg.CPAKs...), log: cfg.Logger}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	return v, nil
}

// NewBundle wraps a raw CCA token in an evidence bundle without runtime
// data, after checking that it parses.
func NewBundle(token []byte) (*attestation.Bundle, error) {
	if _, err := ParseToken(token); err != nil {
		return nil, err
	}
	return &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.CCA, Evidence: bytes.Clone(token)}, nil
}

// Verify checks b's token and returns its claims. The Result's ReportData
// is the realm challenge. On failure the error wraps one of attestation's
// sentinels and the Result lists the checks made so far.
func (v *Verifier) Verify(ctx context.Context, b *attestation.Bundle) (*attestation.Result, error) {
	res := &attestation.Result{TEE: attestation.CCA}
	t, cpak, err := v.verify(b, res)
	if err != nil {
		v.log.LogAttrs(ctx, slog.LevelWarn, "cca evidence rejected", slog.String("reason", err.Error()))
		return res, err
	}
	res.ReportData = bytes.Clone(t.Realm.Challenge)
	res.Claims = claims(t)
	v.log.LogAttrs(ctx, slog.LevelInfo, "cca evidence verified",
		slog.String("cpak", cpak.Name),
		slog.String("implementation_id", hex.EncodeToString(t.Platform.ImplementationID)),
		slog.String("instance_id", hex.EncodeToString(t.Platform.InstanceID)),
		slog.String("rim", hex.EncodeToString(t.Realm.InitialMeasurement)))
	return res, nil
}

func (v *Verifier) verify(b *attestation.Bundle, res *attestation.Result) (*Token, *CPAK, error) {
	if b == nil {
		return nil, nil, res.Fail(checkParse, fmt.Errorf("%w: no bundle", attestation.ErrMalformed))
	}
	if b.TEE != attestation.CCA {
		return nil, nil, res.Fail(checkParse, fmt.Errorf("%w: bundle is for tee %q, not %q", attestation.ErrMalformed, b.TEE, attestation.CCA))
	}
	t, err := ParseToken(b.Evidence)
	if err != nil {
		return nil, nil, res.Fail(checkParse, err)
	}
	rp := t.Realm.Profile
	if rp == "" {
		rp = "none (raw RAK)"
	}
	res.Pass(checkParse, fmt.Sprintf("platform profile %s, %d software components; realm profile %s",
		t.Platform.Profile, len(t.Platform.SoftwareComponents), rp))

	cpak, err := v.verifyPlatform(t)
	if err != nil {
		return nil, nil, res.Fail(checkPlatform, err)
	}
	alg, _ := t.platform.Headers.Protected.Algorithm()
	res.Pass(checkPlatform, fmt.Sprintf("%v signature by CPAK %s (%s, sha256:%s)", alg, cpak.Name, curveName(cpak.Key), cpak.Thumbprint()))

	if err := verifySign1(t.realm, t.rak); err != nil {
		return nil, nil, res.Fail(checkRealm, err)
	}
	alg, _ = t.realm.Headers.Protected.Algorithm()
	res.Pass(checkRealm, fmt.Sprintf("%v signature by the realm attestation key (%s) the realm token carries", alg, curveName(t.rak)))

	if want := t.Realm.rakHash(); !bytes.Equal(t.Platform.Challenge, want) {
		return nil, nil, res.Fail(checkBinding, fmt.Errorf("%w: the platform challenge %x is not the %s of the realm public key (%x): the platform did not vouch for this realm token",
			attestation.ErrBadSignature, t.Platform.Challenge, t.Realm.PublicKeyHashAlgID, want))
	}
	res.Pass(checkBinding, fmt.Sprintf("platform challenge = %s(realm public key)", t.Realm.PublicKeyHashAlgID))
	return t, cpak, nil
}

// verifyPlatform checks the platform token's signature with the CPAKs that
// may sign for its instance and implementation, and returns the one that
// verifies. No candidate is an untrusted root; candidates none of which
// verifies is a bad signature.
func (v *Verifier) verifyPlatform(t *Token) (*CPAK, error) {
	var candidates []*CPAK
	for i := range v.cpaks {
		if v.cpaks[i].matches(t.Platform.InstanceID, t.Platform.ImplementationID) {
			candidates = append(candidates, &v.cpaks[i])
		}
	}
	if len(candidates) == 0 {
		if len(v.cpaks) == 0 {
			return nil, fmt.Errorf("%w: no CCA platform attestation key (CPAK) is configured", attestation.ErrUntrustedRoot)
		}
		return nil, fmt.Errorf("%w: none of the %d configured CPAKs is for platform instance %x (implementation %x)",
			attestation.ErrUntrustedRoot, len(v.cpaks), t.Platform.InstanceID, t.Platform.ImplementationID)
	}
	var last error
	for _, c := range candidates {
		if last = verifySign1(t.platform, c.Key); last == nil {
			return c, nil
		}
	}
	if len(candidates) == 1 {
		return nil, last
	}
	return nil, fmt.Errorf("%w: the platform token's signature verifies with none of the %d CPAKs that may sign for instance %x",
		attestation.ErrBadSignature, len(candidates), t.Platform.InstanceID)
}

// verifySign1 checks msg's ECDSA signature with key. The protected header
// must name the algorithm of key's curve.
func verifySign1(msg *cose.Sign1Message, key *ecdsa.PublicKey) (err error) {
	defer func() { // as in unmarshalSign1
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: signature check failed: %v", attestation.ErrBadSignature, r)
		}
	}()
	alg, err := msg.Headers.Protected.Algorithm()
	if err != nil {
		return fmt.Errorf("%w: protected header: %v", attestation.ErrMalformed, err)
	}
	if want := curveAlgorithm(key); alg != want {
		return fmt.Errorf("%w: the token is signed with %v but the key is %s (%v)", attestation.ErrBadSignature, alg, curveName(key), want)
	}
	verifier, err := cose.NewVerifier(alg, key)
	if err != nil {
		return fmt.Errorf("%w: %v", attestation.ErrBadSignature, err)
	}
	if err := msg.Verify(nil, verifier); err != nil {
		if errors.Is(err, cose.ErrVerification) {
			return fmt.Errorf("%w: %v signature does not verify", attestation.ErrBadSignature, alg)
		}
		return fmt.Errorf("%w: %v", attestation.ErrBadSignature, err)
	}
	return nil
}

func curveAlgorithm(k *ecdsa.PublicKey) cose.Algorithm {
	switch k.Curve.Params().BitSize {
	case 256:
		return cose.AlgorithmES256
	case 384:
		return cose.AlgorithmES384
	case 521:
		return cose.AlgorithmES512
	}
	return cose.AlgorithmReserved
}

func curveName(k *ecdsa.PublicKey) string { return k.Curve.Params().Name }

var _ attestation.Verifier = (*Verifier)(nil)
