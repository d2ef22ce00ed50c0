package tpm

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/kura-cc/kura/attestation"
)

// maxCertFile bounds a file of AK or EK certificate authorities.
const maxCertFile = 1 << 20

// LoadAKCAs reads the certificate authorities that may certify attestation
// keys (--tpm-ak-ca): PEM CERTIFICATE blocks or DER certificates. The
// self-signed ones are roots; the others are intermediates an AK
// certificate may chain through, for vendors whose attesters do not send
// them (Google's vTPM AK certificates name their issuer only by URL).
func LoadAKCAs(path string) ([]*x509.Certificate, error) {
	return loadCerts(path, "tpm AK certificate authorities")
}

// loadCerts reads a file of certificates for LoadAKCAs and LoadEKCAs; what
// names it in errors.
func loadCerts(path, what string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(data) > maxCertFile {
		return nil, fmt.Errorf("%s %s: %d bytes, limit is %d", what, path, len(data), maxCertFile)
	}
	certs, err := parseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return certs, nil
}

// parseCerts parses PEM CERTIFICATE blocks, or DER certificates one after
// the other.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		certs, err := x509.ParseCertificates(data)
		if err != nil {
			return nil, err
		}
		if len(certs) == 0 {
			return nil, errors.New("no certificate")
		}
		return certs, nil
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q, want CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 || len(bytes.TrimSpace(data)) > 0 {
		return nil, errors.New("want PEM CERTIFICATE blocks and nothing else")
	}
	return certs, nil
}

// akCAs are the configured AK certificate authorities, split into roots
// and intermediates.
type akCAs struct {
	roots, intermediates *x509.CertPool
	n                    int
}

func newAKCAs(certs []*x509.Certificate) *akCAs {
	c := &akCAs{roots: x509.NewCertPool(), intermediates: x509.NewCertPool(), n: len(certs)}
	for _, cert := range certs {
		if isSelfSigned(cert) {
			c.roots.AddCert(cert)
		} else {
			c.intermediates.AddCert(cert)
		}
	}
	return c
}

// verifyAKCert checks that the bundle's certificates (the AK certificate
// first, then any intermediates) chain to a configured root at now, and
// that the AK certificate certifies key. It returns the claims describing
// the certificate: its names and validity, the root, the TPM it names and,
// for Google's, the Compute Engine instance.
func (c *akCAs) verifyAKCert(data []byte, key *rsa.PublicKey, now time.Time) (claims map[string]any, err error) {
	certs, err := parseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("%w: the bundle's AK certificates (certs): %v", attestation.ErrMalformed, err)
	}
	leaf := certs[0]
	if lk, ok := leaf.PublicKey.(*rsa.PublicKey); !ok || !lk.Equal(key) {
		return nil, fmt.Errorf("%w: the AK certificate (serial %x, subject %q) certifies another key than the attestation key that signed the quote",
			attestation.ErrBinding, leaf.SerialNumber, leaf.Subject.String())
	}
	if c.n == 0 {
		return nil, fmt.Errorf("%w: the attestation key comes with a certificate from %q but no AK certificate authority is configured (--tpm-ak-ca)",
			attestation.ErrUntrustedRoot, leaf.Issuer.String())
	}
	tpmInfo, err := tcgSubjectAltName(leaf)
	if err != nil {
		return nil, err
	}
	inter := c.intermediates.Clone()
	for _, ic := range certs[1:] {
		inter.AddCert(ic)
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("%w: the AK certificate is valid from %s to %s, not at %s",
			attestation.ErrCollateralExpired, leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots: c.roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return nil, fmt.Errorf("%w: the AK certificate's chain: %v", attestation.ErrCollateralExpired, err)
		}
		return nil, fmt.Errorf("%w: the AK certificate (issuer %q) does not chain to a configured AK certificate authority (--tpm-ak-ca): %v",
			attestation.ErrUntrustedRoot, leaf.Issuer.String(), err)
	}
	chain := chains[0]
	root := chain[len(chain)-1]
	claims = map[string]any{
		"subject":    leaf.Subject.String(),
		"issuer":     leaf.Issuer.String(),
		"serial":     hex.EncodeToString(leaf.SerialNumber.Bytes()),
		"not_before": leaf.NotBefore.UTC().Format(time.RFC3339),
		"not_after":  leaf.NotAfter.UTC().Format(time.RFC3339),
		"root":       root.Subject.String(),
	}
	if tpmInfo != nil {
		claims["tpm"] = tpmInfo
	}
	if len(leaf.SubjectKeyId) > 0 {
		// kura's privacy CA puts the SHA-256 of the EK certificate here.
		claims["subject_key_id"] = hex.EncodeToString(leaf.SubjectKeyId)
	}
	gce, err := gceInstance(leaf)
	if err != nil {
		return nil, err
	}
	if gce != nil {
		claims["gce"] = gce
	}
	return claims, nil
}

