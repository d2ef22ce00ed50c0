package captures

import (
	"embed"
	"encoding/binary"
	"fmt"
)

// azureFiles holds the Azure confidential VM captures (MIT licence, kept as
// azure/LICENSE; see PROVENANCE.md).
//
//go:embed azure
var azureFiles embed.FS

// AzureSNPHCLReport returns the HCL report of an Azure SEV-SNP confidential
// VM as read from its vTPM's NV index 0x01400001 (2048 bytes: a 1819-byte
// report and zero padding), whose SNP report (Milan, VMPL 0) binds the
// runtime data that names the vTPM attestation key, and certs, a genuine
// VCEK, SEV-Milan ASK and ARK-Milan chain (PEM; the VCEK valid from
// 2023-01-01 to 2030-01-01) published with it. That VCEK is another chip's:
// its HWID is not the report's CHIP_ID, so the report's signature does not
// verify with it.
func AzureSNPHCLReport() (hclReport, certs []byte) {
	return readAzure("hcl-report-snp.bin"), readAzure("certs.pem")
}

// AzureTDXHCLReport returns the HCL report of an Azure TDX confidential VM
// (2600 bytes: a 2438-byte report and zero padding), whose TD report binds
// the runtime data. No TD quote for it was captured.
func AzureTDXHCLReport() []byte {
	return readAzure("hcl-report-tdx.bin")
}

// AzureRuntimeData returns the runtime data (the HCL report's variable data,
// JSON) of a third Azure SEV-SNP VM, captured alone.
func AzureRuntimeData() []byte {
	return readAzure("var-data.bin")
}

// AzureTPMQuote returns a vTPM quote from an Azure confidential VM: the
// TPMS_ATTEST structure the vTPM signed (extraData "challenge"), the raw
// RSASSA-PKCS1-v1_5 SHA-256 signature, the 24 SHA-256 PCR values it quotes,
// and akPEM, the attestation key (PKIX PEM) that signed it. That key is not
// the one either HCL report names: the quote comes from another VM. The
// file is the bincode serialisation azure-cvm-tooling writes (each vector
// a little-endian u64 length, then its bytes; then the PCR count and the
// 32-byte values), decoded here.
func AzureTPMQuote() (attest, signature []byte, pcrs [][]byte, akPEM []byte) {
	raw := readAzure("quote.bin")
	next := func(n uint64) []byte {
		if n > uint64(len(raw)) {
			panic(fmt.Sprintf("captures: azure/quote.bin: %d bytes wanted, %d left", n, len(raw)))
		}
		b := raw[:n]
		raw = raw[n:]
		return b
	}
	u64 := func() uint64 { return binary.LittleEndian.Uint64(next(8)) }
	signature = next(u64())
	attest = next(u64())
	for n := u64(); n > 0; n-- {
		pcrs = append(pcrs, next(32))
	}
	if len(raw) != 0 {
		panic("captures: azure/quote.bin: trailing bytes")
	}
	return attest, signature, pcrs, readAzure("akpub.pem")
}

// readAzure returns a fresh copy of an embedded Azure capture. The names
// are constants here, checked by this package's test.
func readAzure(name string) []byte {
	b, err := azureFiles.ReadFile("azure/" + name)
	if err != nil {
		panic(err)
	}
	return b
}
