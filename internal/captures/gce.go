package captures

import "embed"

// gceFiles holds a Compute Engine vTPM attestation (see PROVENANCE.md).
//
//go:embed gce
var gceFiles embed.FS

// GCE is a real attestation of a Compute Engine confidential VM (AMD SEV,
// Container-Optimized OS 85) through its virtual TPM, as Google's
// go-tpm-tools recorded it. The quote's qualifying data is 0x90 0x09.
type GCE struct {
	AKPublic []byte // the attestation key's TPMT_PUBLIC
	AKCert   []byte // DER, issued by Google's "tpm_ek_v1_cloud_host-signer" intermediate
	// CAs are Google's vTPM EK/AK root and that intermediate (PEM), which
	// go-tpm-tools embeds as trust anchors.
	CAs []byte
	// Quote is the SHA-256 bank quote: TPMS_ATTEST then TPMT_SIGNATURE;
	// PCRs its 24 quoted values, PCR 0 to 23.
	Quote, PCRs []byte
	EventLog    []byte // the TCG PC Client crypto-agile boot log
}

// GCEvTPM returns fresh copies of the Compute Engine vTPM attestation. Its
// AK certificate is valid from 2021-08-31 to 2051-08-24.
func GCEvTPM() GCE {
	return GCE{
		AKPublic: readGCE("ak.tpmt"), AKCert: readGCE("ak-cert.der"), CAs: readGCE("gce-ak-ca.pem"),
		Quote: readGCE("quote.bin"), PCRs: readGCE("pcrs.bin"), EventLog: readGCE("binary_bios_measurements"),
	}
}

func readGCE(name string) []byte {
	b, err := gceFiles.ReadFile("gce/" + name)
	if err != nil {
		panic(err)
	}
	return b
}
