package cli

import (
	"fmt"
	"slices"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/coco"
)

// cocoTEEs are the --tee values --coco-evidence takes: the names a
// Confidential Containers attester's KBS client sends (sample is Trustee's
// sim).
var cocoTEEs = []string{"snp", "tdx", "sample", "sim", "az-snp-vtpm", "az-tdx-vtpm", "cca", "tpm"}

// cocoBundle builds the bundle of `--tee TYPE --coco-evidence FILE`: the
// evidence a CoCo attester puts in the KBS tee-evidence (or its
// primary_evidence), converted by attestation/coco, with --collateral for
// the TDX TEEs. Its runtime data is empty: a nonce given with --nonce is
// compared with report_data (the quote's extraData for az-*) as for raw
// artifacts.
func (f *attestVerifyFlags) cocoBundle() (*attestation.Bundle, error) {
	if f.report != "" || f.quote != "" || f.tsm != "" || f.hclReport != "" || f.pcrs != "" || f.tdQuote != "" || f.token != "" || f.vcek != "" || f.certs != "" {
		return nil, usagef("--coco-evidence holds the whole evidence; do not combine it with --report, --tsm, --quote, --hcl-report, --pcrs, --td-quote, --token, --vcek or --certs")
	}
	if !slices.Contains(cocoTEEs, f.tee) {
		return nil, usagef("--coco-evidence needs --tee snp, tdx, sample, az-snp-vtpm, az-tdx-vtpm, cca or tpm, the tee the attester named")
	}
	tee := attestation.TEE(f.tee)
	if f.tee == "sample" {
		tee = attestation.Sim
	}
	data, err := readInput("--coco-evidence", f.cocoEvidence)
	if err != nil {
		return nil, err
	}
	b, err := coco.ParseEvidence(tee, data)
	if err != nil {
		return nil, fmt.Errorf("--coco-evidence %s: %w", f.cocoEvidence, err)
	}
	if f.collateral != "" {
		if tee != attestation.TDX && tee != attestation.AzTDXvTPM {
			return nil, usagef("--collateral is for --tee tdx and az-tdx-vtpm")
		}
		if b.Collateral, err = loadTDXCollateral(f.collateral); err != nil {
			return nil, err
		}
	}
	return b, nil
}
