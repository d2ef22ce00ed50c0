package tpm

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/pem"
	"os"
	"testing"

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
