package azure

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/captures"
)

// TestHCLReportVectors parses the captured HCL reports and checks what the
// captures' provenance says of them, including that the captured quote's
// attestation key is neither report's nor var-data.bin's: the quote comes
// from another VM, so no test can verify it with a captured HCL report.
func TestHCLReportVectors(t *testing.T) {
	snpRaw, _ := captures.AzureSNPHCLReport()
	tdxRaw := captures.AzureTDXHCLReport()
	_, _, _, akPEM := captures.AzureTPMQuote()
	block, _ := pem.Decode(akPEM)
	quoteAK, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		raw           []byte
		tee           attestation.TEE
		version       uint32
		reportDataAt  int
		runtimeLength int
	}{
		{"snp", snpRaw, attestation.AzSNPvTPM, 1, snpReportDataAt, 583},
		{"tdx", tdxRaw, attestation.AzTDXvTPM, 2, tdrReportData, 1202},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := parseHCLReport(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			if h.tee != tc.tee || h.version != tc.version || len(h.runtimeData) != tc.runtimeLength || h.hashType != hashTypeSHA256 {
				t.Fatalf("parsed %s v%d, %d bytes of runtime data, hash type %d", h.tee, h.version, len(h.runtimeData), h.hashType)
			}
			want := sha256.Sum256(h.runtimeData)
			rd := h.hardware[tc.reportDataAt : tc.reportDataAt+64]
			if !bytes.Equal(rd[:32], want[:]) || !allZero(rd[32:]) {
				t.Errorf("report_data %x does not bind the runtime data (SHA-256 %x)", rd, want)
			}
			r, err := parseRuntimeData(h.runtimeData)
			if err != nil {
				t.Fatal(err)
			}
			if r.ak.N.BitLen() != 2048 || r.ak.E != 65537 {
				t.Errorf("AK is RSA-%d, e=%d", r.ak.N.BitLen(), r.ak.E)
			}
			if r.ak.Equal(quoteAK) {
				t.Error("the captured quote's AK is this report's: update the tests, which assume otherwise")
			}
			if r.vmConfig["secure-boot"] == nil || r.vmConfig["vmUniqueId"] == nil {
				t.Errorf("vm-configuration %v lacks secure-boot or vmUniqueId", r.vmConfig)
			}
			if tc.tee == attestation.AzTDXvTPM {
				td, err := parseTDReport(h.hardware)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(td.reportData, rd) || allZero(td.mrTD) || td.tdAttributes[0]&1 != 0 {
					t.Errorf("TD report: report_data %x, MRTD %x, attributes %x", td.reportData, td.mrTD, td.tdAttributes)
				}
			}
		})
	}
	r, err := parseRuntimeData(captures.AzureRuntimeData())
	if err != nil {
		t.Fatal(err)
	}
	if r.ak.Equal(quoteAK) {
		t.Error("var-data.bin names the captured quote's AK: update the tests, which assume otherwise")
	}
	if r.userData != string(bytes.Repeat([]byte("0"), 128)) {
		t.Errorf("user-data %q", r.userData)
	}
}

// TestParseHCLReportRefuses checks that every malformed HCL report fails
// with ErrMalformed.
func TestParseHCLReportRefuses(t *testing.T) {
	good, _ := captures.AzureSNPHCLReport()
	tdxGood := captures.AzureTDXHCLReport()
	le := binary.LittleEndian
	mod := func(src []byte, f func(b []byte) []byte) []byte { return f(bytes.Clone(src)) }
	set := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint32(b[off:], v); return b }
	}
	for name, data := range map[string][]byte{
		"empty":                     nil,
		"truncated in header":       good[:16],
		"truncated in fixed part":   good[:varDataOffset-1],
		"truncated in runtime data": good[:varDataOffset+100],
		"oversized":                 append(bytes.Clone(good), make([]byte, MaxHCLReportSize)...),
		"bad signature":             mod(good, set(0, 0x41414141)),
		"header version 3":          mod(good, set(4, 3)),
		"report_size too small":     mod(good, set(8, 1818)),
		"report_size too large":     mod(good, set(8, 1820)),
		"data_size wrong":           mod(good, set(reqDataOffset, 604)),
		"data_size huge":            mod(good, set(reqDataOffset, 0xffffffff)),
		"request data version 2":    mod(good, set(reqDataOffset+4, 2)),
		"report type 3":             mod(good, set(reqDataOffset+8, 3)),
		"hash type 0":               mod(good, set(reqDataOffset+12, 0)),
		"hash type 4":               mod(good, set(reqDataOffset+12, 4)),
		"variable size past end":    mod(good, set(reqDataOffset+16, 5000)),
		"variable size huge":        mod(good, set(reqDataOffset+16, 0xfffffff0)),
		"variable size 1":           mod(good, set(reqDataOffset+16, 1)),
		"non-zero padding":          mod(good, func(b []byte) []byte { b[len(b)-1] = 1; return b }),
		"non-zero after td report":  mod(tdxGood, func(b []byte) []byte { b[hwAreaOffset+tdReportSize+5] = 1; return b }),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseHCLReport(data); !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	// Without padding, and with no byte to spare, the report still parses.
	h, _ := parseHCLReport(good)
	if _, err := parseHCLReport(good[:reqDataOffset+reqDataSize+len(h.runtimeData)]); err != nil {
		t.Errorf("unpadded report: %v", err)
	}
}

