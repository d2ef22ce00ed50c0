package tpm

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veraison/ear"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/verifier"
)

var update = flag.Bool("update", false, "rewrite testdata/swtpm from a fresh swtpm")

// TestSWTPMService runs swtpm evidence through the verifier service with
// kura's default policy: nonce binding, and the worker binary required by
// digest in the IMA list. With -update it rewrites testdata/swtpm, the
// captures the CLI scripts verify.
func TestSWTPMService(t *testing.T) {
	ctx := context.Background()
	worker := []byte("kura worker v1")
	wh := sha256.Sum256(worker)
	ref, err := appraisal.ParseReferenceValues([]byte("events:\n  required:\n    - {name: /usr/local/bin/kura-worker, digest: " + hex.EncodeToString(wh[:]) + "}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ap, err := appraisal.New(ctx, appraisal.Config{Reference: ref})
	if err != nil {
		t.Fatal(err)
	}
	service := func(ak *rsa.PublicKey) *verifier.Service {
		v, err := NewVerifier(Config{AKs: []*rsa.PublicKey{ak}})
		if err != nil {
			t.Fatal(err)
		}
		s, err := verifier.New(verifier.Config{TEEs: map[attestation.TEE]attestation.Verifier{attestation.TPM: v}, Appraiser: ap})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	nonce := bytes.Repeat([]byte{0x5f}, 32)
	rd := attestation.RuntimeData{Nonce: nonce, Context: []byte("run 1")}
	report := rd.ReportData()

	for _, tc := range []struct {
		name   string
		worker []byte
		nonce  []byte
		err    error
		status ear.TrustTier
		failed string
	}{
		{"approved worker", worker, nonce, nil, ear.TrustTierAffirming, ""},
		{"wrong nonce", worker, bytes.Repeat([]byte{0x60}, 32), attestation.ErrNonce, 0, "freshness"},
		{"patched worker", []byte("kura worker v1, patched"), nonce, nil, ear.TrustTierWarning, "required events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tt := newTestTPM(t)
			bootAndRun(tt, tc.worker)
			b := tt.quote(report[:])
			b.RuntimeData = rd
			rep, err := service(tt.akKey).Verify(ctx, b, verifier.Options{Freshness: verifier.ExpectedNonce, Nonce: tc.nonce})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
			} else if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			var failed []string
			for _, c := range rep.Checks { // the verifier's and the appraisal's
				if c.Status == attestation.Failed {
					failed = append(failed, c.Name)
					if c.Name == "required events" && !strings.Contains(c.Detail, "/usr/local/bin/kura-worker") {
						t.Errorf("%s: %q does not name the worker", c.Name, c.Detail)
					}
				}
			}
			if rep.Appraisal != nil {
				if rep.Appraisal.Status != tc.status {
					t.Errorf("status = %v, want %v", rep.Appraisal.Status, tc.status)
				}
			}
			if got := strings.Join(failed, ","); got != tc.failed {
				t.Errorf("failed checks %q, want %q", got, tc.failed)
			}
		})
	}

	if *update {
		writeCaptures(t, report[:])
	}
}

// writeCaptures writes testdata/swtpm: a quote of a fresh swtpm with its
// logs, and a second quote after PCR 7 was extended outside the log.
func writeCaptures(t *testing.T, qualifying []byte) {
	tt := newTestTPM(t)
	bootAndRun(tt, []byte("kura worker v1"))
	dir := filepath.Join("testdata", "swtpm")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(tt.akKey)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"ak.pem":                     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		"ak.tpmt":                    tt.akPub,
		"binary_bios_measurements":   tt.log.Marshal(),
		"ascii_runtime_measurements": tt.ima.marshal(),
		"qualifying_data.hex":        []byte(hex.EncodeToString(qualifying) + "\n"),
	}
	quoteFiles := func(b *attestation.Bundle, suffix string) {
		files["quote"+suffix+".bin"] = append(bytes.Clone(b.VTPM.Quote), b.VTPM.Signature...)
		files["pcrs"+suffix+".bin"] = bytes.Join(b.VTPM.PCRs, nil)
	}
	quoteFiles(tt.quote(qualifying), "")
	tt.extend(7, 0x80000001, []byte("SecureBoot=0"), false)
	quoteFiles(tt.quote(qualifying), "-unlogged")
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
