package tdx

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/go-tdx-guest/pcs"

	"github.com/kura-cc/kura/attestation"
)

// intelRootPEM is the Intel SGX Root CA certificate, byte-identical to the
// one go-tdx-guest embeds (verify/trusted_root.pem).
//
//go:embed intel_sgx_root_ca.pem
var intelRootPEM []byte

// Certificate subject common names Intel uses.
const (
	rootCN       = "Intel SGX Root CA"
	platformCN   = "Intel SGX PCK Platform CA"
	processorCN  = "Intel SGX PCK Processor CA"
	pckCN        = "Intel SGX PCK Certificate"
	tcbSigningCN = "Intel SGX TCB Signing"
)

// parseRoot parses the embedded Intel SGX Root CA.
func parseRoot() (*x509.Certificate, error) {
	block, _ := pem.Decode(intelRootPEM)
	if block == nil {
		return nil, errors.New("tdx: embedded Intel SGX root is not PEM")
	}
	return x509.ParseCertificate(block.Bytes)
}

// window is the interval in which a verified object is valid: the
// intersection of its certificates' validity and, for collateral, its
// issueDate..nextUpdate. Verification is cached; the window is checked
// against the verification time on every use.
type window struct {
	notBefore, notAfter time.Time
}

// narrow intersects w with [nb, na].
func (w *window) narrow(nb, na time.Time) {
	if w.notBefore.IsZero() || nb.After(w.notBefore) {
		w.notBefore = nb
	}
	if w.notAfter.IsZero() || na.Before(w.notAfter) {
		w.notAfter = na
	}
}

