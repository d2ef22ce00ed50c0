package tpm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/fault"
)

// Errors of attestation-key enrolment (docs/spec/attestation.md §4.6). An
// EK certificate that does not parse is attestation.ErrMalformed, one that
// does not chain to a configured manufacturer attestation.ErrUntrustedRoot,
// one outside its validity attestation.ErrCollateralExpired.
var (
	// ErrAKAttributes means the key offered for enrolment is not a
	// restricted signing key that a TPM generated and holds
	// ("ak-attributes", 422).
	ErrAKAttributes = fault.NewCode(attestation.ErrAttestation, fault.Untrusted, "ak-attributes", "not a TPM attestation key")
	// ErrActivation means the secret returned is not the credential's: the
	// TPM that answered does not hold both the endorsement key and the
	// attestation key the credential was made for ("activation-failed",
	// 403).
	ErrActivation = fault.NewCode(attestation.ErrAttestation, fault.Denied, "activation-failed", "credential activation failed")
)

// DefaultAKValidity is how long the AK certificates a PrivacyCA issues are
// valid by default.
const DefaultAKValidity = 365 * 24 * time.Hour

// secretSize is the size of the credential a PrivacyCA makes: the largest
// digest every TPM implements.
const secretSize = 32

// maxEKChain bounds the intermediates an enrolment request may carry.
const maxEKChain = 8

// oidTCGKpAIKCertificate is the extended key usage of TCG AK certificates
// (tcg-kp-AIKCertificate).
var oidTCGKpAIKCertificate = asn1.ObjectIdentifier{2, 23, 133, 8, 3}

// PrivacyCAConfig configures a PrivacyCA.
type PrivacyCAConfig struct {
	// EKCAs are the TPM manufacturers' certificate authorities (LoadEKCAs):
	// self-signed ones are roots, the others intermediates. At least one
	// root is required.
	EKCAs []*x509.Certificate
	// Key signs the AK certificates; Certificate is its self-signed CA
	// certificate (NewPrivacyCACertificate makes one), which verifiers
	// trust as an AK certificate authority (Config.AKCAs).
	Key         crypto.Signer
	Certificate *x509.Certificate
	// Validity is how long issued AK certificates are valid (default
	// DefaultAKValidity).
	Validity time.Duration
	// Now is the clock EK certificates are checked at and AK certificates
	// dated by (default time.Now).
	Now func() time.Time
	// Logger receives one record per decision: each credential made or
	// refused and each certificate issued or refused, with its reason.
	// Nil discards.
	Logger *slog.Logger
}

// PrivacyCA certifies attestation keys after TPM2 credential activation
// (docs/spec/attestation.md §4.6): MakeCredential checks an EK certificate
// and an AK and encrypts a fresh secret to the EK, bound to the AK's name;
// only the TPM holding both can recover it with TPM2_ActivateCredential,
// and Certify issues the AK a certificate when it is returned. It keeps no
// state between the two: the caller keeps what MakeCredential returns for
// Certify. It is safe for concurrent use.
type PrivacyCA struct {
	roots, intermediates *x509.CertPool
	key                  crypto.Signer
	cert                 *x509.Certificate
	validity             time.Duration
	now                  func() time.Time
	log                  *slog.Logger
}

