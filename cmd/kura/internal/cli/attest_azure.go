package cli

import (
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/azure"
)

// azureBundle builds an az-snp-vtpm or az-tdx-vtpm bundle from raw
// artifacts: --hcl-report, --quote (the TPM quote) and --pcrs, with --vcek
// and --certs (SNP) or --td-quote and --collateral (TDX).
func (f *attestVerifyFlags) azureBundle() (*attestation.Bundle, error) {
	tee := attestation.TEE(f.tee)
	switch {
	case f.hclReport == "" || f.quote == "" || f.pcrs == "":
		return nil, usagef("--tee %s needs --hcl-report FILE, --quote FILE (the TPM quote: TPMS_ATTEST then TPMT_SIGNATURE) and --pcrs FILE", tee)
	case f.report != "" || f.tsm != "":
		return nil, usagef("--tee %s reads the hardware report from --hcl-report, not --report or --tsm", tee)
	case tee == attestation.AzSNPvTPM && (f.tdQuote != "" || f.collateral != ""):
		return nil, usagef("--td-quote and --collateral are for --tee %s", attestation.AzTDXvTPM)
	case tee == attestation.AzTDXvTPM && (f.vcek != "" || f.certs != ""):
		return nil, usagef("--vcek and --certs are for --tee %s", attestation.AzSNPvTPM)
	}
	var a azure.Artifacts
	for _, in := range []struct {
		flag, path string
		dst        *[]byte
	}{
		{"--hcl-report", f.hclReport, &a.HCLReport}, {"--quote", f.quote, &a.Quote}, {"--pcrs", f.pcrs, &a.PCRs},
		{"--vcek", f.vcek, &a.Certs}, {"--certs", f.certs, &a.Certs}, {"--td-quote", f.tdQuote, &a.TDQuote},
	} {
		if in.path == "" {
			continue
		}
		data, err := readInput(in.flag, in.path)
		if err != nil {
			return nil, err
		}
		*in.dst = append(*in.dst, data...)
	}
	col, err := loadTDXCollateral(f.collateral)
	if err != nil {
		return nil, err
	}
	a.Collateral = col
	return azure.NewBundle(tee, a)
}
