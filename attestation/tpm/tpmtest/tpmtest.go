// Package tpmtest provides a test TPM manufacturer for tests of
// attestation-key enrolment (attestation/tpm's PrivacyCA, the verifier's
// /v1/attestation/tpm endpoints, kura attest tpm-enroll): a root and an
// intermediate certificate authority that certify software TPMs'
// endorsement keys (internal/swtpm) as TCG EK certificates, and store the
// certificate in the TPM's NV index as a manufacturer does.
//
// # Security model
//
// Test support only. Its EK certificates chain only to its own root, which
// no deployment configures, so they cannot pass for a real TPM's; nothing
// outside tests imports this package.
package tpmtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// EKCertIndexRSA is the NV index of the RSA EK certificate.
const EKCertIndexRSA tpm2.TPMHandle = 0x01c00002

// OIDs of the TCG EK Credential Profile.
var (
	oidSubjectAltName  = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidTPMManufacturer = asn1.ObjectIdentifier{2, 23, 133, 2, 1}
	oidTPMModel        = asn1.ObjectIdentifier{2, 23, 133, 2, 2}
	oidTPMVersion      = asn1.ObjectIdentifier{2, 23, 133, 2, 3}
	oidEKCertificate   = asn1.ObjectIdentifier{2, 23, 133, 8, 1} // tcg-kp-EKCertificate
)

// Manufacturer is a test TPM manufacturer: a root CA and an intermediate
// CA under it that issues EK certificates.
type Manufacturer struct {
	Root, Intermediate *x509.Certificate

	rootKey, intermediateKey *ecdsa.PrivateKey
}

// NewManufacturer returns a manufacturer whose certificates name name.
func NewManufacturer(name string) (*Manufacturer, error) {
	m := &Manufacturer{}
	var err error
	now := time.Now()
	if m.rootKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if m.intermediateKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	root := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{name}, CommonName: name + " EK root"},
		NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(20 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	if m.Root, err = create(root, root, &m.rootKey.PublicKey, m.rootKey); err != nil {
		return nil, err
	}
	inter := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{Organization: []string{name}, CommonName: name + " EK intermediate"},
		NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	if m.Intermediate, err = create(inter, m.Root, &m.intermediateKey.PublicKey, m.rootKey); err != nil {
		return nil, err
	}
	return m, nil
}

func create(tmpl, parent *x509.Certificate, pub any, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// PEM encodes certs as PEM CERTIFICATE blocks, as --tpm-ek-ca reads them.
func PEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// EKCert describes an EK certificate to issue. The zero value is a
// certificate valid from a day ago for a year, for an swtpm ("id:53575450",
// SWTP), with the key usage of an EK of its key type.
type EKCert struct {
	NotBefore, NotAfter         time.Time
	Manufacturer, Model, Vendor string
	// KeyUsage overrides the EK's (keyEncipherment for RSA, keyAgreement
	// for ECC).
	KeyUsage x509.KeyUsage
	// NoSubjectAltName leaves out the TCG subject alternative name.
	NoSubjectAltName bool
}

// Certify issues an EK certificate (DER) for pub under the intermediate,
// with an empty subject and the TCG critical subject alternative name.
func (m *Manufacturer) Certify(pub crypto.PublicKey, c EKCert) ([]byte, error) {
	now := time.Now()
	if c.NotBefore.IsZero() {
		c.NotBefore = now.Add(-24 * time.Hour)
	}
	if c.NotAfter.IsZero() {
		c.NotAfter = now.Add(365 * 24 * time.Hour)
	}
	if c.Manufacturer == "" {
		c.Manufacturer, c.Model, c.Vendor = "id:53575450", "swtpm", "id:20191023"
	}
	if c.KeyUsage == 0 {
		c.KeyUsage = x509.KeyUsageKeyEncipherment
		if _, ok := pub.(*ecdsa.PublicKey); ok {
			c.KeyUsage = x509.KeyUsageKeyAgreement
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), NotBefore: c.NotBefore, NotAfter: c.NotAfter,
		KeyUsage: c.KeyUsage, UnknownExtKeyUsage: []asn1.ObjectIdentifier{oidEKCertificate},
		BasicConstraintsValid: true,
	}
	if !c.NoSubjectAltName {
		attrs := []pkix.AttributeTypeAndValue{{Type: oidTPMManufacturer, Value: c.Manufacturer}}
		if c.Model != "" {
			attrs = append(attrs, pkix.AttributeTypeAndValue{Type: oidTPMModel, Value: c.Model})
		}
		if c.Vendor != "" {
			attrs = append(attrs, pkix.AttributeTypeAndValue{Type: oidTPMVersion, Value: c.Vendor})
		}
		name, err := asn1.Marshal(pkix.RDNSequence{attrs})
		if err != nil {
			return nil, err
		}
		san, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: name}})
		if err != nil {
			return nil, err
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidSubjectAltName, Critical: true, Value: san}}
	}
	return x509.CreateCertificate(rand.Reader, tmpl, m.Intermediate, pub, m.intermediateKey)
}

