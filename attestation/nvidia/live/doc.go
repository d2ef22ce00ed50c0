// Package live collects NVIDIA GPU attestation reports live, for package
// nvidia to verify.
//
// It runs inside the confidential VM the GPU is
// attached to, through NVML (github.com/NVIDIA/go-nvml, which dlopens
// libnvidia-ml.so.1 at run time: kura builds and starts without an NVIDIA
// driver, and a kura built without cgo has no NVML). NewAttester loads
// NVML, opens GPU AttesterConfig.Index and reads the CC state
// (nvmlSystemGetConfComputeState: CC feature, devtools mode, environment;
// nvmlSystemGetConfComputeSettings, nvmlSystemGetConfComputeGpusReadyState
// and nvmlSystemGetConfComputeCapabilities where the driver has them). It
// refuses, with an error wrapping attestation.ErrNoTEE, where there is no
// driver or no such GPU and, unless AllowCCOff, where CC is off (outside
// the multi-GPU protected PCIe mode) or devtools mode is on. Attest reads the state again, asks
// nvmlDeviceGetConfComputeGpuAttestationReport for a report on the first 32
// bytes of the report data and nvmlDeviceGetConfComputeGpuCertificate for
// the attestation certificate chain, and returns them as a bundle
// (nvidia.NewBundle). The CC state is the driver's word, read beside the report,
// not in it: refusing on it keeps an honest host from attesting a GPU it
// knows to be unprotected and tells its operator why (kura attest
// gpu-status), but it proves nothing to a verifier, which never sees it
// and could not trust a compromised host's driver if it did.
//
// It is its own package so that only what collects evidence (the CLI)
// links go-nvml, whose cgo linker flags tolerate unresolved symbols.
//
// # Security model
//
// An Attester produces evidence; it establishes nothing. Its refusals are
// a courtesy to an honest operator. Trust comes from package nvidia's
// verification of the report under NVIDIA's root.
package live
