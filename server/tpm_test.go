package server_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/azure"
	"github.com/kura-cc/kura/attestation/tpm"
	"github.com/kura-cc/kura/attestation/tpm/tpmtest"
	"github.com/kura-cc/kura/internal/keyfile"
	"github.com/kura-cc/kura/internal/swtpm"
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

// TestVerificationPrivacyCA: with TPM manufacturers configured
// (Verification.TPMEKCAFiles, kura serve --tpm-ek-ca) a server creates its
// privacy CA's key (0600) and certificate in the data directory, keeps
// them across restarts, enrols a software TPM's attestation key over its
// HTTP API and trusts the certificate it issued. Refused: no files for the
// CA, a key file others can read, a certificate for another key, an
// unreadable manufacturer file, a negative validity.
func TestVerificationPrivacyCA(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	m, err := tpmtest.NewManufacturer("Test TPM Co")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "mfr.pem")
	if err := os.WriteFile(root, tpmtest.PEM(m.Root, m.Intermediate), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	s, err := server.New(ctx, server.Config{DataDir: data, Roles: []server.Role{server.RoleVerifier}, Logger: log,
		Verification: server.Verification{TPMEKCAFiles: []string{root}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(ctx) })
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	keyFile, certFile := filepath.Join(data, "tpm-ak-ca-key.pem"), filepath.Join(data, "tpm-ak-ca.pem")
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("privacy CA key: %v %v", err, fi)
	}
	caPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}

	tr := swtpm.Start(t)
	ekCert, err := m.Provision(tr)
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	a, err := tpm.NewAttester(tpm.AttesterConfig{Transport: tr, EventLogPath: empty, IMAPath: empty})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ak, err := a.AttestationKeyPublic()
	if err != nil {
		t.Fatal(err)
	}
	vc := &verifier.Client{BaseURL: srv.URL}
	certPEM, err := vc.EnrollAK(ctx, ekCert, nil, ak, a.ActivateCredential)
	if err != nil {
		t.Fatalf("EnrollAK: %v", err)
	}
	if served, err := vc.AKCA(ctx); err != nil || !bytes.Equal(served, caPEM) {
		t.Errorf("GET ak-ca: %v; %s, want %s", err, served, caPEM)
	}
	rep, err := vc.Attest(ctx, certAttester{a, certPEM}, nil, nil)
	if err != nil {
		t.Fatalf("Attest: %v", err)
	}
	if vt := rep.Report.Claims["vtpm"].(map[string]any); vt["ak_trust"] != "certificate" || rep.Status != "affirming" {
		t.Errorf("status %s, ak_trust %v", rep.Status, vt["ak_trust"])
	}

	// Restarted, the server keeps its CA: the certificate still verifies.
	again, err := server.Verification{TPMEKCAFiles: []string{root}, TPMAKCAKeyFile: keyFile, TPMAKCACertFile: certFile}.Service(ctx, log, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, _, err := again.Nonce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rd := attestation.RuntimeData{Nonce: n}
	b, err := a.Attest(ctx, rd.ReportData())
	if err != nil {
		t.Fatal(err)
	}
	b.RuntimeData, b.Certs = rd, certPEM
	if rep, err := again.Verify(ctx, b, verifier.Options{}); err != nil || rep.Failed() {
		t.Errorf("after a restart: %v %+v", err, rep)
	}
	if after, _ := os.ReadFile(certFile); !bytes.Equal(after, caPEM) {
		t.Error("the CA certificate changed across a restart")
	}

	otherKey := filepath.Join(dir, "other-key.pem")
	if _, err := (server.Verification{TPMEKCAFiles: []string{root}, TPMAKCAKeyFile: otherKey, TPMAKCACertFile: certFile}).Service(ctx, log, nil, nil); !errors.Is(err, server.ErrConfig) || !strings.Contains(err.Error(), "not for the key") {
		t.Errorf("a certificate for another key: %v", err)
	}
	os.Chmod(keyFile, 0o644)
	if _, err := (server.Verification{TPMEKCAFiles: []string{root}, TPMAKCAKeyFile: keyFile, TPMAKCACertFile: certFile}).Service(ctx, log, nil, nil); !errors.Is(err, keyfile.ErrInsecure) {
		t.Errorf("a key file others can read: %v, want keyfile.ErrInsecure", err)
	}
	os.Chmod(keyFile, 0o600)
	for name, v := range map[string]server.Verification{
		"no CA files":          {TPMEKCAFiles: []string{root}},
		"missing manufacturer": {TPMEKCAFiles: []string{filepath.Join(dir, "none.pem")}, TPMAKCAKeyFile: keyFile, TPMAKCACertFile: certFile},
		"negative validity":    {TPMEKCAFiles: []string{root}, TPMAKCAKeyFile: keyFile, TPMAKCACertFile: certFile, TPMAKValidity: -time.Hour},
	} {
		if _, err := v.Service(ctx, log, nil, nil); !errors.Is(err, server.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}

// certAttester ships certs with its bundles.
type certAttester struct {
	*tpm.Attester
	certs []byte
}

func (c certAttester) Attest(ctx context.Context, rd [attestation.ReportDataSize]byte) (*attestation.Bundle, error) {
	b, err := c.Attester.Attest(ctx, rd)
	if err == nil {
		b.Certs = c.certs
	}
	return b, err
}
