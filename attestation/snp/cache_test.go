package snp

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/captures"
)

// chainCached reports whether res says the chain came from the cache.
func chainCached(t *testing.T, res *attestation.Result) bool {
	t.Helper()
	for _, c := range res.Checks {
		if c.Name == checkChain {
			return strings.Contains(c.Detail, "cached")
		}
	}
	t.Fatalf("no %q check in %+v", checkChain, res.Checks)
	return false
}

// TestChainCacheRekeys checks that the chain cache is used only for the
// same certificate bytes, roots and a time inside the chain's validity, and
// never spares the report signature.
func TestChainCacheRekeys(t *testing.T) {
	ctx := context.Background()
	report, vcek, askArk := captures.SNPMilan()
	verify := func(t *testing.T, v *Verifier, b *attestation.Bundle) (*attestation.Result, error) {
		t.Helper()
		return v.Verify(ctx, b)
	}
	mustVerify := func(t *testing.T, v *Verifier, b *attestation.Bundle, wantCached bool) {
		t.Helper()
		res, err := verify(t, v, b)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if got := chainCached(t, res); got != wantCached {
			t.Fatalf("chain cached = %v, want %v", got, wantCached)
		}
	}

	t.Run("other certificate bytes", func(t *testing.T) {
		v := newTestVerifier(t, milanTime, nil)
		mustVerify(t, v, milanBundle(t), false)
		mustVerify(t, v, milanBundle(t), true)
		// The same certificates encoded differently are verified anew.
		b := milanBundle(t)
		b.Certs = append(append([]byte(nil), askArk...), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: vcek})...)
		mustVerify(t, v, b, false)
		mustVerify(t, v, b, true)
		if n := v.chains.len(); n != 2 {
			t.Errorf("%d chains cached, want 2", n)
		}
	})

	t.Run("tampered certificate after a cached chain", func(t *testing.T) {
		v := newTestVerifier(t, milanTime, nil)
		mustVerify(t, v, milanBundle(t), false)
		bad := append([]byte(nil), vcek...)
		bad[len(bad)-10] ^= 1 // in the VCEK's signature
		b := milanBundle(t)
		b.Certs = append(bad, askArk...)
		if _, err := verify(t, v, b); !errors.Is(err, attestation.ErrBadSignature) {
			t.Fatalf("tampered VCEK: %v, want ErrBadSignature", err)
		}
	})

	t.Run("tampered report with a cached chain", func(t *testing.T) {
		v := newTestVerifier(t, milanTime, nil)
		mustVerify(t, v, milanBundle(t), false)
		for _, off := range []int{0x50, 0x90, 0x187, 0x2a0} { // report data, measurement, reported TCB, signature
			b := milanBundle(t)
			b.Evidence[off] ^= 1
			res, err := verify(t, v, b)
			if !errors.Is(err, attestation.ErrBadSignature) {
				t.Fatalf("byte %#x flipped: %v, want ErrBadSignature", off, err)
			}
			if res.Claims != nil {
				t.Fatalf("byte %#x flipped: claims on failure", off)
			}
		}
		// The hex encoding of the same report shares the cached chain.
		b := milanBundle(t)
		b.Evidence = []byte(strings.ToUpper(hex.EncodeToString(report)))
		mustVerify(t, v, b, true)
	})

	t.Run("other roots", func(t *testing.T) {
		v := newTestVerifier(t, milanTime, nil)
		mustVerify(t, v, milanBundle(t), false)
		// Roots loaded again are other roots: the chain is verified anew.
		roots, err := loadRoots()
		if err != nil {
			t.Fatal(err)
		}
		v.roots = roots
		mustVerify(t, v, milanBundle(t), false)
		// Roots that do not cover the chain refuse it even though it is
		// cached under the same key.
		selfARK, selfKey := selfSigned(t, "ARK-Milan", nil, nil)
		selfASK, _ := selfSigned(t, "SEV-Milan", selfARK, selfKey)
		v.roots = map[string]*productRoots{"Milan": {line: "Milan", ark: selfARK, ask: selfASK, asvk: selfASK}}
		if _, err := verify(t, v, milanBundle(t)); !errors.Is(err, attestation.ErrUntrustedRoot) {
			t.Fatalf("cached chain under other roots: %v, want ErrUntrustedRoot", err)
		}
	})

	t.Run("time outside the chain's validity", func(t *testing.T) {
		now := milanTime
		v, err := NewVerifier(Config{Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		mustVerify(t, v, milanBundle(t), false)
		now = milanTime.Add(24 * time.Hour) // still inside: cached
		mustVerify(t, v, milanBundle(t), true)
		for _, at := range []time.Time{
			time.Date(2022, time.September, 1, 0, 0, 0, 0, time.UTC), // before the VCEK
			time.Date(2029, time.October, 1, 0, 0, 0, 0, time.UTC),   // after it
		} {
			now = at
			if _, err := verify(t, v, milanBundle(t)); !errors.Is(err, attestation.ErrCollateralExpired) {
				t.Fatalf("at %s: %v, want ErrCollateralExpired", at, err)
			}
		}
	})

	t.Run("fetched vcek", func(t *testing.T) {
		g := &mapGetter{bodies: map[string][]byte{milanVCEKURL: vcek}}
		v := newTestVerifier(t, milanTime, g)
		b := milanBundle(t)
		b.Certs = askArk
		mustVerify(t, v, b, false)
		mustVerify(t, v, b, true)
		if len(g.asked) != 2 {
			t.Errorf("getter asked %d times, want once per verification", len(g.asked))
		}
		// A different VCEK from the getter is not the cached chain.
		bad := append([]byte(nil), vcek...)
		bad[len(bad)-10] ^= 1
		g.bodies[milanVCEKURL] = bad
		if _, err := verify(t, v, b); !errors.Is(err, attestation.ErrBadSignature) {
			t.Fatalf("other fetched VCEK: %v, want ErrBadSignature", err)
		}
	})
}

func TestChainKey(t *testing.T) {
	base := newChainKey(abi.VcekReportSigner, "Milan", []byte("certs"), nil)
	for name, k := range map[string]chainKey{
		"signer":      newChainKey(abi.VlekReportSigner, "Milan", []byte("certs"), nil),
		"line":        newChainKey(abi.VcekReportSigner, "Genoa", []byte("certs"), nil),
		"no line":     newChainKey(abi.VcekReportSigner, "", []byte("certs"), nil),
		"certs":       newChainKey(abi.VcekReportSigner, "Milan", []byte("certz"), nil),
		"fetched":     newChainKey(abi.VcekReportSigner, "Milan", []byte("certs"), []byte("vcek")),
		"boundary":    newChainKey(abi.VcekReportSigner, "Milanc", []byte("erts"), nil),
		"moved bytes": newChainKey(abi.VcekReportSigner, "Milan", nil, []byte("certs")),
	} {
		if k == base {
			t.Errorf("%s: same key", name)
		}
	}
}

func TestChainCacheBounded(t *testing.T) {
	var c chainCache
	ch := &chain{line: "Milan", notAfter: time.Now().Add(time.Hour)}
	for i := range maxCachedChains + 10 {
		c.put(newChainKey(abi.VcekReportSigner, "Milan", []byte{byte(i), byte(i >> 8)}, nil), ch)
	}
	if n := c.len(); n != maxCachedChains {
		t.Errorf("%d chains cached, want %d", n, maxCachedChains)
	}
}

// TestKDSProfile checks the endorsement key checks that replaced
// go-sev-guest's verify.SnpAttestation, on edited copies of the real Milan
// VCEK.
func TestKDSProfile(t *testing.T) {
	_, der, _ := captures.SNPMilan()
	vcek, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	exts, err := kds.CertificateExtensions(vcek, abi.VcekReportSigner)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkKDSProfile(vcek, exts, abi.VcekReportSigner, "Milan", true); err != nil {
		t.Fatalf("real VCEK: %v", err)
	}
	edit := func(f func(c *x509.Certificate)) *x509.Certificate {
		c := *vcek
		c.Subject.Country = append([]string(nil), vcek.Subject.Country...)
		c.Issuer.Organization = append([]string(nil), vcek.Issuer.Organization...)
		f(&c)
		return &c
	}
	for _, tc := range []struct {
		name   string
		cert   *x509.Certificate
		exts   *kds.Extensions
		signer abi.ReportSigner
		line   string
	}{
		{name: "version 1", cert: edit(func(c *x509.Certificate) { c.Version = 1 })},
		{name: "rsa pkcs1 signature", cert: edit(func(c *x509.Certificate) { c.SignatureAlgorithm = x509.SHA384WithRSA })},
		{name: "not ecdsa", cert: edit(func(c *x509.Certificate) { c.PublicKey = "key" })},
		{name: "subject cn", cert: edit(func(c *x509.Certificate) { c.Subject.CommonName = "SEV-VCEK2" })},
		{name: "subject country", cert: edit(func(c *x509.Certificate) { c.Subject.Country = []string{"CA"} })},
		{name: "two countries", cert: edit(func(c *x509.Certificate) { c.Subject.Country = []string{"US", "US"} })},
		{name: "issuer organization", cert: edit(func(c *x509.Certificate) { c.Issuer.Organization = []string{"AMD"} })},
		{name: "issuer of another line", cert: vcek, line: "Genoa"},
		{name: "vlek signer", cert: vcek, signer: abi.VlekReportSigner},
		{name: "unknown product", cert: vcek, exts: &kds.Extensions{ProductName: "Genoa"}},
		{name: "no names", cert: edit(func(c *x509.Certificate) { c.Subject = pkix.Name{CommonName: "SEV-VCEK"} })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, signer, line := exts, abi.VcekReportSigner, "Milan"
			if tc.exts != nil {
				e = tc.exts
			}
			if tc.signer != 0 {
				signer = tc.signer
			}
			if tc.line != "" {
				line = tc.line
			}
			if err := checkKDSProfile(tc.cert, e, signer, line, true); err == nil {
				t.Fatal("accepted")
			} else {
				t.Log(err)
			}
		})
	}
}
