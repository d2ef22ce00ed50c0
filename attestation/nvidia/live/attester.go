package live

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/nvidia"
)

// AttesterConfig configures an Attester.
type AttesterConfig struct {
	// Index is the NVML index of the GPU to attest (default 0, the first).
	Index int
	// Logger receives a record when the Attester opens its GPU and one per
	// report, with the CC state NVML reported. Nil discards.
	Logger *slog.Logger
	// AllowCCOff opens the GPU whatever NVML says of the CC state:
	// confidential computing off or devtools mode on. For diagnostics
	// only (kura attest gpu-status): such a GPU's reports verify as well
	// as any, since the report does not carry the CC state, but the GPU
	// does not protect what it computes.
	AllowCCOff bool
}

// CCState is what NVML (the driver) says of the machine's confidential
// computing and of the Attester's GPU. It is the driver's word, read
// outside the signed report: nothing in a report proves it (see the
// package documentation). A field NVML could not report, or that this
// driver predates, is empty.
type CCState struct {
	// DriverVersion is the NVIDIA driver's version
	// (nvmlSystemGetDriverVersion).
	DriverVersion string `json:"driver_version"`
	// CCFeature is "on" or "off" (nvmlSystemGetConfComputeState's
	// ccFeature: is confidential computing enabled on the system).
	CCFeature string `json:"cc_feature"`
	// DevToolsMode is "on" or "off" (devToolsMode: with devtools on, the
	// GPU runs in CC mode but lets debuggers and profilers in).
	DevToolsMode string `json:"devtools_mode"`
	// Environment is "prod", "sim" or "unavailable" (environment: whether
	// the CPU side is a real confidential VM or simulated).
	Environment string `json:"environment"`
	// MultiGPUMode is "none", "protected-pcie" or "nvle"
	// (nvmlSystemGetConfComputeSettings, drivers from r550).
	MultiGPUMode string `json:"multi_gpu_mode,omitempty"`
	// GPUsReady is "accepting work" or "not ready"
	// (nvmlSystemGetConfComputeGpusReadyState: in CC mode, GPUs take no
	// work until something, usually after attesting them, sets them ready).
	GPUsReady string `json:"gpus_ready,omitempty"`
	// CPUCaps names the CPU TEE the driver sees: "none", "amd-sev",
	// "intel-tdx", "amd-sev-snp" or "amd-snp-vtom"
	// (nvmlSystemGetConfComputeCapabilities).
	CPUCaps string `json:"cpu_caps,omitempty"`
	// GPUsCaps is "cc capable" or "not cc capable" (the same call).
	GPUsCaps string `json:"gpus_caps,omitempty"`
	// GPUCount is the number of GPUs NVML sees (nvmlDeviceGetCount).
	GPUCount int `json:"gpu_count"`
	// GPU is the Attester's GPU.
	GPU GPUInfo `json:"gpu,omitzero"`
}

// GPUInfo identifies a GPU as NVML names it.
type GPUInfo struct {
	// Index is its NVML index.
	Index int `json:"index"`
	// Name is its product name (nvmlDeviceGetName), e.g. "NVIDIA H100 80GB
	// HBM3".
	Name string `json:"name"`
	// UUID is its UUID (nvmlDeviceGetUUID), "GPU-…".
	UUID string `json:"uuid"`
	// Architecture is "hopper", "blackwell", "ampere", … or "unknown (N)"
	// (nvmlDeviceGetArchitecture).
	Architecture string `json:"architecture,omitempty"`
}

// Ready reports whether s lets an Attester attest without AllowCCOff:
// confidential computing on, or the multi-GPU protected PCIe mode (PPCIe,
// in which NVIDIA runs CC off and protects the GPUs and NVSwitches
// together), and devtools off; if not, why not.
func (s CCState) Ready() (bool, string) {
	switch {
	case s.CCFeature != ccOn && s.MultiGPUMode != "protected-pcie":
		return false, fmt.Sprintf("confidential computing is %s (NVML ccFeature); enable it with NVIDIA's gpu-admin-tools (nvidia_gpu_tools.py --set-cc-mode=on) and reset the GPU", orUnknown(s.CCFeature))
	case s.DevToolsMode != ccOff:
		return false, fmt.Sprintf("devtools mode is %s (NVML devToolsMode): the GPU lets debuggers in; set --set-cc-mode=on, not devtools", orUnknown(s.DevToolsMode))
	}
	return true, ""
}

// Attester produces NVIDIA Hopper GPU attestation reports through NVML
// (libnvidia-ml, loaded at run time). It implements attestation.Attester
// for TEE nvidia and is safe for concurrent use. Close it when done.
type Attester struct {
	lib        nvmlLib
	dev        nvmlDevice
	log        *slog.Logger
	allowCCOff bool

	mu     sync.Mutex
	state  CCState
	closed bool
}

var _ attestation.Attester = (*Attester)(nil)

// NewAttester loads NVML, opens GPU cfg.Index and reads the CC state. It
// returns an error wrapping attestation.ErrNoTEE when there is no NVIDIA
// driver, no such GPU, a driver without confidential computing, or,
// unless cfg.AllowCCOff, CC off or devtools mode on.
func NewAttester(cfg AttesterConfig) (*Attester, error) {
	return newAttester(cfg, openNVML())
}

