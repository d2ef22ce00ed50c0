package coco

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/captures"
)

// ccaEvidenceJSON renders a token as guest-components' CcaEvidence.
func ccaEvidenceJSON(token []byte) []byte {
	return []byte(`{"token":` + jsonBytes(token) + `}`)
}

func TestCCAEvidence(t *testing.T) {
	token, _ := captures.CCAToken()
	b, err := ParseCCA(ccaEvidenceJSON(token))
	if err != nil {
		t.Fatal(err)
	}
	if b.TEE != attestation.CCA || !bytes.Equal(b.Evidence, token) || b.Certs != nil || b.VTPM != nil {
		t.Fatalf("bundle = %+v", b)
	}
	b.RuntimeData = attestation.RuntimeData{Nonce: bytes.Repeat([]byte{1}, 32), PublicKey: []byte(`{"crv":"P-256","kty":"EC","x":"AA","y":"AA"}`)}
	b.Binding = attestation.BindingCoCoKBS01
	if err := b.Check(); err != nil {
		t.Fatalf("bundle with a CoCo binding: %v", err)
	}
}

func TestCCAMalformed(t *testing.T) {
	token, _ := captures.CCAToken()
	tests := map[string]string{
		"token as base64":  `{"token":"0oRDoQEmoFkBAA=="}`,
		"empty token":      `{"token":[]}`,
		"byte over 255":    `{"token":[1,256]}`,
		"unknown member":   `{"token":[1],"challenge":[1]}`,
		"no token":         `{}`,
		"token over limit": `{"token":[` + string(bytes.Repeat([]byte("1,"), 64<<10)) + `1]}`,
		"trailing data":    string(ccaEvidenceJSON(token)) + "{}",
	}
	for name, ev := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseCCA([]byte(ev)); !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("ParseCCA() error = %v, want ErrMalformed", err)
			}
		})
	}
}
