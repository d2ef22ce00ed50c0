// Package nvidiatest provides a test GPU for tests of what consumes NVIDIA
// GPU evidence: an attester whose SPDM reports are signed by a device key
// under a test root, not NVIDIA's.
//
// # Security model
//
// Test support only. Its reports verify only under a verifier configured
// with Root, never under NVIDIA's device root, so they cannot pass for a
// real GPU's; nothing outside tests imports this package.
package nvidiatest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/nvidia"
)

// GPU is a test GPU: a device key certified by a test root. It implements
// attestation.Attester for TEE nvidia.
type GPU struct {
	// Root is the test root its chain ends at: configure the nvidia
	// verifier with it (nvidia.Config.Roots).
	Root *x509.Certificate
	// Measurements are the blocks its reports carry, by index (default:
	// indexes 1 to 3, each 48 bytes of the index).
	Measurements map[byte][]byte

	key   *ecdsa.PrivateKey
	chain []byte // PEM, leaf first
}

var _ attestation.Attester = (*GPU)(nil)

// New makes a test GPU with a fresh root and device key, valid from an
// hour ago for a day.
func New() (*GPU, error) {
	rootKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	from, to := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nvidiatest root (NOT NVIDIA)"},
		NotBefore: from, NotAfter: to, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nvidiatest GPU"},
		NotBefore: from, NotAfter: to, KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, root, &key.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	g := &GPU{Root: root, key: key, Measurements: map[byte][]byte{}}
	for i := byte(1); i <= 3; i++ {
		g.Measurements[i] = make([]byte, 48)
		for j := range g.Measurements[i] {
			g.Measurements[i][j] = i
		}
	}
	g.chain = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER})...)
	return g, nil
}

// TEE returns nvidia.
func (g *GPU) TEE() attestation.TEE { return attestation.NVIDIA }

// Attest returns an nvidia bundle whose report answers the first 32 bytes
// of reportData, as a GPU answers kura's binding.
func (g *GPU) Attest(_ context.Context, reportData [attestation.ReportDataSize]byte) (*attestation.Bundle, error) {
	r := &nvidia.Report{Version: 0x11, RequestAttributes: 0x01, MeasurementOperation: 0xFF}
	copy(r.Nonce[:], reportData[:nvidia.NonceSize])
	if _, err := rand.Read(r.ResponderNonce[:]); err != nil {
		return nil, err
	}
	for i := 1; i < 255; i++ {
		if v, ok := g.Measurements[byte(i)]; ok {
			r.Blocks = append(r.Blocks, nvidia.MeasurementBlock{Index: byte(i), Specification: 0x01, ValueType: 1, Value: v})
		}
	}
	r.Opaque = []nvidia.OpaqueField{
		{ID: 3, Value: []byte("570.86.15\x00")},                       // driver version
		{ID: 6, Value: []byte{0x00, 0x74, 0x00, 0x96, 0x1c, 0, 0, 0}}, // VBIOS version
	}
	b := r.Marshal()
	digest := sha512.Sum384(b[:len(b)-nvidia.SignatureSize])
	sr, ss, err := ecdsa.Sign(rand.Reader, g.key, digest[:])
	if err != nil {
		return nil, err
	}
	sr.FillBytes(r.Signature[:nvidia.SignatureSize/2])
	ss.FillBytes(r.Signature[nvidia.SignatureSize/2:])
	return nvidia.NewBundle(r.Marshal(), g.chain)
}
