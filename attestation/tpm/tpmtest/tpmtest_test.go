package tpmtest

import (
	"bytes"
	"crypto/x509"
	"slices"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/kura-cc/kura/internal/swtpm"
)

// TestProvision: the EK certificate chains through the intermediate to
// the root, certifies the TPM's EK with an empty subject and the critical
// TCG subject alternative name, and is in NV index 0x01c00002.
func TestProvision(t *testing.T) {
	m, err := NewManufacturer("Test TPM Co")
	if err != nil {
		t.Fatal(err)
	}
	tr := swtpm.Start(t)
	der, err := m.Provision(tr)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := RSAEK(tr)
	if err != nil {
		t.Fatal(err)
	}
	if !ek.Equal(cert.PublicKey) || len(cert.RawSubject) != 2 || !slices.ContainsFunc(cert.UnhandledCriticalExtensions, oidSubjectAltName.Equal) {
		t.Errorf("EK certificate: key %v, subject %q, unhandled critical %v", ek.Equal(cert.PublicKey), cert.Subject, cert.UnhandledCriticalExtensions)
	}
	cert.UnhandledCriticalExtensions = nil
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(m.Root)
	inters.AddCert(m.Intermediate)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("chain: %v", err)
	}
	pub, err := tpm2.NVReadPublic{NVIndex: EKCertIndexRSA}.Execute(tr)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for off := 0; off < len(der); off += 512 {
		n := min(512, len(der)-off)
		rsp, err := tpm2.NVRead{AuthHandle: tpm2.AuthHandle{Handle: EKCertIndexRSA, Name: pub.NVName, Auth: tpm2.PasswordAuth(nil)},
			NVIndex: tpm2.NamedHandle{Handle: EKCertIndexRSA, Name: pub.NVName}, Size: uint16(n), Offset: uint16(off)}.Execute(tr)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rsp.Data.Buffer...)
	}
	if !bytes.Equal(got, der) {
		t.Error("NV index 0x01c00002 does not hold the certificate")
	}
}
