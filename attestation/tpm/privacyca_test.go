package tpm

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/tpm/tpmtest"
	"github.com/kura-cc/kura/internal/swtpm"
)

// enrolTPM is a software TPM whose manufacturer stored an EK certificate
// in NV, with an Attester on it.
type enrolTPM struct {
	tpm    transport.TPM
	a      *Attester
	ekCert []byte // DER, as stored in NV
}

func newEnrolTPM(t *testing.T, m *tpmtest.Manufacturer) *enrolTPM {
	t.Helper()
	e := &enrolTPM{tpm: swtpm.Start(t)}
	var err error
	if e.ekCert, err = m.Provision(e.tpm); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e.a, err = NewAttester(AttesterConfig{Transport: e.tpm, EventLogPath: writeTemp(t, dir, "log", nil), IMAPath: writeTemp(t, dir, "ima", nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.a.Close() })
	return e
}

// akPublic returns the attester's AK TPMT_PUBLIC.
func (e *enrolTPM) akPublic(t *testing.T) []byte {
	t.Helper()
	ak, err := e.a.AttestationKeyPublic()
	if err != nil {
		t.Fatal(err)
	}
	return ak
}

// newTestPrivacyCA returns a privacy CA trusting roots, with a fresh key.
func newTestPrivacyCA(t testing.TB, now func() time.Time, roots ...*x509.Certificate) *PrivacyCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := NewPrivacyCACertificate(key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := NewPrivacyCA(PrivacyCAConfig{EKCAs: roots, Key: key, Certificate: cert, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestPrivacyCAEnrolment enrols a software TPM's attestation key: the EK
// certificate read from NV index 0x01c00002 chains through the
// manufacturer's intermediate to its root, the TPM recovers the secret by
// TPM2_ActivateCredential, and the privacy CA certifies the AK with the EK
// certificate's TPM attributes. A quote by the AK then verifies by that
// certificate alone.
func TestPrivacyCAEnrolment(t *testing.T) {
	ctx := context.Background()
	m, err := tpmtest.NewManufacturer("Test TPM Co")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnrolTPM(t, m)
	ekCert, err := e.a.EKCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ekCert, e.ekCert) {
		t.Fatal("the EK certificate read from NV is not the one written")
	}
	ek, err := e.a.EndorsementKey()
	if err != nil {
		t.Fatal(err)
	}
	parsed, _ := x509.ParseCertificate(ekCert)
	if !ek.Equal(parsed.PublicKey) {
		t.Fatal("EndorsementKey is not the key the EK certificate certifies")
	}

	ca := newTestPrivacyCA(t, nil, m.Root)
	blob, encSecret, state, err := ca.MakeCredential(ctx, ekCert, [][]byte{m.Intermediate.Raw}, e.akPublic(t))
	if err != nil {
		t.Fatalf("MakeCredential: %v", err)
	}
	if bytes.Contains(state, blob) || len(state) > 4096 {
		t.Errorf("state of %d bytes holds the credential", len(state))
	}
	secret, err := e.a.ActivateCredential(blob, encSecret)
	if err != nil {
		t.Fatalf("ActivateCredential: %v", err)
	}
	if bytes.Contains(state, secret) {
		t.Error("the state holds the secret")
	}
	der, err := ca.Certify(ctx, state, secret)
	if err != nil {
		t.Fatalf("Certify: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ekSum := sha256.Sum256(ekCert)
	akKey, _ := e.a.AttestationKey()
	caCert, _ := x509.ParseCertificate(ca.CACertificate())
	switch {
	case len(cert.RawSubject) != 2: // an empty SEQUENCE
		t.Errorf("subject %q, want empty", cert.Subject)
	case !bytes.Equal(cert.SubjectKeyId, ekSum[:]):
		t.Errorf("subject key id %x, want the EK certificate's SHA-256 %x", cert.SubjectKeyId, ekSum)
	case cert.KeyUsage != x509.KeyUsageDigitalSignature:
		t.Errorf("key usage %v", cert.KeyUsage)
	case !akKey.Equal(cert.PublicKey):
		t.Error("the certificate is not for the AK")
	case cert.CheckSignatureFrom(caCert) != nil:
		t.Error("the certificate is not the privacy CA's")
	case cert.NotAfter.Sub(cert.NotBefore) < DefaultAKValidity:
		t.Errorf("valid %s to %s", cert.NotBefore, cert.NotAfter)
	}
	if !slices.ContainsFunc(cert.UnhandledCriticalExtensions, oidSubjectAltName.Equal) {
		t.Error("the TCG subject alternative name is not critical")
	}

	// Quote with the AK; the verifier trusts it by the certificate.
	rd := attestation.RuntimeData{Nonce: bytes.Repeat([]byte{3}, 32)}
	b, err := e.a.Attest(ctx, rd.ReportData())
	if err != nil {
		t.Fatal(err)
	}
	b.Certs = der
	v, err := NewVerifier(Config{AKCAs: []*x509.Certificate{caCert}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.Verify(ctx, b)
	if err != nil {
		t.Fatalf("Verify: %v\nchecks %+v", err, res.Checks)
	}
	vt := res.Claims["vtpm"].(map[string]any)
	ac := vt["ak_certificate"].(map[string]any)
	tpmInfo := ac["tpm"].(map[string]any)
	for name, c := range map[string]struct{ got, want any }{
		"ak_trust":       {vt["ak_trust"], "certificate"},
		"manufacturer":   {tpmInfo["manufacturer"], "id:53575450"},
		"model":          {tpmInfo["model"], "swtpm"},
		"version":        {tpmInfo["version"], "id:20191023"},
		"subject_key_id": {ac["subject_key_id"], hex.EncodeToString(ekSum[:])},
		"root":           {ac["root"], caCert.Subject.String()},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", name, c.got, c.want)
		}
	}
}

// TestPrivacyCARefusals: each bad enrolment request fails with its own
// error, and a wrong secret gets no certificate.
func TestPrivacyCARefusals(t *testing.T) {
	ctx := context.Background()
	m, err := tpmtest.NewManufacturer("Test TPM Co")
	if err != nil {
		t.Fatal(err)
	}
	other, err := tpmtest.NewManufacturer("Other TPM Co")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnrolTPM(t, m)
	ek, err := e.a.EndorsementKey()
	if err != nil {
		t.Fatal(err)
	}
	ak := e.akPublic(t)
	certify := func(mm *tpmtest.Manufacturer, c tpmtest.EKCert, pub any) []byte {
		der, err := mm.Certify(pub, c)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	rsa3072, _ := rsa.GenerateKey(rand.Reader, 3072)
	unrestricted, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic: tpm2.New2B(tpm2.TPMTPublic{
			Type: tpm2.TPMAlgRSA, NameAlg: tpm2.TPMAlgSHA256,
			ObjectAttributes: tpm2.TPMAObject{SignEncrypt: true, FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true},
			Parameters:       tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{KeyBits: 2048}),
		}),
	}.Execute(e.tpm)
	if err != nil {
		t.Fatal(err)
	}
	unrestrictedPub, _ := unrestricted.OutPublic.Contents()
	srk, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tpm2.RSASRKTemplate)}.Execute(e.tpm)
	if err != nil {
		t.Fatal(err)
	}
	srkPub, _ := srk.OutPublic.Contents()
	pkix, _ := x509.MarshalPKIXPublicKey(&rsa3072.PublicKey)

	chain := [][]byte{m.Intermediate.Raw}
	for _, tc := range []struct {
		name   string
		ekCert []byte
		chain  [][]byte
		ak     []byte
		want   error
		msg    string
	}{
		{"another manufacturer's EK certificate", certify(other, tpmtest.EKCert{}, ek), [][]byte{other.Intermediate.Raw}, ak, attestation.ErrUntrustedRoot, "does not chain to a configured TPM manufacturer"},
		{"without the intermediate", e.ekCert, nil, ak, attestation.ErrUntrustedRoot, "does not chain"},
		{"expired EK certificate", certify(m, tpmtest.EKCert{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}, ek), chain, ak, attestation.ErrCollateralExpired, "is valid from"},
		{"EK certificate not yet valid", certify(m, tpmtest.EKCert{NotBefore: time.Now().Add(time.Hour)}, ek), chain, ak, attestation.ErrCollateralExpired, "is valid from"},
		{"no TCG subject alternative name", certify(m, tpmtest.EKCert{NoSubjectAltName: true}, ek), chain, ak, attestation.ErrMalformed, "no TCG subject alternative name"},
		{"a signing key's certificate", certify(m, tpmtest.EKCert{KeyUsage: x509.KeyUsageDigitalSignature}, ek), chain, ak, attestation.ErrUntrustedRoot, "keyEncipherment"},
		{"an RSA-3072 key", certify(m, tpmtest.EKCert{}, &rsa3072.PublicKey), chain, ak, attestation.ErrMalformed, "RSA-3072"},
		{"truncated EK certificate", e.ekCert[:200], chain, ak, attestation.ErrMalformed, "the EK certificate"},
		{"malformed chain", e.ekCert, [][]byte{{0x30, 1, 2}}, ak, attestation.ErrMalformed, "chain's certificate 1"},
		{"chain too long", e.ekCert, slices.Repeat(chain, 9), ak, attestation.ErrMalformed, "the limit is 8"},
		{"unrestricted signing key", e.ekCert, chain, tpm2.Marshal(unrestrictedPub), ErrAKAttributes, "[restricted]"},
		{"storage key", e.ekCert, chain, tpm2.Marshal(srkPub), ErrAKAttributes, "[sign]"},
		{"PKIX attestation key", e.ekCert, chain, pkix, attestation.ErrMalformed, "needs its TPMT_PUBLIC"},
		{"malformed TPMT_PUBLIC", e.ekCert, chain, ak[:len(ak)-3], attestation.ErrMalformed, "TPMT_PUBLIC"},
		{"TPMT_PUBLIC with trailing bytes", e.ekCert, chain, append(slices.Clone(ak), 0), attestation.ErrMalformed, "trailing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := newTestPrivacyCA(t, nil, m.Root)
			if _, _, _, err := ca.MakeCredential(ctx, tc.ekCert, tc.chain, tc.ak); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want %v saying %q", err, tc.want, tc.msg)
			}
		})
	}

	// The root and the intermediate configured: no chain needed.
	ca := newTestPrivacyCA(t, nil, m.Root, m.Intermediate)
	_, _, state, err := ca.MakeCredential(ctx, e.ekCert, nil, ak)
	if err != nil {
		t.Fatalf("with the intermediate configured: %v", err)
	}
	for _, secret := range [][]byte{make([]byte, 32), nil, bytes.Repeat([]byte{1}, 31)} {
		if _, err := ca.Certify(ctx, state, secret); !errors.Is(err, ErrActivation) {
			t.Errorf("secret %x: %v, want ErrActivation", secret, err)
		}
	}
	// An intermediate alone is no root.
	if _, err := NewPrivacyCA(PrivacyCAConfig{EKCAs: []*x509.Certificate{m.Intermediate}}); err == nil || !strings.Contains(err.Error(), "no root") {
		t.Errorf("intermediate only: %v", err)
	}
}

// TestPrivacyCAOtherTPM is the point of credential activation: an AK of
// TPM B presented with TPM A's EK certificate cannot be certified. TPM B
// cannot recover the secret (its EK is not the one the secret is encrypted
// to), nor can TPM A: its own AK is not the key the credential names, and
// B's AK loaded into A as a public key has no authorization to give.
func TestPrivacyCAOtherTPM(t *testing.T) {
	ctx := context.Background()
	m, err := tpmtest.NewManufacturer("Test TPM Co")
	if err != nil {
		t.Fatal(err)
	}
	tpmA, tpmB := newEnrolTPM(t, m), newEnrolTPM(t, m)
	akB := tpmB.akPublic(t)
	ca := newTestPrivacyCA(t, nil, m.Root)
	blob, encSecret, state, err := ca.MakeCredential(ctx, tpmA.ekCert, [][]byte{m.Intermediate.Raw}, akB)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpmB.a.ActivateCredential(blob, encSecret); !errors.Is(err, ErrActivation) {
		t.Errorf("TPM B activating: %v, want ErrActivation", err)
	}
	if _, err := tpmA.a.ActivateCredential(blob, encSecret); !errors.Is(err, ErrActivation) {
		t.Errorf("TPM A activating with its own AK: %v, want ErrActivation", err)
	}

	// TPM A with B's AK loaded as a public key: same name, no authorization.
	pubB, err := tpm2.Unmarshal[tpm2.TPMTPublic](akB)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := tpm2.LoadExternal{InPublic: tpm2.New2B(*pubB), Hierarchy: tpm2.TPMRHOwner}.Execute(tpmA.tpm)
	if err != nil {
		t.Fatalf("load B's AK into A as a public key: %v", err)
	}
	defer tpm2.FlushContext{FlushHandle: ext.ObjectHandle}.Execute(tpmA.tpm)
	ekRsp, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(tpm2.RSAEKTemplate)}.Execute(tpmA.tpm)
	if err != nil {
		t.Fatal(err)
	}
	defer tpm2.FlushContext{FlushHandle: ekRsp.ObjectHandle}.Execute(tpmA.tpm)
	_, err = tpm2.ActivateCredential{
		ActivateHandle: tpm2.AuthHandle{Handle: ext.ObjectHandle, Name: ext.Name, Auth: tpm2.PasswordAuth(nil)},
		KeyHandle:      tpm2.AuthHandle{Handle: ekRsp.ObjectHandle, Name: ekRsp.Name, Auth: tpm2.Policy(tpm2.TPMAlgSHA256, 16, ekPolicy)},
		CredentialBlob: tpm2.TPM2BIDObject{Buffer: blob},
		Secret:         tpm2.TPM2BEncryptedSecret{Buffer: encSecret},
	}.Execute(tpmA.tpm)
	if !errors.Is(err, tpm2.TPMRCAuthUnavailable) {
		t.Errorf("TPM A activating for B's AK loaded as a public key: %v, want TPM_RC_AUTH_UNAVAILABLE", err)
	}
	// Whatever the caller sends instead is refused.
	if _, err := ca.Certify(ctx, state, bytes.Repeat([]byte{0xa5}, 32)); !errors.Is(err, ErrActivation) {
		t.Errorf("a guessed secret: %v, want ErrActivation", err)
	}
}

