package captures

import (
	"crypto/sha256"
	"io/fs"
	"testing"
)

// TestAzureAccessors checks that the Azure accessors reach every embedded
// Azure file (the licence is kept beside them, reached by no accessor), and
// that the quote decodes as its provenance says.
func TestAzureAccessors(t *testing.T) {
	snp, certs := AzureSNPHCLReport()
	attest, sig, pcrs, ak := AzureTPMQuote()
	for name, b := range map[string][]byte{
		"snp hcl report": snp, "certs": certs, "tdx hcl report": AzureTDXHCLReport(),
		"runtime data": AzureRuntimeData(), "attest": attest, "signature": sig, "ak": ak,
	} {
		if len(b) == 0 {
			t.Errorf("%s is empty", name)
		}
	}
	if len(pcrs) != 24 || len(sig) != 256 {
		t.Errorf("quote has %d PCRs and a %d-byte signature, want 24 and 256", len(pcrs), len(sig))
	}
	h := sha256.New()
	for _, p := range pcrs {
		h.Write(p)
	}
	// TPMS_ATTEST ends with the 32-byte pcrDigest of its TPMS_QUOTE_INFO.
	if got, want := h.Sum(nil), attest[len(attest)-32:]; string(got) != string(want) {
		t.Errorf("PCR values hash to %x, the quote says %x", got, want)
	}
	reached := map[string]bool{
		"azure/hcl-report-snp.bin": true, "azure/certs.pem": true, "azure/hcl-report-tdx.bin": true,
		"azure/var-data.bin": true, "azure/quote.bin": true, "azure/akpub.pem": true, "azure/LICENSE": true,
	}
	err := fs.WalkDir(azureFiles, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !reached[p] {
			t.Errorf("%s is embedded but no accessor returns it", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	snp[0] ^= 1
	if again, _ := AzureSNPHCLReport(); again[0] == snp[0] {
		t.Error("AzureSNPHCLReport returned shared memory")
	}
}
