package tpm

import (
	"errors"
	"os"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/kura-cc/kura/attestation"
)

// TestAKAttributes checks that only a restricted signing key the TPM
// generated passes, and that pinned keys load.
func TestAKAttributes(t *testing.T) {
	data, err := os.ReadFile("testdata/swtpm/ak.tpmt")
	if err != nil {
		t.Fatal(err)
	}
	ak, err := parseAK(data)
	if err != nil || ak.public == nil {
		t.Fatalf("parseAK: %v", err)
	}
	if err := ak.checkAttributes(); err != nil {
		t.Fatalf("swtpm AK: %v", err)
	}
	keys, err := LoadAKs("testdata/swtpm/ak.pem")
	if err != nil || len(keys) != 1 || !keys[0].Equal(ak.key) {
		t.Fatalf("LoadAKs: %v", err)
	}
	for name, mutate := range map[string]func(a *tpm2.TPMAObject){
		"not restricted": func(a *tpm2.TPMAObject) { a.Restricted = false },
		"exportable":     func(a *tpm2.TPMAObject) { a.FixedTPM = false },
		"imported":       func(a *tpm2.TPMAObject) { a.SensitiveDataOrigin = false },
		"decrypts":       func(a *tpm2.TPMAObject) { a.Decrypt = true },
	} {
		pub := *ak.public
		mutate(&pub.ObjectAttributes)
		bad, err := parseAK(tpm2.Marshal(pub))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := bad.checkAttributes(); !errors.Is(err, attestation.ErrUntrustedRoot) {
			t.Errorf("%s: %v, want ErrUntrustedRoot", name, err)
		}
	}
	if _, err := parseAK(append(data, 0)); !errors.Is(err, attestation.ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
}