// Provision gives the TPM an EK certificate as its manufacturer would: it
// certifies the TPM's RSA EK (RSAEK) and writes the certificate to NV
// index EKCertIndexRSA (WriteNV). It returns the certificate (DER).
func (m *Manufacturer) Provision(t transport.TPM) ([]byte, error) {
	ek, err := RSAEK(t)
	if err != nil {
		return nil, err
	}
	cert, err := m.Certify(ek, EKCert{})
	if err != nil {
		return nil, err
	}
	return cert, WriteNV(t, EKCertIndexRSA, cert)
}

// RSAEK returns the public key of the TPM's RSA endorsement key: the
// primary key of the endorsement hierarchy from the standard RSA-2048 EK
// template.
func RSAEK(t transport.TPM) (*rsa.PublicKey, error) {
	pub, err := primary(t, tpm2.RSAEKTemplate)
	if err != nil {
		return nil, err
	}
	parms, err := pub.Parameters.RSADetail()
	if err != nil {
		return nil, err
	}
	unique, err := pub.Unique.RSA()
	if err != nil {
		return nil, err
	}
	return tpm2.RSAPub(parms, unique)
}

// ECCEK returns the public key of the TPM's ECC endorsement key (the
// standard P-256 EK template's primary key).
func ECCEK(t transport.TPM) (*ecdsa.PublicKey, error) {
	pub, err := primary(t, tpm2.ECCEKTemplate)
	if err != nil {
		return nil, err
	}
	p, err := pub.Unique.ECC()
	if err != nil {
		return nil, err
	}
	return &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(p.X.Buffer), Y: new(big.Int).SetBytes(p.Y.Buffer)}, nil
}

func primary(t transport.TPM, tmpl tpm2.TPMTPublic) (*tpm2.TPMTPublic, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tmpl),
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("create the endorsement key: %w", err)
	}
	defer tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(t)
	return rsp.OutPublic.Contents()
}

// WriteNV defines index under the platform hierarchy with the attributes
// swtpm_setup gives EK certificate indexes (readable with the index's own
// empty authorization or the owner's) and writes data to it.
func WriteNV(t transport.TPM, index tpm2.TPMHandle, data []byte) error {
	if len(data) == 0 || len(data) > 4096 {
		return errors.New("tpmtest: NV data of 1 to 4096 bytes")
	}
	platform := tpm2.AuthHandle{Handle: tpm2.TPMRHPlatform, Auth: tpm2.PasswordAuth(nil)}
	pub := tpm2.TPMSNVPublic{
		NVIndex: index, NameAlg: tpm2.TPMAlgSHA256,
		Attributes: tpm2.TPMANV{PPWrite: true, PPRead: true, OwnerRead: true, AuthRead: true, NoDA: true, PlatformCreate: true, WriteDefine: true,
			NT: tpm2.TPMNTOrdinary},
		DataSize: uint16(len(data)),
	}
	if _, err := (tpm2.NVDefineSpace{AuthHandle: platform, PublicInfo: tpm2.New2B(pub)}).Execute(t); err != nil {
		return fmt.Errorf("tpmtest: define NV index %#08x: %w", uint32(index), err)
	}
	name, err := tpm2.NVName(&pub)
	if err != nil {
		return err
	}
	for off := 0; off < len(data); off += 512 {
		end := min(off+512, len(data))
		if _, err := (tpm2.NVWrite{AuthHandle: platform, NVIndex: tpm2.NamedHandle{Handle: index, Name: *name},
			Data: tpm2.TPM2BMaxNVBuffer{Buffer: data[off:end]}, Offset: uint16(off)}).Execute(t); err != nil {
			return fmt.Errorf("tpmtest: write NV index %#08x: %w", uint32(index), err)
		}
	}
	return nil
}