// NewPrivacyCA returns a PrivacyCA for cfg.
func NewPrivacyCA(cfg PrivacyCAConfig) (*PrivacyCA, error) {
	c := &PrivacyCA{roots: x509.NewCertPool(), intermediates: x509.NewCertPool(), key: cfg.Key, cert: cfg.Certificate,
		validity: cfg.Validity, now: cfg.Now, log: cfg.Logger}
	if c.validity == 0 {
		c.validity = DefaultAKValidity
	}
	if c.validity < 0 {
		return nil, fmt.Errorf("tpm privacy CA: validity %s", c.validity)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	roots := 0
	for _, ca := range cfg.EKCAs {
		if isSelfSigned(ca) {
			c.roots.AddCert(ca)
			roots++
		} else {
			c.intermediates.AddCert(ca)
		}
	}
	if roots == 0 {
		return nil, errors.New("tpm privacy CA: no root among the EK certificate authorities (a self-signed certificate)")
	}
	if c.key == nil || c.cert == nil {
		return nil, errors.New("tpm privacy CA: no signing key or certificate")
	}
	if pub, ok := c.cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(c.key.Public()) {
		return nil, errors.New("tpm privacy CA: the certificate is not the signing key's")
	}
	if !c.cert.IsCA || !isSelfSigned(c.cert) {
		return nil, errors.New("tpm privacy CA: the certificate is not a self-signed CA certificate")
	}
	return c, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// NewPrivacyCACertificate returns a self-signed CA certificate (DER) for
// key, valid 20 years from now, that may sign AK certificates and nothing
// below them.
func NewPrivacyCACertificate(key crypto.Signer, now time.Time) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	id := sha256.Sum256(spki)
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{Organization: []string{"kura"}, CommonName: "kura TPM AK CA " + hex.EncodeToString(id[:4])},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.Add(20 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
		SubjectKeyId: id[:20],
	}
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
}

// CACertificate returns the privacy CA's certificate (DER).
func (c *PrivacyCA) CACertificate() []byte { return bytes.Clone(c.cert.Raw) }

// enrolment is what Certify needs of a credential MakeCredential made: not
// the secret, only its hash.
type enrolment struct {
	AK           []byte `json:"ak"` // TPMT_PUBLIC
	SecretSHA256 []byte `json:"secret_sha256"`
	EKSHA256     []byte `json:"ek_sha256"`
	EKIssuer     string `json:"ek_issuer"`
	EKSerial     string `json:"ek_serial"`
	TPMSAN       []byte `json:"tpm_san"` // the EK certificate's subject alternative name
}

// MakeCredential checks an enrolment request — the EK certificate
// (DER) chains to a configured manufacturer at now, through its
// configured intermediates and ekChain's, names the TPM in the TCG subject
// alternative name, and certifies an RSA-2048 (or ECC P-256) decryption
// key; the AK's TPMT_PUBLIC is a restricted signing key the TPM generated
// — and runs TPM2_MakeCredential in software: a fresh 32-byte secret,
// encrypted to the EK under the standard EK template's parameters and
// bound to the AK's name. It returns the credential blob (the
// TPMS_ID_OBJECT of TPM2_ActivateCredential's credentialBlob) and the
// encrypted secret (its secret), and the state Certify takes, which holds
// the secret's hash, not the secret.
func (c *PrivacyCA) MakeCredential(ctx context.Context, ekCert []byte, ekChain [][]byte, akPublic []byte) (credentialBlob, encryptedSecret, state []byte, err error) {
	st, ek, ak, err := c.checkRequest(ekCert, ekChain, akPublic)
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "tpm ak enrolment refused", slog.String("reason", err.Error()))
		return nil, nil, nil, err
	}
	name, err := tpm2.ObjectName(ak.public)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tpm privacy CA: the attestation key's name: %w", err)
	}
	ekKey, err := tpm2.ImportEncapsulationKey(ek)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tpm privacy CA: the endorsement key: %w", err)
	}
	secret := make([]byte, secretSize)
	rand.Read(secret)
	defer clear(secret)
	credentialBlob, encryptedSecret, err = tpm2.CreateCredential(rand.Reader, ekKey, name.Buffer, secret)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tpm privacy CA: making the credential: %w", err)
	}
	sum := sha256.Sum256(secret)
	st.SecretSHA256 = sum[:]
	if state, err = json.Marshal(st); err != nil {
		return nil, nil, nil, err
	}
	c.log.LogAttrs(ctx, slog.LevelInfo, "tpm ak credential made", slog.String("ek_issuer", st.EKIssuer), slog.String("ek_serial", st.EKSerial),
		slog.String("ek_sha256", hex.EncodeToString(st.EKSHA256)), slog.String("ak_name", hex.EncodeToString(name.Buffer)))
	return credentialBlob, encryptedSecret, state, nil
}

