package cli

import (
	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/cmd/kura/internal/bench"
)

func newBenchAttestCmd() *cobra.Command {
	var cfg bench.AttestConfig
	cmd := &cobra.Command{
		Use:   "attest [--n 200] [--pairs 3]",
		Short: "SEV-SNP and TDX verification against go-sev-guest and go-tdx-guest on the same evidence",
		Long: `Verify real captured evidence offline, --n times per measurement in --pairs alternated pairs, with
kura's verifiers and with the libraries they build on, and print verifications per second:

  snp verify, cold  a new snp.Verifier per report (empty chain cache; making it is not timed)
                    against go-sev-guest verify.SnpAttestation + validate.SnpAttestation with the
                    Verifier's validation options, on go-sev-guest's Milan vector
  snp verify, warm  one snp.Verifier that verified the vector's chain before, against the same
  tdx verify, cold  a new tdx.Verifier per quote against go-tdx-guest verify.RawTdxQuote with the
                    same collateral from memory, on the Sapphire Rapids v4 quote (both verify
                    everything and then find no matching TCB level, as they must for it)
  tdx verify, warm  one tdx.Verifier that verified the quote before, against the same

The machines these run on are shared: compare the columns of one run, not runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchErr(bench.Attest(cmd.Context(), cfg, cmd.OutOrStdout()))
		},
	}
	cmd.Flags().IntVar(&cfg.N, "n", 200, "verifications per measurement")
	cmd.Flags().IntVar(&cfg.Pairs, "pairs", 3, "alternated pairs per figure")
	cmd.Flags().BoolVar(&cfg.JSON, "json", false, "print the figures as JSON")
	return cmd
}
