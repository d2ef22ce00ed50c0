//go:build cgo

package live

import (
	"bytes"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/nvidia"
)

// openNVML returns NVML through go-nvml, which dlopens libnvidia-ml.so.1
// when init is called: nothing links libnvidia-ml at build time (its cgo
// flags leave NVML's symbols unresolved, for the library to supply), so
// kura builds and starts on machines without an NVIDIA driver.
func openNVML() nvmlLib { return &goNVML{lib: nvml.New()} }

// goNVML implements nvmlLib with go-nvml. Functions that CC-capable drivers
// added (r535 and later) are looked up before they are called: calling a
// symbol the loaded libnvidia-ml lacks would kill the process.
type goNVML struct{ lib nvml.Interface }

func (l *goNVML) init() error {
	if ret := l.lib.Init(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvmlInit: %w; install the NVIDIA driver (r535 or later for confidential computing) where the GPU is attached", ret)
	}
	return nil
}

func (l *goNVML) shutdown() error {
	if ret := l.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvidia: nvmlShutdown: %w", ret)
	}
	return nil
}

// has reports whether the loaded libnvidia-ml exports fn.
func (l *goNVML) has(fn string) bool { return l.lib.Extensions().LookupSymbol(fn) == nil }

func (l *goNVML) system() (CCState, error) {
	var s CCState
	v, ret := l.lib.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		return s, nvmlError("nvmlSystemGetDriverVersion", ret)
	}
	s.DriverVersion = v
	n, ret := l.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return s, nvmlError("nvmlDeviceGetCount", ret)
	}
	s.GPUCount = n
	if !l.has("nvmlSystemGetConfComputeState") {
		return s, nvmlSymbolMissing("nvmlSystemGetConfComputeState")
	}
	cc, ret := l.lib.SystemGetConfComputeState()
	if ret != nvml.SUCCESS {
		return s, nvmlError("nvmlSystemGetConfComputeState", ret)
	}
	s.CCFeature, s.DevToolsMode, s.Environment = ccFeatureName(cc.CcFeature), devToolsName(cc.DevToolsMode), environmentName(cc.Environment)
	// The rest is reported when the driver has it.
	if l.has("nvmlSystemGetConfComputeSettings") {
		if cs, ret := l.lib.SystemGetConfComputeSettings(); ret == nvml.SUCCESS {
			s.MultiGPUMode = multiGPUName(cs.MultiGpuMode)
		}
	}
	if l.has("nvmlSystemGetConfComputeGpusReadyState") {
		if r, ret := l.lib.SystemGetConfComputeGpusReadyState(); ret == nvml.SUCCESS {
			s.GPUsReady = readyName(r)
		}
	}
	if l.has("nvmlSystemGetConfComputeCapabilities") {
		if c, ret := l.lib.SystemGetConfComputeCapabilities(); ret == nvml.SUCCESS {
			s.CPUCaps, s.GPUsCaps = cpuCapsName(c.CpuCaps), gpusCapsName(c.GpusCaps)
		}
	}
	return s, nil
}

func (l *goNVML) device(index int) (nvmlDevice, GPUInfo, error) {
	var info GPUInfo
	d, ret := l.lib.DeviceGetHandleByIndex(index)
	if ret != nvml.SUCCESS {
		return nil, info, nvmlError("nvmlDeviceGetHandleByIndex", ret)
	}
	if info.Name, ret = d.GetName(); ret != nvml.SUCCESS {
		return nil, info, nvmlError("nvmlDeviceGetName", ret)
	}
	if info.UUID, ret = d.GetUUID(); ret != nvml.SUCCESS {
		return nil, info, nvmlError("nvmlDeviceGetUUID", ret)
	}
	if l.has("nvmlDeviceGetArchitecture") {
		if a, ret := d.GetArchitecture(); ret == nvml.SUCCESS {
			info.Architecture = archName(uint32(a))
		}
	}
	return &goNVMLDevice{l: l, d: d}, info, nil
}

type goNVMLDevice struct {
	l *goNVML
	d nvml.Device
}

func (g *goNVMLDevice) attestationReport(nonce [nvidia.NonceSize]byte) ([]byte, error) {
	const fn = "nvmlDeviceGetConfComputeGpuAttestationReport"
	if !g.l.has(fn) {
		return nil, nvmlSymbolMissing(fn)
	}
	// The nonce goes in, the report comes out in the same struct. The
	// CEC report (isCecAttestationReportPresent) is not used.
	r := &nvml.ConfComputeGpuAttestationReport{Nonce: nonce}
	if ret := g.d.GetConfComputeGpuAttestationReport(r); ret != nvml.SUCCESS {
		return nil, nvmlError(fn, ret)
	}
	if n := r.AttestationReportSize; n == 0 || int(n) > len(r.AttestationReport) {
		return nil, fmt.Errorf("%w: %s returned a report of %d bytes", attestation.ErrMalformed, fn, n)
	}
	return bytes.Clone(r.AttestationReport[:r.AttestationReportSize]), nil
}

func (g *goNVMLDevice) attestationCertChain() ([]byte, error) {
	const fn = "nvmlDeviceGetConfComputeGpuCertificate"
	if !g.l.has(fn) {
		return nil, nvmlSymbolMissing(fn)
	}
	// certChain is the device identity chain without the attestation
	// key's certificate; attestationCertChain is the chain the report's
	// signature verifies with.
	c, ret := g.d.GetConfComputeGpuCertificate()
	if ret != nvml.SUCCESS {
		return nil, nvmlError(fn, ret)
	}
	if n := c.AttestationCertChainSize; n == 0 || int(n) > len(c.AttestationCertChain) {
		return nil, fmt.Errorf("%w: %s returned an attestation chain of %d bytes", attestation.ErrMalformed, fn, n)
	}
	return bytes.Clone(c.AttestationCertChain[:c.AttestationCertChainSize]), nil
}

// nvmlError names the NVML function that failed; "not supported" means
// this GPU or driver has no confidential computing (attestation.ErrNoTEE).
func nvmlError(fn string, ret nvml.Return) error {
	if ret == nvml.ERROR_NOT_SUPPORTED || ret == nvml.ERROR_FUNCTION_NOT_FOUND {
		return fmt.Errorf("%w: %s: %w (this GPU or driver has no confidential computing)", attestation.ErrNoTEE, fn, ret)
	}
	return fmt.Errorf("%s: %w", fn, ret)
}