// OIDs of the TCG EK Credential Profile: the subject alternative name
// extension and the TPM attributes its directoryName holds.
var (
	oidSubjectAltName  = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidTPMManufacturer = asn1.ObjectIdentifier{2, 23, 133, 2, 1}
	oidTPMModel        = asn1.ObjectIdentifier{2, 23, 133, 2, 2}
	oidTPMVersion      = asn1.ObjectIdentifier{2, 23, 133, 2, 3}
)

// tcgSubjectAltName reads the TPM manufacturer, model and firmware version
// that the TCG profile for EK and AK certificates puts in a critical
// subject alternative name (a directoryName, which crypto/x509 leaves
// unhandled), and marks that extension handled. A certificate without it
// gives nil.
func tcgSubjectAltName(cert *x509.Certificate) (map[string]any, error) {
	if !slices.ContainsFunc(cert.UnhandledCriticalExtensions, oidSubjectAltName.Equal) {
		return nil, nil
	}
	info, _, err := tpmSubjectAltName(cert, "the AK certificate's critical subject alternative name")
	return info, err
}

// tpmSubjectAltName reads the TCG subject alternative name of cert,
// critical or not: its TPM attributes and the extension's value, which
// holds them and nothing else. It marks the extension handled. A
// certificate without a subject alternative name gives nil; what names
// the extension in errors.
func tpmSubjectAltName(cert *x509.Certificate, what string) (info map[string]any, raw []byte, err error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: %s %s", attestation.ErrMalformed, what, why)
	}
	found := false
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(oidSubjectAltName) {
			raw, found = ext.Value, true
		}
	}
	if !found {
		return nil, nil, nil
	}
	var names []asn1.RawValue
	if rest, err := asn1.Unmarshal(raw, &names); err != nil || len(rest) > 0 {
		return nil, nil, bad("is not a sequence of general names")
	}
	info = map[string]any{}
	for _, n := range names {
		if n.Class != asn1.ClassContextSpecific || n.Tag != 4 { // directoryName [4] Name
			return nil, nil, bad(fmt.Sprintf("has a general name of tag %d, not the directoryName of TPM attributes", n.Tag))
		}
		var rdns pkix.RDNSequence
		if rest, err := asn1.Unmarshal(n.Bytes, &rdns); err != nil || len(rest) > 0 {
			return nil, nil, bad("has a malformed directoryName")
		}
		for _, rdn := range rdns {
			for _, atv := range rdn {
				v, ok := atv.Value.(string)
				if !ok {
					return nil, nil, bad(fmt.Sprintf("has a non-string attribute %v", atv.Type))
				}
				switch {
				case atv.Type.Equal(oidTPMManufacturer):
					info["manufacturer"] = v
				case atv.Type.Equal(oidTPMModel):
					info["model"] = v
				case atv.Type.Equal(oidTPMVersion):
					info["version"] = v
				default:
					return nil, nil, bad(fmt.Sprintf("has attribute %v, not a TPM manufacturer, model or version", atv.Type))
				}
			}
		}
	}
	if info["manufacturer"] == nil {
		return nil, nil, bad("names no TPM manufacturer")
	}
	cert.UnhandledCriticalExtensions = slices.DeleteFunc(cert.UnhandledCriticalExtensions, oidSubjectAltName.Equal)
	return info, raw, nil
}