// check reports ErrCollateralExpired when now is outside the window.
func (w window) check(what string, now time.Time) error {
	switch {
	case now.Before(w.notBefore):
		return fmt.Errorf("%w: %s is not valid before %s (verification time %s)", attestation.ErrCollateralExpired, what, w.notBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case now.After(w.notAfter):
		return fmt.Errorf("%w: %s expired at %s (verification time %s)", attestation.ErrCollateralExpired, what, w.notAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkIntelCert checks what Intel's verification algorithm demands of every
// certificate besides its signature: X.509 v3, ECDSA P-256 key, ECDSA-SHA256
// signature, expected subject, issued by parent.
func checkIntelCert(cert, parent *x509.Certificate, cns ...string) error {
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if cert.Version != 3 || cert.SignatureAlgorithm != x509.ECDSAWithSHA256 || !ok || pub.Curve != elliptic.P256() {
		return fmt.Errorf("%w: certificate %q is not an X.509 v3 ECDSA P-256 certificate", attestation.ErrUntrustedRoot, cert.Subject.CommonName)
	}
	found := false
	for _, cn := range cns {
		found = found || cert.Subject.CommonName == cn
	}
	if !found {
		return fmt.Errorf("%w: certificate subject is %q, want %q", attestation.ErrUntrustedRoot, cert.Subject.CommonName, cns)
	}
	if !bytes.Equal(cert.RawIssuer, parent.RawSubject) {
		return fmt.Errorf("%w: certificate %q is not issued by %q", attestation.ErrUntrustedRoot, cert.Subject.CommonName, parent.Subject.CommonName)
	}
	return nil
}

// verifyChain checks that leaf (through intermediate, if any) chains to the
// trusted root, with Intel's constraints on every certificate and the X.509
// path rules of crypto/x509, and returns the chain's validity window.
// root is the chain's own root certificate, which must be the trusted one.
// Each signature is checked once, by crypto/x509's path validation; only
// when that fails are the signatures checked one by one, to tell a bad
// signature (attestation.ErrBadSignature) from a chain that breaks a path
// rule (attestation.ErrUntrustedRoot).
func verifyChain(trusted, root, intermediate, leaf *x509.Certificate, leafCNs []string, intermediateCNs ...string) (window, error) {
	var w window
	if !root.Equal(trusted) {
		return w, fmt.Errorf("%w: chain ends at %q, not the Intel SGX Root CA", attestation.ErrUntrustedRoot, root.Subject.CommonName)
	}
	parent := trusted
	pool := x509.NewCertPool()
	if intermediate != nil {
		if err := checkIntelCert(intermediate, trusted, intermediateCNs...); err != nil {
			return w, err
		}
		pool.AddCert(intermediate)
		parent = intermediate
	}
	if err := checkIntelCert(leaf, parent, leafCNs...); err != nil {
		return w, err
	}
	w.narrow(trusted.NotBefore, trusted.NotAfter)
	if intermediate != nil {
		w.narrow(intermediate.NotBefore, intermediate.NotAfter)
	}
	w.narrow(leaf.NotBefore, leaf.NotAfter)
	if w.notAfter.Before(w.notBefore) {
		if err := checkSignatures(trusted, intermediate, leaf); err != nil {
			return w, err
		}
		return w, fmt.Errorf("%w: the certificates in the chain are never valid at the same time", attestation.ErrCollateralExpired)
	}
	// Signatures and path validation (basic constraints, path length,
	// critical extensions) at an instant where every certificate is
	// valid; the caller checks its own verification time against the
	// window.
	roots := x509.NewCertPool()
	roots.AddCert(trusted)
	want := []*x509.Certificate{leaf, trusted}
	if intermediate != nil {
		want = []*x509.Certificate{leaf, intermediate, trusted}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool, CurrentTime: w.notBefore, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err == nil && !slices.ContainsFunc(chains, func(c []*x509.Certificate) bool { return slices.EqualFunc(c, want, (*x509.Certificate).Equal) }) {
		err = errors.New("x509: the chain found is not the one given")
	}
	if err != nil {
		if sigErr := checkSignatures(trusted, intermediate, leaf); sigErr != nil {
			return w, sigErr
		}
		return w, fmt.Errorf("%w: %v", attestation.ErrUntrustedRoot, err)
	}
	return w, nil
}

// checkSignatures checks each signature of the chain on its own, to name
// the certificate whose signature does not verify.
func checkSignatures(trusted, intermediate, leaf *x509.Certificate) error {
	parent := trusted
	if intermediate != nil {
		if err := intermediate.CheckSignatureFrom(trusted); err != nil {
			return fmt.Errorf("%w: certificate %q: %v", attestation.ErrBadSignature, intermediate.Subject.CommonName, err)
		}
		parent = intermediate
	}
	if err := leaf.CheckSignatureFrom(parent); err != nil {
		return fmt.Errorf("%w: certificate %q: %v", attestation.ErrBadSignature, leaf.Subject.CommonName, err)
	}
	return nil
}

// parseChainPEM parses a PEM chain of exactly n certificates, leaf first.
// A trailing NUL byte, which quotes carry, is tolerated.
func parseChainPEM(what string, data []byte, n int) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for len(certs) < n {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: %s has %d PEM certificates, want %d", attestation.ErrMalformed, what, len(certs), n)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %s certificate %d: %v", attestation.ErrMalformed, what, len(certs), err)
		}
		certs = append(certs, cert)
	}
	if rest = bytes.TrimRight(rest, "\x00\r\n\t "); len(rest) != 0 {
		return nil, fmt.Errorf("%w: %s has %d bytes after %d certificates", attestation.ErrMalformed, what, len(rest), n)
	}
	return certs, nil
}

// pckResult is a verified PCK certificate chain.
type pckResult struct {
	leaf, intermediate *x509.Certificate
	exts               *pcs.PckExtensions
	ca                 string // "platform" or "processor", for the PCK CRL URL
	window             window
}

// verifyPCKChain verifies the PCK certificate chain embedded in a quote.
func verifyPCKChain(trusted *x509.Certificate, chainPEM []byte) (*pckResult, error) {
	certs, err := parseChainPEM("PCK certificate chain", chainPEM, 3)
	if err != nil {
		return nil, err
	}
	leaf, intermediate, root := certs[0], certs[1], certs[2]
	w, err := verifyChain(trusted, root, intermediate, leaf, []string{pckCN}, platformCN, processorCN)
	if err != nil {
		return nil, err
	}
	exts, err := pcs.PckCertificateExtensions(leaf)
	if err != nil {
		return nil, fmt.Errorf("%w: PCK certificate SGX extensions: %v", attestation.ErrMalformed, err)
	}
	ca := "platform"
	if intermediate.Subject.CommonName == processorCN {
		ca = "processor"
	}
	return &pckResult{leaf: leaf, intermediate: intermediate, exts: exts, ca: ca, window: w}, nil
}

// cacheKey is SHA-256 over length-prefixed parts.
func cacheKey(parts ...[]byte) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// cache is a bounded, concurrency-safe map from the SHA-256 of verified
// bytes to what verifying them established. Only successes are cached, and
// values are never mutated after they are stored.
type cache[V any] struct {
	mu  sync.Mutex
	max int
	m   map[[sha256.Size]byte]V
}

func newCache[V any](max int) *cache[V] {
	return &cache[V]{max: max, m: make(map[[sha256.Size]byte]V)}
}

func (c *cache[V]) get(k [sha256.Size]byte) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

// put stores v, evicting an arbitrary entry when the cache is full.
func (c *cache[V]) put(k [sha256.Size]byte, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = v
}
