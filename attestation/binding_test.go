package attestation

import (
	"bytes"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
)

// cocoVector reads the CoCo test vector from docs/spec/attestation.md §3.1.
func cocoVector(t *testing.T) map[string]string {
	t.Helper()
	spec, err := os.ReadFile("../docs/spec/attestation.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(spec), "CoCo test vector")
	if !ok {
		t.Fatal("docs/spec/attestation.md has no CoCo test vector")
	}
	_, block, _ := strings.Cut(rest, "```\n")
	block, _, _ = strings.Cut(block, "```")
	v := map[string]string{}
	for _, line := range strings.Split(block, "\n") {
		if k, val, ok := strings.Cut(line, " = "); ok {
			v[strings.Join(strings.Fields(k), " ")] = strings.TrimSpace(val)
		}
	}
	return v
}

func TestCoCoReportDataVector(t *testing.T) {
	v := cocoVector(t)
	r := RuntimeData{Nonce: bytes.Repeat([]byte{1}, 32), PublicKey: []byte(v["K"])}
	if got := base64.StdEncoding.EncodeToString(r.Nonce); got != v["N"] {
		t.Fatalf("N = %s, spec says %s", got, v["N"])
	}
	for _, tt := range []struct {
		rule   Binding
		prefix string
	}{
		{BindingCoCoKBS01, ``},
		{BindingCoCoKBS04, `"additional-evidence":"",`},
	} {
		want, ok := v["report_data "+string(tt.rule)]
		if !ok {
			t.Fatalf("spec has no report_data for %s", tt.rule)
		}
		doc, err := r.CoCoRuntimeData(tt.rule)
		if err != nil {
			t.Fatal(err)
		}
		// The document, written out independently of CoCoRuntimeData.
		wantDoc := `{` + tt.prefix + `"nonce":"` + v["N"] + `","tee-pubkey":` + v["K"] + `}`
		if string(doc) != wantDoc {
			t.Errorf("%s: document\n%s\nwant\n%s", tt.rule, doc, wantDoc)
		}
		sum := sha512.Sum384([]byte(wantDoc))
		if hex.EncodeToString(sum[:])+strings.Repeat("00", 16) != want {
			t.Errorf("%s: spec vector %s is not SHA-384 of the document, zero-padded", tt.rule, want)
		}
		got, err := r.ReportDataFor(tt.rule)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got[:]) != want {
			t.Errorf("%s: ReportDataFor = %x, spec says %s", tt.rule, got, want)
		}
	}
	kura, err := r.ReportDataFor(BindingKura)
	if err != nil || kura != r.ReportData() {
		t.Errorf("ReportDataFor(kura) = %x, %v; want ReportData()", kura, err)
	}
}

func TestCoCoBindingsDiffer(t *testing.T) {
	r := RuntimeData{Nonce: bytes.Repeat([]byte{1}, 32), PublicKey: []byte(`{"kty":"OKP"}`)}
	a, _ := r.ReportDataFor(BindingCoCoKBS01)
	b, _ := r.ReportDataFor(BindingCoCoKBS04)
	k, _ := r.ReportDataFor(BindingKura)
	if a == b || a == k || b == k {
		t.Error("two binding rules give the same report_data")
	}
	other := r
	other.PublicKey = []byte(`{"kty":"EC"}`)
	if o, _ := other.ReportDataFor(BindingCoCoKBS01); o == a {
		t.Error("another public key gives the same report_data")
	}
}

