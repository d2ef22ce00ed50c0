package tpm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"os"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/tpm/tpmtest"
	"github.com/kura-cc/kura/internal/captures"
)

func FuzzParseEventLog(f *testing.F) {
	f.Add(readVector(f))
	f.Add(specIDHeader(0x0004, 0x000B))
	swtpm, err := os.ReadFile("testdata/swtpm/binary_bios_measurements")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(swtpm)
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := parseEventLog(data)
		if err != nil {
			return
		}
		if !bytes.Equal(l.Marshal(), data) {
			t.Fatalf("marshal does not give the input back")
		}
	})
}

func FuzzParseIMAList(f *testing.F) {
	fh := sha256.Sum256([]byte("worker"))
	f.Add((&imaList{entries: []imaEntry{
		imaNGEntry(crypto.SHA256, "sha256", fh[:], "boot_aggregate"),
		imaNGEntry(crypto.SHA256, "sha256", fh[:], "/usr/local/bin/kura-worker"),
	}}).marshal())
	f.Add((&imaList{entries: []imaEntry{imaNGEntry(crypto.SHA1, "sha1", fh[:20], "/bin/a b")}}).marshal())
	swtpm, err := os.ReadFile("testdata/swtpm/ascii_runtime_measurements")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(swtpm)
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := parseIMAList(data)
		if err != nil {
			return
		}
		if !bytes.Equal(l.marshal(), data) {
			t.Fatalf("marshal = %q, want the input %q", l.marshal(), data)
		}
	})
}

func FuzzParseAK(f *testing.F) {
	for _, name := range []string{"ak.tpmt", "ak.pem"} {
		data, err := os.ReadFile("testdata/swtpm/" + name)
		if err != nil {
			f.Fatal(err)
		}
		if block, _ := pem.Decode(data); block != nil {
			data = block.Bytes
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ak, err := parseAK(data)
		if err == nil && ak.public != nil {
			_ = ak.checkAttributes()
		}
	})
}

// FuzzAKCert feeds the AK certificate parsers: certificates as PEM or DER,
// the TCG subject alternative name and Google's instance extension.
func FuzzAKCert(f *testing.F) {
	g := captures.GCEvTPM()
	f.Add(g.AKCert)
	f.Add(g.CAs)
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := parseCerts(data)
		if err != nil {
			return
		}
		for _, c := range certs {
			_, _ = tcgSubjectAltName(c)
			_, _ = gceInstance(c)
		}
	})
}

// FuzzMakeCredential feeds a privacy CA's request checks the EK
// certificate and AK of an enrolment request, seeded with a test
// manufacturer's EK certificate and swtpm's AK: whatever it refuses, it
// refuses with an attestation error, and what it accepts gives a
// credential.
func FuzzMakeCredential(f *testing.F) {
	m, err := tpmtest.NewManufacturer("Fuzz TPM Co")
	if err != nil {
		f.Fatal(err)
	}
	ek, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	ekCert, err := m.Certify(&ek.PublicKey, tpmtest.EKCert{})
	if err != nil {
		f.Fatal(err)
	}
	ak, err := os.ReadFile("testdata/swtpm/ak.tpmt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ekCert, ak)
	f.Add(m.Intermediate.Raw, ak)
	ca := newTestPrivacyCA(f, nil, m.Root, m.Intermediate)
	f.Fuzz(func(t *testing.T, ekCert, ak []byte) {
		blob, secret, state, err := ca.MakeCredential(context.Background(), ekCert, nil, ak)
		if err != nil {
			if !errors.Is(err, attestation.ErrAttestation) {
				t.Fatalf("refused without an attestation error: %v", err)
			}
			return
		}
		if len(blob) == 0 || len(secret) == 0 || len(state) == 0 {
			t.Fatal("accepted without a credential")
		}
	})
}
