package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startSWTPMSocket starts swtpm serving a Unix socket, as --tpm-device
// takes it, and returns the socket's path. Without swtpm the test is
// skipped, unless CI is set: CI installs it.
func startSWTPMSocket(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("swtpm is not installed (apt-get install swtpm), and CI is set: %v", err)
		}
		t.Skip("swtpm is not installed (apt-get install swtpm)")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "tpm.sock")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "socket", "--tpm2", "--tpmstate", "dir="+dir,
		"--server", "type=unixio,path="+sock, "--ctrl", "type=unixio,path="+filepath.Join(dir, "ctrl.sock"),
		"--flags", "not-need-init,startup-clear")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start swtpm: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("swtpm did not listen on %s; stderr: %s", sock, stderr.String())
		}
	}
}

// TestAttestEvidenceTPM: kura attest evidence --tee tpm quotes swtpm
// through its socket and writes the attestation key, with which kura
// attest verify accepts the bundle for its nonce only; the Azure TEEs
// find no HCL report in a plain TPM; --tpm-ak-out belongs to tpm.
func TestAttestEvidenceTPM(t *testing.T) {
	for _, p := range []string{"/sys/kernel/security/tpm0/binary_bios_measurements", "/sys/kernel/security/ima/ascii_runtime_measurements"} {
		if f, err := os.Open(p); err == nil {
			f.Close()
			t.Skipf("%s is readable: kura would send this machine's log with swtpm's quote", p)
		}
	}
	sock := startSWTPMSocket(t)
	ctx := context.Background()
	dir := t.TempDir()
	ak, bundle := filepath.Join(dir, "ak.pem"), filepath.Join(dir, "bundle.json")
	nonce := "00112233445566778899aabbccddeeff"
	if code, out := run(ctx, "attest", "evidence", "--tee", "tpm", "--tpm-device", sock, "--tpm-ak-out", ak, "--nonce", nonce, "-o", bundle); code != ExitOK {
		t.Fatalf("attest evidence: exit %d\n%s", code, out)
	}
	code, out := run(ctx, "attest", "verify", "--evidence", bundle, "--tpm-ak", ak, "--nonce", nonce)
	for _, want := range []string{"tee:          tpm", "passed   attestation key pinned", "passed   tpm quote signature", "passed   binding"} {
		if !strings.Contains(out, want) {
			t.Errorf("attest verify output lacks %q", want)
		}
	}
	if code != ExitOK {
		t.Errorf("attest verify: exit %d\n%s", code, out)
	}
	if code, out := run(ctx, "attest", "verify", "--evidence", bundle, "--tpm-ak", ak, "--nonce", "ffeeddccbbaa99887766554433221100"); code != ExitPolicy || !strings.Contains(out, "failed   freshness") {
		t.Errorf("another nonce: exit %d\n%s", code, out)
	}

	for _, tee := range []string{"az-snp-vtpm", "az-tdx-vtpm"} {
		if code, out := run(ctx, "attest", "evidence", "--tee", tee, "--tpm-device", sock, "--nonce", nonce); code == ExitOK || !strings.Contains(out, "not an Azure confidential VM") {
			t.Errorf("--tee %s on a plain TPM: exit %d\n%s", tee, code, out)
		}
	}
	if code, out := run(ctx, "attest", "evidence", "--tee", "sim", "--tpm-ak-out", ak, "--nonce", nonce); code != ExitUsage {
		t.Errorf("--tpm-ak-out with --tee sim: exit %d\n%s", code, out)
	}
	if code, out := run(ctx, "attest", "evidence", "--tee", "tpm", "--tpm-device", filepath.Join(dir, "none"), "--nonce", nonce); code == ExitOK || !strings.Contains(out, "no TEE found") {
		t.Errorf("no TPM: exit %d\n%s", code, out)
	}
}
