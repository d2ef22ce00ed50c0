package tpm

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/azure"
	"github.com/kura-cc/kura/internal/captures"
)

// gceBundle returns the Compute Engine capture as a tpm bundle and its CAs.
func gceBundle(t testing.TB) (*attestation.Bundle, []*x509.Certificate) {
	t.Helper()
	g := captures.GCEvTPM()
	attest, sig, pcrs, err := azure.SplitTPMQuote(g.Quote, g.PCRs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBundle(g.AKPublic, attest, sig, pcrs, g.EventLog, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Certs = g.AKCert
	cas, err := parseCerts(g.CAs)
	if err != nil {
		t.Fatal(err)
	}
	return b, cas
}

var gceTime = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// TestGCEvTPM verifies a real Compute Engine vTPM attestation: the AK by
// Google's certificate, the quote, and the boot log replayed to the PCRs,
// with the instance the certificate names and the memory encryption the
// log declares.
func TestGCEvTPM(t *testing.T) {
	b, cas := gceBundle(t)
	v, err := NewVerifier(Config{AKCAs: cas, Now: func() time.Time { return gceTime }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := v.Verify(ctx, b)
	if err != nil {
		t.Fatalf("Verify: %v\nchecks: %+v", err, res.Checks)
	}
	if want := append([]byte{0x90, 0x09}, make([]byte, 62)...); !bytes.Equal(res.ReportData, want) {
		t.Errorf("ReportData = %x, want 9009 then zeros", res.ReportData)
	}
	vt := res.Claims["vtpm"].(map[string]any)
	cert := vt["ak_certificate"].(map[string]any)
	gce := cert["gce"].(map[string]any)
	tpmInfo := cert["tpm"].(map[string]any)
	for name, c := range map[string]struct{ got, want any }{
		"ak_trust":      {vt["ak_trust"], "certificate"},
		"technology":    {vt["gce_confidential_technology"], "sev"},
		"instance":      {gce["instance_name"], "cos-test"},
		"instance id":   {gce["instance_id"], "6797026933021542085"},
		"project":       {gce["project_id"], "google.com:wuale-gcp-testing"},
		"zone":          {gce["zone"], "us-central1-a"},
		"production":    {gce["is_production"], true},
		"manufacturer":  {tpmInfo["manufacturer"], "id:474F4F47"},
		"model":         {tpmInfo["model"], "vTPM"},
		"replayed PCRs": {len(vt["replayed_pcrs"].([]string)), 23},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", name, c.got, c.want)
		}
	}
	if !strings.HasPrefix(cert["root"].(string), "CN=tpm_ek_v1_cloud_host_root-signer") {
		t.Errorf("root = %v", cert["root"])
	}
	if slices.Contains(vt["replayed_pcrs"].([]string), "sha256:10") {
		t.Error("PCR 10 replayed without an IMA list or events for it")
	}

	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ca, caKey := testCA(t)
	for _, tc := range []struct {
		name   string
		cfg    Config
		mutate func(b *attestation.Bundle)
		want   error
		msg    string
	}{
		{name: "no authority configured", cfg: Config{}, want: attestation.ErrUntrustedRoot, msg: "no AK certificate authority is configured"},
		{name: "root without the intermediate", cfg: Config{AKCAs: cas[:1]}, want: attestation.ErrUntrustedRoot, msg: "does not chain"},
		{name: "another authority", cfg: Config{AKCAs: []*x509.Certificate{ca}}, want: attestation.ErrUntrustedRoot, msg: "does not chain"},
		{name: "after the certificate expired", cfg: Config{AKCAs: cas, Now: func() time.Time { return time.Date(2052, 1, 1, 0, 0, 0, 0, time.UTC) }}, want: attestation.ErrCollateralExpired, msg: "2051-08-24"},
		{name: "tampered certificate", mutate: func(b *attestation.Bundle) { b.Certs[len(b.Certs)-1] ^= 1 }, want: attestation.ErrUntrustedRoot, msg: "does not chain"},
		{name: "truncated certificate", mutate: func(b *attestation.Bundle) { b.Certs = b.Certs[:100] }, want: attestation.ErrMalformed, msg: "AK certificates"},
		{name: "certificate for another key", cfg: Config{AKCAs: append([]*x509.Certificate{ca}, cas...)}, mutate: func(b *attestation.Bundle) {
			b.Certs = issueAKCert(t, ca, caKey, &otherKey.PublicKey, nil)
		}, want: attestation.ErrBinding, msg: "certifies another key"},
		{name: "no certificate", mutate: func(b *attestation.Bundle) { b.Certs = nil }, want: attestation.ErrUntrustedRoot, msg: "no AK certificate"},
		{name: "tampered quote", mutate: func(b *attestation.Bundle) { b.VTPM.Quote[len(b.VTPM.Quote)-1] ^= 1 }, want: attestation.ErrBadSignature, msg: "signature"},
		{name: "technology rewritten in the log", mutate: func(b *attestation.Bundle) {
			l, _ := parseEventLog(b.VTPM.EventLog)
			for i := range l.Events {
				if l.Events[i].Type == evNonHostInfo {
					l.Events[i].Data[len(gceNonHostInfo)] = 4 // SEV-SNP
				}
			}
			b.VTPM.EventLog = l.Marshal()
		}, want: attestation.ErrBinding, msg: "EV_NONHOST_INFO on PCR 0"},
		{name: "kernel command line event altered", mutate: func(b *attestation.Bundle) {
			l, _ := parseEventLog(b.VTPM.EventLog)
			for i := range l.Events {
				if bytes.HasPrefix(l.Events[i].Data, []byte("kernel_cmdline: ")) {
					l.Events[i].Digests[1].Value[0] ^= 1
				}
			}
			b.VTPM.EventLog = l.Marshal()
		}, want: attestation.ErrBinding, msg: "PCR sha256:8 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.AKCAs == nil && tc.cfg.Now == nil && tc.name != "no authority configured" {
				cfg.AKCAs = cas
			}
			if cfg.Now == nil {
				cfg.Now = func() time.Time { return gceTime }
			}
			v, err := NewVerifier(cfg)
			if err != nil {
				t.Fatal(err)
			}
			c, _ := gceBundle(t)
			if tc.mutate != nil {
				tc.mutate(c)
			}
			_, err = v.Verify(ctx, c)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want %v naming %q", err, tc.want, tc.msg)
			}
		})
	}
}

