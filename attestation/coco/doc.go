// Package coco reads the evidence that Confidential Containers (CoCo)
// attesters send — the guest-components attester crate, through the KBS
// protocol client — and turns it into kura evidence bundles, so an
// unmodified CoCo guest can attest to kura's key broker.
//
// Formats (docs/spec/keybroker.md §2.1): SNP evidence is the serde_json form
// of guest-components' SnpEvidence, whose attestation report is the sev
// crate's (versions 5 to 7) serialisation; the parser rebuilds the exact
// 1184-byte report the signature covers, following the AMD SEV-SNP ABI
// table ATTESTATION_REPORT, and turns the certificate chain into a GUID
// certificate table. TDX evidence is TdxEvidence, a base64 quote. Azure
// vTPM evidence (az-snp-vtpm, az-tdx-vtpm; versions 1 and 2, and the older
// form without a version) becomes the azure package's bundle: the HCL
// report as evidence, the TPM quote as the vtpm member, the VCEK as certs or
// the TD quote in vtpm. CCA evidence is CcaEvidence, the token. Sim
// evidence is kura's own sim document, or Trustee's "sample" evidence,
// which has no measurement, key or signature: the sim verifier accepts it,
// INSECURE, only where no sim keys are pinned, and the key broker only in
// dev mode.
//
// Security model: everything here is untrusted input, and this package
// verifies nothing. It only reshapes bytes; the TEE verifiers (packages
// snp, tdx, sim) check the rebuilt evidence's signatures, and the verifier
// service checks the binding under the bundle's CoCo rule
// (attestation.BindingCoCoKBS01 or BindingCoCoKBS04). A parser that rebuilt
// the wrong bytes could only make evidence fail, never pass: the signature
// covers what is rebuilt. Parsers bound sizes and never panic on input.
package coco
