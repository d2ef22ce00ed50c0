package tdx

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/kura-cc/kura/attestation"
)

// TestWarmCaches checks that what the caches hold spares only the
// verification of identical bytes: every tampering is still refused by a
// Verifier that has verified the genuine quote and collateral, and the TCB
// info and QE identity share one verified issuer chain.
func TestWarmCaches(t *testing.T) {
	vec := loadVector(t, "spr_e4")
	v := newTestVerifier(t, Config{Now: at(timeV4), CheckRevocations: true})
	if _, err := v.Verify(context.Background(), bundle(vec.quote, vec.col)); !errors.Is(err, ErrTCBNotSupported) {
		t.Fatalf("genuine quote: %v, want ErrTCBNotSupported", err)
	}
	if n := len(v.issuerChains.m); n != 1 {
		t.Errorf("%d issuer chains cached, want 1 (shared by the TCB info and the QE identity)", n)
	}
	for _, tc := range []struct {
		name    string
		tamper  func(q []byte, c *attestation.Collateral)
		wantErr error
	}{
		{"mr_td", func(q []byte, _ *attestation.Collateral) { q[184+7] ^= 1 }, attestation.ErrBadSignature},
		{"pck certificate", tamperPCKSignature, attestation.ErrBadSignature},
		{"tcb signing certificate", func(_ []byte, c *attestation.Collateral) {
			c.TCBInfoIssuerChain = tamperFirstCertSignature(t, c.TCBInfoIssuerChain)
		}, attestation.ErrBadSignature},
		{"qe identity issuer chain not a TCB signer", func(_ []byte, c *attestation.Collateral) {
			c.QEIdentityIssuerChain = c.PCKCRLIssuerChain
		}, attestation.ErrUntrustedRoot},
		{"tcb info signature", func(_ []byte, c *attestation.Collateral) {
			i := bytes.Index(c.TCBInfo, []byte(`"signature":"`)) + len(`"signature":"`)
			c.TCBInfo[i+3] = map[bool]byte{true: '0', false: '1'}[c.TCBInfo[i+3] != '0']
		}, attestation.ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := bytes.Clone(vec.quote)
			col := cloneCollateral(vec.col)
			tc.tamper(q, col)
			if _, err := v.Verify(context.Background(), bundle(q, col)); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify() error = %v, want %v", err, tc.wantErr)
			}
		})
	}
	// Cached chains are checked against each verification's time.
	late := newTestVerifier(t, Config{Now: at(timeFuture)})
	late.pckChains, late.issuerChains = v.pckChains, v.issuerChains
	if _, err := late.Verify(context.Background(), bundle(vec.quote, vec.col)); !errors.Is(err, attestation.ErrCollateralExpired) {
		t.Fatalf("cached chains at a later time: %v, want ErrCollateralExpired", err)
	}
}

// tamperFirstCertSignature changes one base64 character inside the
// signature of the first certificate of a PEM chain.
func tamperFirstCertSignature(t *testing.T, chain []byte) []byte {
	t.Helper()
	chain = bytes.Clone(decodeIssuerChain(chain))
	end := bytes.Index(chain, []byte("-----END CERTIFICATE-----"))
	if end < 0 {
		t.Fatal("no certificate in the chain")
	}
	i := end - 12
	for chain[i] == '\n' || chain[i] == '=' {
		i--
	}
	if chain[i] == 'A' {
		chain[i] = 'B'
	} else {
		chain[i] = 'A'
	}
	return chain
}

// TestVerifyChainPathRules checks that a chain whose signatures verify but
// which breaks crypto/x509's path rules is refused as an untrusted root,
// and a bad signature as a bad signature, now that signatures are checked
// by path validation only.
func TestVerifyChainPathRules(t *testing.T) {
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	from, to := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
	issue := func(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, key *ecdsa.PrivateKey) *x509.Certificate {
		tmpl.NotBefore, tmpl.NotAfter = from, to
		tmpl.SignatureAlgorithm = x509.ECDSAWithSHA256
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rootKey, caKey, leafKey := newKey(), newKey(), newKey()
	root := issue(&x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: rootCN},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, &rootKey.PublicKey, rootKey)
	ca := issue(&x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: platformCN},
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign}, root, &caKey.PublicKey, rootKey)
	leaf := func(critical bool) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: pckCN}}
		if critical {
			tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}}
		}
		return issue(tmpl, ca, &leafKey.PublicKey, caKey)
	}
	if _, err := verifyChain(root, root, ca, leaf(false), []string{pckCN}, platformCN); err != nil {
		t.Fatalf("good chain: %v", err)
	}
	if _, err := verifyChain(root, root, ca, leaf(true), []string{pckCN}, platformCN); !errors.Is(err, attestation.ErrUntrustedRoot) {
		t.Errorf("unhandled critical extension: %v, want ErrUntrustedRoot", err)
	}
	forged := *leaf(false)
	forged.Signature = bytes.Clone(forged.Signature)
	forged.Signature[len(forged.Signature)-1] ^= 1
	if _, err := verifyChain(root, root, ca, &forged, []string{pckCN}, platformCN); !errors.Is(err, attestation.ErrBadSignature) {
		t.Errorf("bad leaf signature: %v, want ErrBadSignature", err)
	}
	// A CA that is not one may not sign: refused whichever way it is told.
	notCA := issue(&x509.Certificate{SerialNumber: big.NewInt(4), Subject: pkix.Name{CommonName: platformCN}}, root, &caKey.PublicKey, rootKey)
	if _, err := verifyChain(root, root, notCA, leaf(false), []string{pckCN}, platformCN); err == nil {
		t.Error("intermediate without basic constraints accepted")
	}
}
