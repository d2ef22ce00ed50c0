package collab

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/kura-cc/kura/token"
)

// MaxVerifiers bounds a manifest's verifier list.
const MaxVerifiers = 16

// PinnedKeys returns the verifier's pinned key (Key or JWK) as a key set
// whose one key's kid is its RFC 7638 thumbprint, as kura verifiers name
// their keys; nil when the verifier publishes its keys at JWKSURL instead.
func (v *Verifier) PinnedKeys() (jwk.Set, error) {
	var pub *ecdsa.PublicKey
	switch {
	case v.Key != "":
		block, rest := pem.Decode([]byte(v.Key))
		if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) > 0 {
			return nil, errors.New("want one PEM PUBLIC KEY block")
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		ec, ok := k.(*ecdsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("a %T, want an ECDSA P-256 or P-384 key", k)
		}
		pub = ec
	case len(v.JWK) > 0:
		k, err := jwk.ParseKey(v.JWK)
		if err != nil {
			return nil, err
		}
		if private, err := jwk.IsPrivateKey(k); err != nil || private {
			return nil, errors.New("not an EC public key (a private key, or another type): pin the verifier's public key")
		}
		pub = &ecdsa.PublicKey{}
		if err := jwk.Export(k, pub); err != nil {
			return nil, fmt.Errorf("want an EC P-256 or P-384 public key: %w", err)
		}
	default:
		return nil, nil
	}
	if pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384() {
		return nil, errors.New("want an ECDSA P-256 or P-384 key")
	}
	return token.PublicKeySet(pub)
}

// verifiers checks the verifier list: required from format 2 on, absent
// before.
func (v *validator) verifiers(m *Manifest) {
	if m.Format == LegacyFormatVersion {
		if len(m.Verifiers) > 0 {
			v.errf("verifiers", "a verifier list needs kura_manifest: %d", FormatVersion)
		}
		return
	}
	switch {
	case len(m.Verifiers) == 0:
		v.errf("verifiers", "none: list the attestation verifiers the parties accept (name, and one of jwks_url, key or jwk)")
	case len(m.Verifiers) > MaxVerifiers:
		v.errf("verifiers", "%d verifiers, at most %d", len(m.Verifiers), MaxVerifiers)
	}
	names := map[string]bool{}
	sources := map[string]string{}
	for i := range m.Verifiers {
		ver := &m.Verifiers[i]
		path := fmt.Sprintf("verifiers[%d]", i)
		if !collabIDRE.MatchString(ver.Name) {
			v.errf(path+".name", "%q: want 1 to 63 of a-z 0-9 . _ - starting with a letter or digit", ver.Name)
		} else if names[ver.Name] {
			v.errf(path+".name", "%q appears twice", ver.Name)
		}
		names[ver.Name] = true
		if ver.URL != "" && !httpURL(ver.URL) {
			v.errf(path+".url", "%q: want an http or https URL", ver.URL)
		}
		given := 0
		for _, set := range []bool{ver.JWKSURL != "", ver.Key != "", len(ver.JWK) > 0} {
			if set {
				given++
			}
		}
		if given != 1 {
			v.errf(path, "give exactly one of jwks_url, key (PEM) or jwk")
			continue
		}
		source := ver.JWKSURL
		if ver.JWKSURL != "" {
			if !httpURL(ver.JWKSURL) {
				v.errf(path+".jwks_url", "%q: want an http or https URL", ver.JWKSURL)
				continue
			}
		} else {
			field := path + ".key"
			if len(ver.JWK) > 0 {
				field = path + ".jwk"
			}
			set, err := ver.PinnedKeys()
			if err != nil {
				v.errf(field, "%v", err)
				continue
			}
			k, _ := set.Key(0)
			source = token.KeyIDOf(k)
		}
		if other, ok := sources[source]; ok {
			v.errf(path, "same keys as verifier %q", other)
		}
		sources[source] = ver.Name
	}
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// checkNew refuses a manifest in the legacy format where a new one is
// made: a new collaboration, a new version, or a manifest someone wrote.
func (m *Manifest) checkNew() error {
	if m.Format == LegacyFormatVersion {
		return fmt.Errorf("%w: kura_manifest: %d is read but no longer written: write kura_manifest: %d and list the verifiers the parties accept under verifiers: (docs/spec/manifest.md §2.3)", ErrInvalidManifest, LegacyFormatVersion, FormatVersion)
	}
	return nil
}
