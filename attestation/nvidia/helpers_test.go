package nvidia

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/kura-cc/kura/internal/captures"
)

// vectorTime is when the captured report is verified: inside every
// certificate's validity (the latest notBefore is 2022-03-01, the
// notAfters are in 9999) and after its driver's release.
var vectorTime = time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)

// vector returns the captured Hopper report, its chain (PEM), NVIDIA's
// root and the nonce the report answers.
func vector(t testing.TB) (report, chain []byte, roots []*x509.Certificate, nonce []byte) {
	t.Helper()
	report, chain, rootPEM, nonce := captures.NVIDIAHopper()
	roots, err := ParseRoots(rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	return report, chain, roots, nonce
}

// newVerifier returns a Verifier for cfg, at vectorTime unless cfg.Now is
// set.
func newVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return vectorTime }
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sign sets r's signature by key over its transcript and returns the
// encoded report.
func sign(t testing.TB, r *Report, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	b := r.Marshal()
	digest := sha512.Sum384(b[:len(b)-SignatureSize])
	sr, ss, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sr.FillBytes(r.Signature[:SignatureSize/2])
	ss.FillBytes(r.Signature[SignatureSize/2:])
	return r.Marshal()
}

// testReport returns a well-formed report, unsigned, answering nonce:
// three measurements and the opaque fields a Hopper sends, with fwid.
func testReport(nonce []byte, fwid []byte) *Report {
	r := &Report{Version: spdmVersion11, RequestAttributes: attrSignature, MeasurementOperation: opAllMeasurements}
	copy(r.Nonce[:], nonce)
	copy(r.ResponderNonce[:], bytes.Repeat([]byte{0x5a}, NonceSize))
	for i := 1; i <= 3; i++ {
		r.Blocks = append(r.Blocks, MeasurementBlock{Index: byte(i), Specification: specDMTF, ValueType: 1, Value: bytes.Repeat([]byte{byte(i)}, 48)})
	}
	r.Opaque = []OpaqueField{
		{ID: fieldDriverVersion, Value: []byte("570.86.15\x00")},
		{ID: fieldVBIOSVersion, Value: []byte{0x00, 0x74, 0x00, 0x96, 0x1c, 0, 0, 0}},
		{ID: 17, Value: []byte("1010\x00")},
		{ID: 11, Value: []byte{nvdecEnabled}},
		{ID: 12, Value: []byte{1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}},
	}
	if fwid != nil {
		r.Opaque = append(r.Opaque, OpaqueField{ID: fieldFWID, Value: fwid})
	}
	return r
}

// testPKI is a root CA and a device certificate under it, P-384 like
// NVIDIA's.
type testPKI struct {
	rootKey, leafKey *ecdsa.PrivateKey
	root, leaf       *x509.Certificate
}

func genKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newPKI makes a root valid 2020–2030 and a leaf under it whose DICE
// extension, when fwid is set, carries it as NVIDIA's certificates do.
func newPKI(t testing.TB, fwid []byte) *testPKI {
	t.Helper()
	p := &testPKI{rootKey: genKey(t), leafKey: genKey(t)}
	from, to := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test device root"},
		NotBefore: from, NotAfter: to, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	p.root = createCert(t, rootTmpl, rootTmpl, &p.rootKey.PublicKey, p.rootKey)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x1234), Subject: pkix.Name{CommonName: "test GSP FMC"},
		NotBefore: from, NotAfter: to, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if fwid != nil {
		spki, err := x509.MarshalPKIXPublicKey(&p.rootKey.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		ext, err := asn1.Marshal(struct {
			Version int
			Key     asn1.RawValue
			FWID    struct {
				HashAlg asn1.ObjectIdentifier
				Digest  []byte
			}
		}{Version: 1, Key: asn1.RawValue{FullBytes: spki}, FWID: struct {
			HashAlg asn1.ObjectIdentifier
			Digest  []byte
		}{oidSHA384, fwid}})
		if err != nil {
			t.Fatal(err)
		}
		leafTmpl.ExtraExtensions = []pkix.Extension{{Id: oidDICE, Value: ext}}
	}
	p.leaf = createCert(t, leafTmpl, p.root, &p.leafKey.PublicKey, p.rootKey)
	return p
}

func createCert(t testing.TB, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
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

// pemChain encodes certs as a PEM chain.
func pemChain(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

// splitPEM returns the PEM blocks of a chain, in order.
func splitPEM(t testing.TB, chain []byte) [][]byte {
	t.Helper()
	var blocks [][]byte
	for rest := chain; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks = append(blocks, pem.EncodeToMemory(b))
	}
	return blocks
}