func newAttester(cfg AttesterConfig, lib nvmlLib) (*Attester, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := lib.init(); err != nil {
		return nil, fmt.Errorf("%w: no NVIDIA driver (libnvidia-ml) on this machine: %w", attestation.ErrNoTEE, err)
	}
	a := &Attester{lib: lib, log: log, allowCCOff: cfg.AllowCCOff}
	err := a.open(cfg.Index)
	if err != nil {
		lib.shutdown()
		return nil, err
	}
	s := a.state
	log.Info("nvidia gpu opened", "index", s.GPU.Index, "name", s.GPU.Name, "uuid", s.GPU.UUID, "architecture", s.GPU.Architecture,
		"driver", s.DriverVersion, "cc_feature", s.CCFeature, "devtools_mode", s.DevToolsMode, "environment", s.Environment,
		"multi_gpu_mode", s.MultiGPUMode, "gpus_ready", s.GPUsReady, "allow_cc_off", cfg.AllowCCOff)
	return a, nil
}

func (a *Attester) open(index int) error {
	s, err := a.lib.system()
	if err != nil {
		return err
	}
	if index < 0 || index >= s.GPUCount {
		return fmt.Errorf("%w: NVML sees %d NVIDIA GPUs; there is no GPU %d", attestation.ErrNoTEE, s.GPUCount, index)
	}
	a.dev, s.GPU, err = a.lib.device(index)
	if err != nil {
		return fmt.Errorf("%w: GPU %d: %w", attestation.ErrNoTEE, index, err)
	}
	s.GPU.Index = index
	a.state = s
	return a.checkState(s)
}

// checkState refuses s unless it is ready or AllowCCOff is set.
func (a *Attester) checkState(s CCState) error {
	if ok, why := s.Ready(); !ok {
		if !a.allowCCOff {
			return fmt.Errorf("%w: NVIDIA GPU %d (%s): %s", attestation.ErrNoTEE, s.GPU.Index, s.GPU.Name, why)
		}
		a.log.Warn("nvidia gpu not in confidential-computing mode; attesting anyway (AllowCCOff)", "index", s.GPU.Index, "reason", why)
	}
	return nil
}

// TEE returns attestation.NVIDIA.
func (a *Attester) TEE() attestation.TEE { return attestation.NVIDIA }

// State returns what NVML said of the CC state when the Attester opened
// its GPU or, after Attest, when it last attested.
func (a *Attester) State() CCState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// Attest returns a bundle whose evidence is the GPU's attestation report
// for the nonce reportData[:32] (an nvidia report signs 32 bytes of
// report data) and whose certs are the GPU's attestation certificate
// chain, PEM, leaf first. It reads the CC state again first and refuses
// as NewAttester does. The report is checked to parse and to answer the
// nonce; it is not verified. The caller fills in RuntimeData.
func (a *Attester) Attest(ctx context.Context, reportData [attestation.ReportDataSize]byte) (*attestation.Bundle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("nvidia attester: closed")
	}
	s, err := a.lib.system()
	if err != nil {
		return nil, fmt.Errorf("nvidia attester: %w", err)
	}
	s.GPU = a.state.GPU
	a.state = s
	if err := a.checkState(s); err != nil {
		return nil, err
	}
	if arch := s.GPU.Architecture; arch != "" && arch != "hopper" {
		return nil, fmt.Errorf("%w: NVIDIA GPU %d (%s) is %s: kura reads Hopper reports only", attestation.ErrNoTEE, s.GPU.Index, s.GPU.Name, arch)
	}
	var nonce [nvidia.NonceSize]byte
	copy(nonce[:], reportData[:nvidia.NonceSize])
	raw, err := a.dev.attestationReport(nonce)
	if err != nil {
		return nil, fmt.Errorf("nvidia attester: GPU %d: %w", s.GPU.Index, err)
	}
	r, err := nvidia.ParseReport(raw)
	if err != nil {
		return nil, fmt.Errorf("nvidia attester: GPU %d returned a bad report: %w", s.GPU.Index, err)
	}
	if r.Nonce != nonce {
		return nil, fmt.Errorf("nvidia attester: GPU %d returned a report for nonce %x, not %x", s.GPU.Index, r.Nonce, nonce)
	}
	rawChain, err := a.dev.attestationCertChain()
	if err != nil {
		return nil, fmt.Errorf("nvidia attester: GPU %d: %w", s.GPU.Index, err)
	}
	chain, n, err := chainPEM(rawChain)
	if err != nil {
		return nil, fmt.Errorf("nvidia attester: GPU %d: attestation certificate chain: %w", s.GPU.Index, err)
	}
	b, err := nvidia.NewBundle(raw, chain)
	if err != nil {
		return nil, fmt.Errorf("nvidia attester: GPU %d: %w", s.GPU.Index, err)
	}
	a.log.InfoContext(ctx, "nvidia gpu report generated", "index", s.GPU.Index, "uuid", s.GPU.UUID,
		"driver", s.DriverVersion, "cc_feature", s.CCFeature, "devtools_mode", s.DevToolsMode, "environment", s.Environment,
		"bytes", len(raw), "certificates", n)
	return b, nil
}