// checkRequest checks an enrolment request and returns the state so far,
// the EK as the standard template makes it, and the AK.
func (c *PrivacyCA) checkRequest(ekCert []byte, ekChain [][]byte, akPublic []byte) (*enrolment, *tpm2.TPMTPublic, *akPublic, error) {
	cert, err := x509.ParseCertificate(ekCert)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: the EK certificate: %v", attestation.ErrMalformed, err)
	}
	if len(ekChain) > maxEKChain {
		return nil, nil, nil, fmt.Errorf("%w: the EK certificate chain has %d certificates; the limit is %d", attestation.ErrMalformed, len(ekChain), maxEKChain)
	}
	inter := c.intermediates.Clone()
	for i, der := range ekChain {
		ic, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: the EK certificate chain's certificate %d: %v", attestation.ErrMalformed, i+1, err)
		}
		inter.AddCert(ic)
	}
	desc := fmt.Sprintf("the EK certificate (issuer %q, serial %x)", cert.Issuer.String(), cert.SerialNumber)
	_, san, err := tpmSubjectAltName(cert, "the EK certificate's subject alternative name")
	if err != nil {
		return nil, nil, nil, err
	}
	if san == nil {
		return nil, nil, nil, fmt.Errorf("%w: %s has no TCG subject alternative name naming the TPM's manufacturer, model and version", attestation.ErrMalformed, desc)
	}
	ek, err := ekPublic(cert, desc)
	if err != nil {
		return nil, nil, nil, err
	}
	now := c.now()
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, nil, nil, fmt.Errorf("%w: %s is valid from %s to %s, not at %s", attestation.ErrCollateralExpired, desc,
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: c.roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return nil, nil, nil, fmt.Errorf("%w: %s's chain: %v", attestation.ErrCollateralExpired, desc, err)
		}
		return nil, nil, nil, fmt.Errorf("%w: %s does not chain to a configured TPM manufacturer (--tpm-ek-ca): %v", attestation.ErrUntrustedRoot, desc, err)
	}
	if len(akPublic) > 0 && akPublic[0] == 0x30 {
		return nil, nil, nil, fmt.Errorf("%w: the attestation key is PKIX; enrolment needs its TPMT_PUBLIC, whose name the credential is bound to", attestation.ErrMalformed)
	}
	ak, err := parseAK(akPublic)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := ak.checkAttributesAs(ErrAKAttributes); err != nil {
		return nil, nil, nil, err
	}
	sum := sha256.Sum256(ekCert)
	return &enrolment{AK: bytes.Clone(akPublic), EKSHA256: sum[:], EKIssuer: cert.Issuer.String(), EKSerial: hex.EncodeToString(cert.SerialNumber.Bytes()), TPMSAN: san}, ek, ak, nil
}

// ekPublic returns the EK that cert certifies as the TCG's standard EK
// template makes it: RSA-2048 (template L-1) or ECC P-256 (L-2), a
// decryption key (keyEncipherment, keyAgreement) by the certificate's key
// usage.
func ekPublic(cert *x509.Certificate, desc string) (*tpm2.TPMTPublic, error) {
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() != 2048 || k.E != 65537 {
			return nil, fmt.Errorf("%w: %s certifies an RSA-%d key with exponent %d; an RSA endorsement key is RSA-2048 with exponent 65537", attestation.ErrMalformed, desc, k.N.BitLen(), k.E)
		}
		if cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
			return nil, fmt.Errorf("%w: %s does not certify a decryption key (its key usage lacks keyEncipherment): it is no EK certificate", attestation.ErrUntrustedRoot, desc)
		}
		pub := tpm2.RSAEKTemplate
		pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: k.N.FillBytes(make([]byte, 256))})
		return &pub, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: %s certifies an ECC key on %s; an ECC endorsement key kura takes is on P-256", attestation.ErrMalformed, desc, k.Curve.Params().Name)
		}
		if cert.KeyUsage&x509.KeyUsageKeyAgreement == 0 {
			return nil, fmt.Errorf("%w: %s does not certify a decryption key (its key usage lacks keyAgreement): it is no EK certificate", attestation.ErrUntrustedRoot, desc)
		}
		pub := tpm2.ECCEKTemplate
		pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: k.X.FillBytes(make([]byte, 32))},
			Y: tpm2.TPM2BECCParameter{Buffer: k.Y.FillBytes(make([]byte, 32))},
		})
		return &pub, nil
	}
	return nil, fmt.Errorf("%w: %s certifies a %T; an endorsement key is RSA-2048 or ECC P-256", attestation.ErrMalformed, desc, cert.PublicKey)
}