// TestPrivacyCAECCEK enrols an AK against an ECC P-256 EK: the credential's
// seed is agreed with the EK by ECDH, as the standard ECC EK template
// requires.
func TestPrivacyCAECCEK(t *testing.T) {
	ctx := context.Background()
	m, err := tpmtest.NewManufacturer("Test TPM Co")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnrolTPM(t, m)
	ek, err := tpmtest.ECCEK(e.tpm)
	if err != nil {
		t.Fatal(err)
	}
	ekCert, err := m.Certify(ek, tpmtest.EKCert{})
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestPrivacyCA(t, nil, m.Root)
	blob, encSecret, state, err := ca.MakeCredential(ctx, ekCert, [][]byte{m.Intermediate.Raw}, e.akPublic(t))
	if err != nil {
		t.Fatal(err)
	}
	ekRsp, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(tpm2.ECCEKTemplate)}.Execute(e.tpm)
	if err != nil {
		t.Fatal(err)
	}
	defer tpm2.FlushContext{FlushHandle: ekRsp.ObjectHandle}.Execute(e.tpm)
	e.a.mu.Lock()
	akKey, err := e.a.key()
	e.a.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := tpm2.ActivateCredential{
		ActivateHandle: tpm2.AuthHandle{Handle: akKey.Handle, Name: akKey.Name, Auth: tpm2.PasswordAuth(nil)},
		KeyHandle:      tpm2.AuthHandle{Handle: ekRsp.ObjectHandle, Name: ekRsp.Name, Auth: tpm2.Policy(tpm2.TPMAlgSHA256, 16, ekPolicy)},
		CredentialBlob: tpm2.TPM2BIDObject{Buffer: blob},
		Secret:         tpm2.TPM2BEncryptedSecret{Buffer: encSecret},
	}.Execute(e.tpm)
	if err != nil {
		t.Fatalf("ActivateCredential with the ECC EK: %v", err)
	}
	if _, err := ca.Certify(ctx, state, rsp.CertInfo.Buffer); err != nil {
		t.Fatalf("Certify: %v", err)
	}
	// The same credential is refused by the RSA EK.
	if _, err := e.a.ActivateCredential(blob, encSecret); !errors.Is(err, ErrActivation) {
		t.Errorf("RSA EK activating an ECC EK's credential: %v", err)
	}
}