// testCA makes a self-signed P-256 certificate authority.
func testCA(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kura test AK CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

// issueAKCert issues a certificate for pub under ca, with the TCG subject
// alternative name holding attrs (nil: manufacturer "id:53575450" only).
func issueAKCert(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, pub any, attrs []pkix.AttributeTypeAndValue) []byte {
	t.Helper()
	if attrs == nil {
		attrs = []pkix.AttributeTypeAndValue{{Type: oidTPMManufacturer, Value: "id:53575450"}, {Type: oidTPMModel, Value: "swtpm"}}
	}
	name, err := asn1.Marshal(pkix.RDNSequence{attrs})
	if err != nil {
		t.Fatal(err)
	}
	san, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: name}})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(12 * time.Hour),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: oidSubjectAltName, Critical: true, Value: san}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestSWTPMAKCertificate quotes with a software TPM whose AK an
// operator's CA certified (as a privacy CA does after credential
// activation): the verifier trusts the quote by the certificate, without
// pinning the key, and refuses a certificate whose TPM attributes it does
// not understand.
func TestSWTPMAKCertificate(t *testing.T) {
	tt := newTestTPM(t)
	bootAndRun(tt, []byte("kura worker v1"))
	rd := attestation.RuntimeData{Nonce: bytes.Repeat([]byte{9}, 32)}
	want := rd.ReportData()
	b := tt.quote(want[:])
	ca, caKey := testCA(t)
	b.Certs = issueAKCert(t, ca, caKey, tt.akKey, nil)

	v, err := NewVerifier(Config{AKCAs: []*x509.Certificate{ca}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := v.Verify(ctx, b)
	if err != nil {
		t.Fatalf("Verify: %v\nchecks: %+v", err, res.Checks)
	}
	vt := res.Claims["vtpm"].(map[string]any)
	if vt["ak_trust"] != "certificate" || vt["ak_certificate"].(map[string]any)["tpm"].(map[string]any)["model"] != "swtpm" {
		t.Errorf("claims = %v", vt)
	}
	if _, ok := vt["gce_confidential_technology"]; ok {
		t.Error("a swtpm boot log declared a Compute Engine technology")
	}

	b.Certs = issueAKCert(t, ca, caKey, tt.akKey, []pkix.AttributeTypeAndValue{{Type: oidTPMModel, Value: "swtpm"}})
	if _, err := v.Verify(ctx, b); !errors.Is(err, attestation.ErrMalformed) || !strings.Contains(err.Error(), "names no TPM manufacturer") {
		t.Errorf("certificate without a TPM manufacturer: %v", err)
	}
	b.Certs = issueAKCert(t, ca, caKey, tt.akKey, []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "x"}})
	if _, err := v.Verify(ctx, b); !errors.Is(err, attestation.ErrMalformed) || !strings.Contains(err.Error(), "not a TPM manufacturer") {
		t.Errorf("certificate with a common name in its TPM attributes: %v", err)
	}
}
