package server_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/azure"
	"github.com/kura-cc/kura/attestation/tpm"
	"github.com/kura-cc/kura/server"
	"github.com/kura-cc/kura/verifier"
)

// TestVerificationTPMAKs checks that the verifier trusts the attestation
// keys of Verification.TPMAKFiles (kura serve --tpm-ak) for tpm evidence
// (attestation/tpm's swtpm capture), refuses it without them, and refuses
// an AK file it cannot read.
func TestVerificationTPMAKs(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	captures := filepath.Join("..", "attestation", "tpm", "testdata", "swtpm")
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(captures, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	attest, sig, pcrs, err := azure.SplitTPMQuote(read("quote.bin"), read("pcrs.bin"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := tpm.NewBundle(read("ak.tpmt"), attest, sig, pcrs, read("binary_bios_measurements"), read("ascii_runtime_measurements"))
	if err != nil {
		t.Fatal(err)
	}
	opts := verifier.Options{Freshness: verifier.NoFreshness}

	svc, err := server.Verification{TPMAKFiles: []string{filepath.Join(captures, "ak.pem")}}.Service(ctx, log, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := svc.Verify(ctx, b, opts); err != nil || rep.Failed() {
		t.Fatalf("with the AK: %v; checks %+v", err, rep.Checks)
	}

	svc, err = server.Verification{}.Service(ctx, log, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Verify(ctx, b, opts); !errors.Is(err, attestation.ErrUntrustedRoot) {
		t.Errorf("without an AK: %v, want ErrUntrustedRoot", err)
	}

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a key"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{bad, filepath.Join(dir, "missing.pem")} {
		if _, err := (server.Verification{TPMAKFiles: []string{f}}).Service(ctx, log, nil, nil); !errors.Is(err, server.ErrConfig) {
			t.Errorf("AK file %s: %v, want ErrConfig", filepath.Base(f), err)
		}
	}
}