// Close releases NVML (nvmlShutdown). Attest fails after Close; a second
// Close does nothing.
func (a *Attester) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	return a.lib.shutdown()
}

// chainPEM returns an attestation certificate chain as NVML handed it out
// as PEM, leaf first, as NewBundle wants, and the number of certificates.
// Drivers write PEM, leaf first, padded with NULs; concatenated DER and a
// chain root first are accepted too, and reordered.
func chainPEM(raw []byte) ([]byte, int, error) {
	var (
		certs []*x509.Certificate
		err   error
	)
	if bytes.Contains(raw, []byte("-----BEGIN")) {
		certs, err = nvidia.ParseRoots(bytes.TrimRight(raw, "\x00"))
	} else {
		certs, err = parseDERCerts(raw)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", attestation.ErrMalformed, err)
	}
	if len(certs) > 1 && issuedBy(certs[1], certs[0]) && !issuedBy(certs[0], certs[1]) {
		slices.Reverse(certs) // root first
	}
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out, len(certs), nil
}

// maxChainCerts bounds the certificates of a chain NVML hands out, as
// package nvidia bounds a chain it verifies.
const maxChainCerts = 8

// parseDERCerts parses concatenated DER certificates, which NUL bytes may
// follow.
func parseDERCerts(raw []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := raw
	for len(rest) > 0 && rest[0] != 0 {
		if len(certs) == maxChainCerts {
			return nil, fmt.Errorf("more than %d certificates", maxChainCerts)
		}
		var v asn1.RawValue
		next, err := asn1.Unmarshal(rest, &v)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %v", len(certs), err)
		}
		c, err := x509.ParseCertificate(v.FullBytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %v", len(certs), err)
		}
		certs, rest = append(certs, c), next
	}
	switch {
	case len(bytes.TrimLeft(rest, "\x00")) != 0:
		return nil, fmt.Errorf("%d bytes after %d certificates are neither a certificate nor padding", len(rest), len(certs))
	case len(certs) == 0:
		return nil, errors.New("no certificate")
	}
	return certs, nil
}

// issuedBy reports whether c names issuer as its issuer.
func issuedBy(c, issuer *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, issuer.RawSubject)
}

// nvmlLib is the part of NVML an Attester uses: nvml_cgo.go implements it
// with github.com/NVIDIA/go-nvml, tests with a fake.
type nvmlLib interface {
	// init loads libnvidia-ml and calls nvmlInit.
	init() error
	// shutdown calls nvmlShutdown.
	shutdown() error
	// system reads the driver version, the CC state and the GPU count
	// (CCState without its GPU). It fails, wrapping
	// attestation.ErrNoTEE, when the driver has no CC interface.
	system() (CCState, error)
	// device opens GPU index and names it (GPUInfo without its index).
	device(index int) (nvmlDevice, GPUInfo, error)
}

// nvmlDevice is one GPU, as nvmlLib opened it.
type nvmlDevice interface {
	// attestationReport returns the report for nonce
	// (nvmlDeviceGetConfComputeGpuAttestationReport).
	attestationReport(nonce [nvidia.NonceSize]byte) ([]byte, error)
	// attestationCertChain returns the attestation certificate chain as
	// the driver wrote it (nvmlDeviceGetConfComputeGpuCertificate's
	// attestationCertChain).
	attestationCertChain() ([]byte, error)
}

// Values of NVML's CC state (nvml.h NVML_CC_SYSTEM_*, NVML_DEVICE_ARCH_*),
// and the names CCState gives them.
const (
	ccOff = "off"
	ccOn  = "on"
)

func ccFeatureName(v uint32) string { return enumName(v, ccOff, ccOn) }

func devToolsName(v uint32) string { return enumName(v, ccOff, ccOn) }

func environmentName(v uint32) string { return enumName(v, "unavailable", "sim", "prod") }

func multiGPUName(v uint32) string { return enumName(v, "none", "protected-pcie", "nvle") }

func readyName(v uint32) string { return enumName(v, "not ready", "accepting work") }

func cpuCapsName(v uint32) string {
	return enumName(v, "none", "amd-sev", "intel-tdx", "amd-sev-snp", "amd-snp-vtom")
}

func gpusCapsName(v uint32) string { return enumName(v, "not cc capable", "cc capable") }

func archName(v uint32) string {
	return enumName(v, "", "", "kepler", "maxwell", "pascal", "volta", "turing", "ampere", "ada", "hopper", "blackwell")
}

// enumName returns names[v], or "unknown (v)".
func enumName(v uint32, names ...string) string {
	if int64(v) < int64(len(names)) && names[v] != "" {
		return names[v]
	}
	return fmt.Sprintf("unknown (%d)", v)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// nvmlSymbolMissing is the error for an NVML function this driver lacks.
func nvmlSymbolMissing(fn string) error {
	return fmt.Errorf("%w: this NVIDIA driver has no %s; confidential computing needs r535 or later", attestation.ErrNoTEE, fn)
}
