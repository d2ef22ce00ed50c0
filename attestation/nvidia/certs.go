package nvidia

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	_ "embed"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kura-cc/kura/attestation"
)

// Bounds of a certificate chain.
const (
	// MaxCertChainSize bounds a PEM certificate chain (or roots file)
	// before it is parsed. Hopper chains are about 5 KiB.
	MaxCertChainSize = 64 << 10
	// maxChainCerts bounds the certificates in a chain: Hopper sends five
	// (FMC leaf, GSP BROM, Provisioner ICA, GH100 Identity, root).
	maxChainCerts = 8
)

// LoadRoots reads the PEM file at path (at most MaxCertChainSize bytes)
// and returns its certificates, for Config.Roots: NVIDIA's Device Identity
// CA, as nvtrust ships it (verifier_device_root.pem).
func LoadRoots(path string) ([]*x509.Certificate, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("nvidia: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxCertChainSize+1))
	if err != nil {
		return nil, fmt.Errorf("nvidia: %w", err)
	}
	roots, err := ParseRoots(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return roots, nil
}

// ParseRoots returns the certificates of a PEM file, for Config.Roots. The
// file may hold nothing but CERTIFICATE blocks, at least one.
func ParseRoots(data []byte) ([]*x509.Certificate, error) {
	certs, err := parsePEMCerts(data)
	if err != nil {
		return nil, fmt.Errorf("nvidia: roots: %v", err)
	}
	return certs, nil
}

//go:embed nvidia_device_root.pem
var deviceRootPEM []byte

// DeviceRoot returns NVIDIA's Device Identity CA, the root of every NVIDIA
// GPU's device certificate chain, embedded (from Trustee's verifier, as
// the vendor publishes it).
func DeviceRoot() *x509.Certificate {
	roots, err := ParseRoots(deviceRootPEM)
	if err != nil || len(roots) != 1 {
		panic(fmt.Sprintf("nvidia: embedded device root: %v", err))
	}
	return roots[0]
}

// parsePEMCerts parses a PEM file of at most MaxCertChainSize bytes holding
// one to maxChainCerts CERTIFICATE blocks and nothing else but
// whitespace.
func parsePEMCerts(data []byte) ([]*x509.Certificate, error) {
	if len(data) > MaxCertChainSize {
		return nil, fmt.Errorf("%d bytes, more than %d", len(data), MaxCertChainSize)
	}
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch {
		case len(certs) == maxChainCerts:
			return nil, fmt.Errorf("more than %d certificates", maxChainCerts)
		case block.Type != "CERTIFICATE":
			return nil, fmt.Errorf("PEM block %d is %q, not CERTIFICATE", len(certs), block.Type)
		case len(block.Headers) != 0:
			return nil, fmt.Errorf("PEM block %d has headers", len(certs))
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %v", len(certs), err)
		}
		certs = append(certs, c)
	}
	if n := len(bytes.TrimSpace(rest)); n != 0 {
		return nil, fmt.Errorf("%d bytes after %d PEM certificates are not PEM", n, len(certs))
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	return certs, nil
}

// verifyChain checks the device certificate chain (PEM, leaf first) up to
// one of roots at now, and returns the leaf and the chain it verified.
// Every certificate sent must be valid at now; the path may use any of
// them as intermediates.
func verifyChain(chainPEM []byte, roots []*x509.Certificate, now time.Time) (*x509.Certificate, []*x509.Certificate, error) {
	certs, err := parsePEMCerts(chainPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", attestation.ErrMalformed, err)
	}
	for i, c := range certs {
		if err := checkValidity(c, now); err != nil {
			return nil, nil, fmt.Errorf("%w: certificate %d %v", attestation.ErrCollateralExpired, i, err)
		}
	}
	if len(roots) == 0 {
		return nil, nil, fmt.Errorf("%w: no NVIDIA device root is configured", attestation.ErrUntrustedRoot)
	}
	if certs[0].IsCA {
		return nil, nil, fmt.Errorf("%w: the chain's first certificate, %q, is a CA's, not the GPU attestation key's: the leaf is missing", attestation.ErrUntrustedRoot, certs[0].Subject.CommonName)
	}
	opts := x509.VerifyOptions{
		Roots:         x509.NewCertPool(),
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		// The chain has no extended key usages; the leaf signs SPDM
		// messages, which no EKU names.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, r := range roots {
		opts.Roots.AddCert(r)
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := certs[0].Verify(opts)
	if err != nil {
		// x509 reports an expired root as an unknown authority: name it.
		last := certs[len(certs)-1]
		for _, r := range roots {
			if bytes.Equal(r.RawSubject, last.RawIssuer) || r.Equal(last) {
				if verr := checkValidity(r, now); verr != nil {
					return nil, nil, fmt.Errorf("%w: NVIDIA device root %v", attestation.ErrCollateralExpired, verr)
				}
			}
		}
		return nil, nil, fmt.Errorf("%w: %v", attestation.ErrUntrustedRoot, err)
	}
	return certs[0], chains[0], nil
}

// checkValidity says when c is valid if now is outside that.
func checkValidity(c *x509.Certificate, now time.Time) error {
	if now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return fmt.Errorf("%q is valid from %s to %s, not at %s", c.Subject.CommonName,
			c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// p384Key returns the leaf's public key if it is an ECDSA P-384 key, the
// only kind that signs Hopper reports.
func p384Key(leaf *x509.Certificate) (*ecdsa.PublicKey, error) {
	k, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P384() {
		return nil, fmt.Errorf("%w: the device certificate's key is %s, not ECDSA P-384", attestation.ErrBadSignature, leaf.PublicKeyAlgorithm)
	}
	return k, nil
}

// The TCG DICE extension in the device certificate that carries the
// FWID, the digest of the firmware the certificate was issued to.
var (
	oidDICE   = asn1.ObjectIdentifier{2, 23, 133, 5, 4, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
)

// certFWID returns the SHA-384 FWID of the certificate's TCG DICE
// extension (2.23.133.5.4.1), or nil when it has none. NVIDIA's GPU
// certificates encode the extension as SEQUENCE { version INTEGER,
// SubjectPublicKeyInfo, FWID }, FWID ::= SEQUENCE { hashAlg OID, digest
// OCTET STRING }; the TCG DiceTcbInfo form, whose FWIDs are a list under
// tag [6], is read too.
func certFWID(c *x509.Certificate) []byte {
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidDICE) {
			continue
		}
		var seq asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &seq); err != nil || len(rest) != 0 ||
			seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
			return nil
		}
		for elems := seq.Bytes; len(elems) > 0; {
			var elem asn1.RawValue
			var err error
			if elems, err = asn1.Unmarshal(elems, &elem); err != nil {
				return nil
			}
			switch {
			case elem.Class == asn1.ClassUniversal && elem.Tag == asn1.TagSequence:
				if d := fwidDigest(elem.FullBytes); d != nil {
					return d
				}
			case elem.Class == asn1.ClassContextSpecific && elem.Tag == 6 && elem.IsCompound: // DiceTcbInfo fwids
				for fwids := elem.Bytes; len(fwids) > 0; {
					var fwid asn1.RawValue
					if fwids, err = asn1.Unmarshal(fwids, &fwid); err != nil {
						return nil
					}
					if d := fwidDigest(fwid.FullBytes); d != nil {
						return d
					}
				}
			}
		}
	}
	return nil
}

// fwidDigest returns the digest of a DER FWID if its hash is SHA-384.
func fwidDigest(der []byte) []byte {
	var fwid struct {
		HashAlg asn1.ObjectIdentifier
		Digest  []byte
	}
	if rest, err := asn1.Unmarshal(der, &fwid); err != nil || len(rest) != 0 {
		return nil
	}
	if !fwid.HashAlg.Equal(oidSHA384) || len(fwid.Digest) != 48 {
		return nil
	}
	return fwid.Digest
}