func TestCoCoRuntimeDataRefusals(t *testing.T) {
	nonce := bytes.Repeat([]byte{1}, 32)
	tests := []struct {
		name string
		r    RuntimeData
	}{
		{"no runtime data", RuntimeData{}},
		{"no public key", RuntimeData{Nonce: nonce}},
		{"context", RuntimeData{Nonce: nonce, PublicKey: []byte(`{"a":"b"}`), Context: []byte("c")}},
		{"unsorted", RuntimeData{Nonce: nonce, PublicKey: []byte(`{"b":"1","a":"2"}`)}},
		{"whitespace", RuntimeData{Nonce: nonce, PublicKey: []byte(`{"a": "b"}`)}},
		{"number", RuntimeData{Nonce: nonce, PublicKey: []byte(`{"a":1}`)}},
		{"duplicate key", RuntimeData{Nonce: nonce, PublicKey: []byte(`{"a":"1","a":"2"}`)}},
		{"non-ASCII", RuntimeData{Nonce: nonce, PublicKey: []byte(`{"a":"é"}`)}},
		{"escaped slash", RuntimeData{Nonce: nonce, PublicKey: []byte(`{"a":"\/"}`)}},
		{"array", RuntimeData{Nonce: nonce, PublicKey: []byte(`["a"]`)}},
		{"trailing data", RuntimeData{Nonce: nonce, PublicKey: []byte(`{"a":"b"}{}`)}},
		{"too deep", RuntimeData{Nonce: nonce, PublicKey: []byte(`{"a":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.r.ReportDataFor(BindingCoCoKBS01); !errors.Is(err, ErrMalformed) {
				t.Errorf("ReportDataFor error = %v, want ErrMalformed", err)
			}
		})
	}
	nested := RuntimeData{Nonce: nonce, PublicKey: []byte(`{"a":{"b":"c","d":[true,null,"x"]},"k":"\"\\"}`)}
	if _, err := nested.ReportDataFor(BindingCoCoKBS01); err != nil {
		t.Errorf("canonical nested key refused: %v", err)
	}
	if _, err := nested.ReportDataFor("coco-kbs-9"); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown binding: %v, want ErrMalformed", err)
	}
}

func TestParseBundleBinding(t *testing.T) {
	coco := `{"version":1,"tee":"sim","evidence":"AAEC","runtime_data":{"nonce":"AAAAAAAAAAAAAAAAAAAAAA==","public_key":"eyJhIjoiYiJ9"},"binding":"coco-kbs-0.4-sha384"}`
	b, err := ParseBundle([]byte(coco))
	if err != nil || b.Binding != BindingCoCoKBS04 {
		t.Fatalf("ParseBundle = %+v, %v", b, err)
	}
	for name, in := range map[string]string{
		"unknown binding":      strings.Replace(coco, "coco-kbs-0.4-sha384", "coco-kbs-0.2-sha384", 1),
		"empty runtime data":   `{"version":1,"tee":"sim","evidence":"AAEC","runtime_data":{},"binding":"coco-kbs-0.1-sha384"}`,
		"non-canonical key":    strings.Replace(coco, "eyJhIjoiYiJ9", "eyAiYSI6ImIifQ==", 1), // { "a":"b"}
		"binding not a string": strings.Replace(coco, `"coco-kbs-0.4-sha384"`, `4`, 1),
	} {
		if _, err := ParseBundle([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ParseBundle error = %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzCanonicalJSONObject(f *testing.F) {
	f.Add([]byte(`{"alg":"ECDH-ES+A256KW","crv":"P-256","kty":"EC","x":"AA","y":"BB"}`))
	f.Add([]byte(`{"a":{"b":[true,null,"x"]}}`))
	f.Add([]byte(`{"a":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := canonicalJSONObject(data)
		if err != nil {
			return
		}
		again, err := canonicalJSONObject(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("canonical form %s is not a fixed point: %s, %v", out, again, err)
		}
	})
}

// TestHoldsTPMPrefix checks the tpm rule: a prefix of report_data of at
// least 32 bytes, then zeros, holds it; a shorter one, or one followed by
// anything but zeros, does not. Other TEEs need all 64 bytes, nvidia 32.
func TestHoldsTPMPrefix(t *testing.T) {
	var want [ReportDataSize]byte
	for i := range want {
		want[i] = byte(i + 1)
	}
	prefix := func(n int, tail byte) []byte {
		b := make([]byte, ReportDataSize)
		copy(b, want[:n])
		for i := n; i < len(b); i++ {
			b[i] = tail
		}
		return b
	}
	for _, tc := range []struct {
		tee  TEE
		got  []byte
		want bool
	}{
		{TPM, want[:], true},
		{TPM, prefix(48, 0), true},
		{TPM, prefix(32, 0), true},
		{TPM, prefix(31, 0), false},
		{TPM, prefix(32, 7), false},
		{TPM, prefix(0, 0), false},
		{SNP, prefix(48, 0), false},
		{NVIDIA, prefix(32, 0), true},
		{NVIDIA, want[:], false},
		{TPM, want[:63], false},
	} {
		if got := tc.tee.Holds(tc.got, want); got != tc.want {
			t.Errorf("%s.Holds(%x) = %v, want %v", tc.tee, tc.got, got, tc.want)
		}
	}
}
