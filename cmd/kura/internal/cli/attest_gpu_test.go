package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation"
	nvidialive "github.com/kura-cc/kura/attestation/nvidia/live"
)

// TestAttestGPUStatusNoDriver: on a machine without an NVIDIA driver (CI),
// kura attest gpu-status, with or without --json, and kura attest evidence
// --device gpu0=nvidia exit with the no-TEE code and say why. Where a
// driver is present it skips.
func TestAttestGPUStatusNoDriver(t *testing.T) {
	a, err := nvidialive.NewAttester(nvidialive.AttesterConfig{AllowCCOff: true})
	if err == nil {
		a.Close()
		t.Skip("this machine has an NVIDIA driver and GPU")
	}
	if !errors.Is(err, attestation.ErrNoTEE) {
		t.Fatalf("NewAttester: %v, want ErrNoTEE", err)
	}
	ctx := context.Background()
	for _, args := range [][]string{
		{"attest", "gpu-status"},
		{"attest", "gpu-status", "--json"},
		{"attest", "evidence", "--tee", "sim", "--device", "gpu0=nvidia", "--nonce", "00112233445566778899aabbccddeeff"},
	} {
		code, out := run(ctx, args...)
		if code != ExitFailure || !strings.Contains(out, "no TEE found") || !strings.Contains(out, "libnvidia-ml") {
			t.Errorf("kura %s: exit %d, want %d saying no TEE found and why\n%s", strings.Join(args, " "), code, ExitFailure, out)
		}
		if strings.Contains(out, "Run 'kura --help'") {
			t.Errorf("kura %s: a missing driver is not a usage error\n%s", strings.Join(args, " "), out)
		}
	}
	if code, out := run(ctx, "attest", "evidence", "--tee", "sim", "--device", "gpu0=amd", "--nonce", "00112233445566778899aabbccddeeff"); code != ExitUsage || !strings.Contains(out, "tpm, nvidia or sim") {
		t.Errorf("--device gpu0=amd: exit %d\n%s", code, out)
	}
}

// TestGPUStatusPrint: the text of kura attest gpu-status names the CC
// state, each GPU and its report's checks, and says the state is the
// driver's word; its JSON has the documented fields.
func TestGPUStatusPrint(t *testing.T) {
	st := gpuStatus{
		CCState: nvidialive.CCState{DriverVersion: "550.90.07", CCFeature: "off", DevToolsMode: "off", Environment: "prod", GPUCount: 1},
		Problem: "confidential computing is off (NVML ccFeature)",
		GPUs: []gpuAttest{{
			GPUInfo: nvidialive.GPUInfo{Name: "NVIDIA H100 80GB HBM3", UUID: "GPU-1", Architecture: "hopper"},
			Report:  gpuReport{Fetched: true, Bytes: 4117, Verified: true, Checks: []attestation.Check{{Name: "report signature", Status: attestation.Passed}}},
		}},
	}
	var text strings.Builder
	printGPUStatus(&text, &st)
	for _, want := range []string{"driver:          550.90.07", "cc feature:      off", "multi-gpu mode:  -", "gpu 0:           NVIDIA H100 80GB HBM3 GPU-1 (hopper)",
		"fetched (4117 bytes) for a random nonce, verified", "passed   report signature", "not ready: confidential computing is off", "the driver's word"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	var doc strings.Builder
	if err := printJSON(&doc, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"driver_version": "550.90.07"`, `"cc_feature": "off"`, `"gpu_count": 1`, `"ready": false`, `"uuid": "GPU-1"`, `"verified": true`} {
		if !strings.Contains(doc.String(), want) {
			t.Errorf("JSON lacks %s:\n%s", want, doc.String())
		}
	}
	if strings.Contains(doc.String(), `"gpu":`) {
		t.Errorf("JSON has the system state's empty gpu:\n%s", doc.String())
	}
}