// TestEKCertificateNV: the EK certificate is read from NV without the
// padding manufacturers leave after it; an empty TPM, or an index that
// holds no certificate, is an error.
func TestEKCertificateNV(t *testing.T) {
	m, err := tpmtest.NewManufacturer("Test TPM Co")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		nv    func(cert []byte) []byte // nil: no index
		ok    bool
		error string
	}{
		{"padded with zeros", func(c []byte) []byte { return append(slices.Clone(c), make([]byte, 100)...) }, true, ""},
		{"padded with 0xff", func(c []byte) []byte { return append(slices.Clone(c), bytes.Repeat([]byte{0xff}, 7)...) }, true, ""},
		{"followed by data", func(c []byte) []byte { return append(slices.Clone(c), 1, 2, 3) }, false, "not padding"},
		{"not DER", func(c []byte) []byte { return []byte("not a certificate") }, false, "not DER"},
		{"no index", nil, false, "no EK certificate at NV index 0x01c00002"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := swtpm.Start(t)
			ek, err := tpmtest.RSAEK(tr)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := m.Certify(ek, tpmtest.EKCert{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.nv != nil {
				if err := tpmtest.WriteNV(tr, EKCertIndexRSA, tc.nv(cert)); err != nil {
					t.Fatal(err)
				}
			}
			dir := t.TempDir()
			a, err := NewAttester(AttesterConfig{Transport: tr, EventLogPath: writeTemp(t, dir, "log", nil), IMAPath: writeTemp(t, dir, "ima", nil)})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			got, err := a.EKCertificate()
			if tc.ok {
				if err != nil || !bytes.Equal(got, cert) {
					t.Errorf("EKCertificate: %v; %d bytes, want the %d of the certificate", err, len(got), len(cert))
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("EKCertificate: %v, want an error saying %q", err, tc.error)
			}
		})
	}
}