// TestParseTDReportRefuses checks the TD report's type and internal hashes.
func TestParseTDReportRefuses(t *testing.T) {
	tdxRaw := captures.AzureTDXHCLReport()
	good := tdxRaw[hwAreaOffset : hwAreaOffset+tdReportSize]
	for name, f := range map[string]func(b []byte) []byte{
		"short":               func(b []byte) []byte { return b[:1000] },
		"sgx report type":     func(b []byte) []byte { b[0] = 0; return b },
		"tcb info tampered":   func(b []byte) []byte { b[tdrTCBInfo+30] ^= 1; return b },
		"td info tampered":    func(b []byte) []byte { b[tdrTDInfo+20] ^= 1; return b },
		"tcb info hash wrong": func(b []byte) []byte { b[tdrTCBInfoHash] ^= 1; return b },
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseTDReport(f(bytes.Clone(good))); !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

// TestParseRuntimeDataRefuses checks the runtime data's strictness.
func TestParseRuntimeDataRefuses(t *testing.T) {
	k := testKey().PublicKey
	good := string(runtimeJSON(&k))
	if _, err := parseRuntimeData([]byte(good)); err != nil {
		t.Fatal(err)
	}
	n := `"n":"` + base64.RawURLEncoding.EncodeToString(k.N.Bytes()) + `"`
	for name, doc := range map[string]string{
		"not json":         `{"keys":`,
		"array":            `[]`,
		"trailing data":    good + `{}`,
		"duplicate member": `{"keys":[],"keys":[]}`,
		"duplicate in jwk": `{"keys":[{"kid":"HCLAkPub","kid":"HCLAkPub","kty":"RSA","e":"AQAB",` + n + `}]}`,
		"no keys":          `{"vm-configuration":{}}`,
		"no ak":            `{"keys":[{"kid":"HCLEkPub","kty":"RSA","e":"AQAB",` + n + `}]}`,
		"two aks":          `{"keys":[{"kid":"HCLAkPub","kty":"RSA","e":"AQAB",` + n + `},{"kid":"HCLAkPub","kty":"RSA","e":"AQAB",` + n + `}]}`,
		"ec key":           `{"keys":[{"kid":"HCLAkPub","kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`,
		"padded e":         `{"keys":[{"kid":"HCLAkPub","kty":"RSA","e":"AQAB=",` + n + `}]}`,
		"even e":           `{"keys":[{"kid":"HCLAkPub","kty":"RSA","e":"AQAA",` + n + `}]}`,
		"leading zero":     `{"keys":[{"kid":"HCLAkPub","kty":"RSA","e":"AAEAAQ",` + n + `}]}`,
		"short modulus":    `{"keys":[{"kid":"HCLAkPub","kty":"RSA","e":"AQAB","n":"tYVBpgABBOedWd2SNiT8o1I7FVCit2pDm2mr6B7b66_NNOlW3u42TrJwaB5nk4VRqXjdpobSVSpXItf-Aisx2Q"}]}`,
		"kid not string":   `{"keys":[{"kid":1,"kty":"RSA","e":"AQAB",` + n + `}]}`,
		"deep":             `{"a":[[[[[[[[[[1]]]]]]]]]],"keys":[]}`,
		"vm config array":  `{"keys":[{"kid":"HCLAkPub","kty":"RSA","e":"AQAB",` + n + `}],"vm-configuration":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseRuntimeData([]byte(doc)); !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}
