package trust

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/party"
)

// FuzzParseBuild: nothing panics, every refusal is malformed or untrusted,
// and what parses re-encodes to an approval that parses again.
func FuzzParseBuild(f *testing.F) {
	id, err := party.Generate("builder", party.KEMX25519)
	if err != nil {
		f.Fatal(err)
	}
	b := &Build{TEE: "snp", Measurement: strings.Repeat("ab", 48), Version: "1", Source: "src", ApprovedAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	if err := b.Sign(id); err != nil {
		f.Fatal(err)
	}
	data, _ := b.Marshal()
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBuild(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUntrusted) {
				t.Fatalf("error %v is neither malformed nor untrusted", err)
			}
			return
		}
		again, _ := b.Marshal()
		if _, err := ParseBuild(again); err != nil {
			t.Fatalf("re-encoded approval does not parse: %v", err)
		}
	})
}

// FuzzParseDocument and FuzzParsePolicy: nothing panics; refusals are
// malformed.
func FuzzParseDocument(f *testing.F) {
	f.Add([]byte(`{"version":1,"token":"a.b.c","build":{"type":"x"},"build_proof":{"v":1}}`))
	f.Add([]byte(`{"version":1,"token":"t","evidence":{"version":1,"tee":"sim","evidence":"AA==","runtime_data":{}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseDocument(data); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v is not malformed", err)
		}
	})
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("verifiers: [v.json]\ngateway: {measurements: [{tee: snp, value: " + strings.Repeat("ab", 48) + "}]}\ngpu: {required: true}\nbuild_log: {key: k, approvers: [" + strings.Repeat("cd", 32) + "]}\nmax_age: 1m\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParsePolicy(data); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v is not malformed", err)
		}
	})
}
