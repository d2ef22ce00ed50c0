package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kura-cc/kura/internal/captures"
)

// writeCoCoEvidence writes the captures into dir as Confidential Containers
// attesters send them in tee-evidence: coco-az-snp-vtpm.json and
// coco-az-tdx-vtpm.json (evidence version 1; the TDX one with the SPR E4
// quote of tdx-spr/ as its TD quote), coco-cca.json (CcaEvidence) and
// coco-tdx.json (TdxEvidence).
func writeCoCoEvidence(dir string) error {
	attest, sig, pcrs, _ := captures.AzureTPMQuote()
	snpHCL, certs := captures.AzureSNPHCLReport()
	vcek, _ := pem.Decode(certs)
	if vcek == nil {
		return fmt.Errorf("no VCEK in the Azure capture")
	}
	tdQuote, err := os.ReadFile(filepath.Join(dir, "tdx-spr", "quote.dat"))
	if err != nil {
		return err
	}
	hexPCRs := make([]string, len(pcrs))
	for i, p := range pcrs {
		hexPCRs[i] = `"` + hex.EncodeToString(p) + `"`
	}
	quote := fmt.Sprintf(`{"signature":"%x","message":"%x","pcrs":[%s]}`, sig, attest, strings.Join(hexPCRs, ","))
	b64 := base64.URLEncoding.EncodeToString
	token, _ := captures.CCAToken()
	ints := make([]int, len(token))
	for i, c := range token {
		ints[i] = int(c)
	}
	tokenJSON, _ := json.Marshal(ints)
	files := map[string]string{
		"coco-az-snp-vtpm.json": `{"version":1,"tpm_quote":` + quote + `,"hcl_report":"` + b64(snpHCL) + `","vcek":"` + b64(vcek.Bytes) + `"}`,
		"coco-az-tdx-vtpm.json": `{"version":1,"tpm_quote":` + quote + `,"hcl_report":"` + b64(captures.AzureTDXHCLReport()) + `","td_quote":"` + b64(tdQuote) + `"}`,
		"coco-cca.json":         `{"token":` + string(tokenJSON) + `}`,
		"coco-tdx.json":         `{"quote":"` + base64.StdEncoding.EncodeToString(tdQuote) + `","cc_eventlog":null,"aa_eventlog":null}`,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}