// Certify checks that secret is the credential MakeCredential made with
// state (in constant time, by its hash) and issues the AK a certificate
// (DER) signed by the privacy CA: an empty subject and the EK
// certificate's TCG subject alternative name (the TPM's manufacturer,
// model and version), critical; a random serial; valid from now for the
// configured validity; key usage digitalSignature; extended key usage
// tcg-kp-AIKCertificate; and as subject key identifier the SHA-256 of the
// EK certificate. A wrong secret is ErrActivation.
func (c *PrivacyCA) Certify(ctx context.Context, state, secret []byte) ([]byte, error) {
	var st enrolment
	if err := json.Unmarshal(state, &st); err != nil {
		return nil, fmt.Errorf("tpm privacy CA: enrolment state: %w", err)
	}
	sum := sha256.Sum256(secret)
	if len(secret) != secretSize || subtle.ConstantTimeCompare(sum[:], st.SecretSHA256) != 1 {
		err := fmt.Errorf("%w: the secret returned is not the credential made for the EK certificate (issuer %q, serial %s) and this attestation key: "+
			"the TPM that answered does not hold both", ErrActivation, st.EKIssuer, st.EKSerial)
		c.log.LogAttrs(ctx, slog.LevelWarn, "tpm ak certificate refused", slog.String("reason", err.Error()))
		return nil, err
	}
	ak, err := parseAK(st.AK)
	if err != nil {
		return nil, fmt.Errorf("tpm privacy CA: enrolment state: %w", err)
	}
	now := c.now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		NotBefore:    now.Add(-time.Minute), NotAfter: now.Add(c.validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		UnknownExtKeyUsage:    []asn1.ObjectIdentifier{oidTCGKpAIKCertificate},
		BasicConstraintsValid: true,
		SubjectKeyId:          st.EKSHA256,
		ExtraExtensions:       []pkix.Extension{{Id: oidSubjectAltName, Critical: true, Value: st.TPMSAN}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, ak.key, c.key)
	if err != nil {
		return nil, fmt.Errorf("tpm privacy CA: issuing the AK certificate: %w", err)
	}
	akDER, _ := x509.MarshalPKIXPublicKey(ak.key)
	akSum := sha256.Sum256(akDER)
	c.log.LogAttrs(ctx, slog.LevelInfo, "tpm ak certificate issued", slog.String("serial", hex.EncodeToString(tmpl.SerialNumber.Bytes())),
		slog.String("ak_sha256", hex.EncodeToString(akSum[:])), slog.String("ek_issuer", st.EKIssuer), slog.String("ek_serial", st.EKSerial),
		slog.String("not_after", tmpl.NotAfter.UTC().Format(time.RFC3339)))
	return der, nil
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b)
	b[0] &= 0x7f
	b[0] |= 0x40 // 127 bits exactly: never shorter, never negative
	return new(big.Int).SetBytes(b)
}

// LoadEKCAs reads the certificate authorities of TPM manufacturers whose
// EK certificates a PrivacyCA accepts (--tpm-ek-ca): PEM CERTIFICATE
// blocks or DER certificates, roots and intermediates.
func LoadEKCAs(path string) ([]*x509.Certificate, error) {
	return loadCerts(path, "tpm EK certificate authorities")
}
