//go:build cgo

package live

import (
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/kura-cc/kura/attestation/nvidia"
)

// TestNVMLValues: the values attester.go names are NVML's.
func TestNVMLValues(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{ccFeatureName(nvml.CC_SYSTEM_FEATURE_ENABLED), ccOn},
		{ccFeatureName(nvml.CC_SYSTEM_FEATURE_DISABLED), ccOff},
		{devToolsName(nvml.CC_SYSTEM_DEVTOOLS_MODE_ON), ccOn},
		{devToolsName(nvml.CC_SYSTEM_DEVTOOLS_MODE_OFF), ccOff},
		{environmentName(nvml.CC_SYSTEM_ENVIRONMENT_PROD), "prod"},
		{environmentName(nvml.CC_SYSTEM_ENVIRONMENT_SIM), "sim"},
		{environmentName(nvml.CC_SYSTEM_ENVIRONMENT_UNAVAILABLE), "unavailable"},
		{multiGPUName(nvml.CC_SYSTEM_MULTIGPU_NONE), "none"},
		{multiGPUName(nvml.CC_SYSTEM_MULTIGPU_PROTECTED_PCIE), "protected-pcie"},
		{multiGPUName(nvml.CC_SYSTEM_MULTIGPU_NVLE), "nvle"},
		{readyName(nvml.CC_ACCEPTING_CLIENT_REQUESTS_TRUE), "accepting work"},
		{readyName(nvml.CC_ACCEPTING_CLIENT_REQUESTS_FALSE), "not ready"},
		{cpuCapsName(nvml.CC_SYSTEM_CPU_CAPS_NONE), "none"},
		{cpuCapsName(nvml.CC_SYSTEM_CPU_CAPS_AMD_SEV), "amd-sev"},
		{cpuCapsName(nvml.CC_SYSTEM_CPU_CAPS_INTEL_TDX), "intel-tdx"},
		{cpuCapsName(nvml.CC_SYSTEM_CPU_CAPS_AMD_SEV_SNP), "amd-sev-snp"},
		{cpuCapsName(nvml.CC_SYSTEM_CPU_CAPS_AMD_SNP_VTOM), "amd-snp-vtom"},
		{gpusCapsName(nvml.CC_SYSTEM_GPUS_CC_CAPABLE), "cc capable"},
		{gpusCapsName(nvml.CC_SYSTEM_GPUS_CC_NOT_CAPABLE), "not cc capable"},
		{archName(nvml.DEVICE_ARCH_HOPPER), "hopper"},
		{archName(nvml.DEVICE_ARCH_BLACKWELL), "blackwell"},
		{archName(nvml.DEVICE_ARCH_AMPERE), "ampere"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if nvidia.NonceSize != nvml.CC_GPU_CEC_NONCE_SIZE {
		t.Errorf("nvidia.NonceSize %d, NVML's %d", nvidia.NonceSize, nvml.CC_GPU_CEC_NONCE_SIZE)
	}
}
