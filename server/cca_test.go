package server_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/cca"
	"github.com/kura-cc/kura/internal/captures"
	"github.com/kura-cc/kura/server"
	"github.com/kura-cc/kura/verifier"
)

// TestVerificationCCACPAKs checks that the verifier trusts the CPAKs of
// Verification.CCACPAKFiles (kura serve --cca-cpak), refuses CCA evidence
// without them, and refuses a CPAK file it cannot read.
func TestVerificationCCACPAKs(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	ta, _, _ := captures.CCACoMIDs()
	cpak := filepath.Join(dir, "cpak.json")
	if err := os.WriteFile(cpak, ta, 0o644); err != nil {
		t.Fatal(err)
	}
	token, _ := captures.CCAToken()
	b, err := cca.NewBundle(token)
	if err != nil {
		t.Fatal(err)
	}
	opts := verifier.Options{Freshness: verifier.NoFreshness}

	svc, err := server.Verification{CCACPAKFiles: []string{cpak}}.Service(ctx, log, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := svc.Verify(ctx, b, opts); err != nil || rep.Failed() {
		t.Fatalf("with the CPAK: %v; checks %+v", err, rep.Checks)
	}

	svc, err = server.Verification{}.Service(ctx, log, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Verify(ctx, b, opts); !errors.Is(err, attestation.ErrUntrustedRoot) {
		t.Errorf("without a CPAK: %v, want ErrUntrustedRoot", err)
	}

	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a key"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{bad, filepath.Join(dir, "missing.pem")} {
		if _, err := (server.Verification{CCACPAKFiles: []string{f}}).Service(ctx, log, nil, nil); !errors.Is(err, server.ErrConfig) {
			t.Errorf("CPAK file %s: %v, want ErrConfig", filepath.Base(f), err)
		}
	}
}
