package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-cc/kura/internal/swtpm"
)

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
	sock := swtpm.Socket(t)
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

// TestAttestEvidenceComposite: kura attest evidence --device tpm0=tpm
// makes a composite bundle of the INSECURE sim and swtpm; kura attest
// verify verifies both, binding the TPM's quote to the nonce and the
// sim's report to the TPM's bundle, and reports the device.
func TestAttestEvidenceComposite(t *testing.T) {
	for _, p := range []string{"/sys/kernel/security/tpm0/binary_bios_measurements", "/sys/kernel/security/ima/ascii_runtime_measurements"} {
		if f, err := os.Open(p); err == nil {
			f.Close()
			t.Skipf("%s is readable: kura would send this machine's log with swtpm's quote", p)
		}
	}
	sock := swtpm.Socket(t)
	ctx := context.Background()
	dir := t.TempDir()
	ak, bundle := filepath.Join(dir, "ak.pem"), filepath.Join(dir, "bundle.json")
	nonce := "00112233445566778899aabbccddeeff"
	if code, out := run(ctx, "attest", "evidence", "--tee", "sim", "--device", "tpm0=tpm", "--tpm-device", sock, "--tpm-ak-out", ak, "--nonce", nonce, "-o", bundle); code != ExitOK {
		t.Fatalf("attest evidence: exit %d\n%s", code, out)
	}
	code, out := run(ctx, "attest", "verify", "--evidence", bundle, "--dev", "--tpm-ak", ak, "--nonce", nonce)
	for _, want := range []string{"tee:          sim", "passed   binding", "passed   tpm0: tpm quote signature", "passed   tpm0: binding", "passed   device tpm0", "tpm0     tpm      affirming"} {
		if !strings.Contains(out, want) {
			t.Errorf("attest verify output lacks %q", want)
		}
	}
	if code != ExitOK {
		t.Errorf("attest verify: exit %d\n%s", code, out)
	}
	// Without the TPM's AK pinned the device is untrusted, and so the bundle.
	if code, out := run(ctx, "attest", "verify", "--evidence", bundle, "--dev", "--nonce", nonce); code != ExitBadEvidence || !strings.Contains(out, "tpm0: attestation key pinned") {
		t.Errorf("unpinned device AK: exit %d\n%s", code, out)
	}
	if code, out := run(ctx, "attest", "evidence", "--tee", "sim", "--device", "cpu0=snp", "--nonce", nonce); code != ExitUsage {
		t.Errorf("--device cpu0=snp: exit %d\n%s", code, out)
	}
}
