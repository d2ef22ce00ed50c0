package main

import (
	"bytes"
	"encoding/binary"

	"github.com/kura-cc/kura/internal/captures"
)

// azureVectors returns the Azure vTPM captures as `kura attest verify --tee
// az-*` reads them: azure-snp-hcl.bin and azure-certs.pem, azure-tdx-hcl.bin,
// and the captured quote (of another VM) as azure-quote.bin (TPMS_ATTEST
// then TPMT_SIGNATURE: RSASSA, SHA-256) with its PCR values in
// azure-pcrs.bin.
func azureVectors() map[string][]byte {
	hcl, certs := captures.AzureSNPHCLReport()
	attest, sig, pcrs, _ := captures.AzureTPMQuote()
	quote := append(bytes.Clone(attest), 0x00, 0x14, 0x00, 0x0b) // TPM_ALG_RSASSA, TPM_ALG_SHA256
	quote = binary.BigEndian.AppendUint16(quote, uint16(len(sig)))
	quote = append(quote, sig...)
	return map[string][]byte{
		"azure-snp-hcl.bin": hcl,
		"azure-certs.pem":   certs,
		"azure-tdx-hcl.bin": captures.AzureTDXHCLReport(),
		"azure-quote.bin":   quote,
		"azure-pcrs.bin":    bytes.Join(pcrs, nil),
	}
}
