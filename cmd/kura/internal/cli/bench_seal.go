package cli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/cmd/kura/internal/bench"
)

// newBenchSealCmd is `kura bench seal` and its hidden baseline process.
func newBenchSealCmd() *cobra.Command {
	var cfg bench.SealConfig
	var size string
	cmd := &cobra.Command{
		Use:   "seal [--size 256MiB] [--pairs 3] [--json]",
		Short: "Time kura data seal of conforming Parquet and of CSV against age and against DuckDB's own conversion",
		Long: `Generate, untimed, a CSV and a Parquet file of --size bytes each with the clean-room story's
flights schema (phone numbers in E.164, so the Parquet file already conforms to the schema), then
run, each in its own process from this binary, alternating (--pairs):

  seal conforming Parquet   kura data seal of the Parquet file (its E.164 values checked, sealed as
                            it is) against age encrypting the same file to an X25519 recipient,
                            streaming to a file (filippo.io/age); target ≤ 1.5×
  seal CSV                  kura data seal of the CSV (validated, normalised, converted, the
                            Parquet sealed as DuckDB writes it) against DuckDB's own
                            COPY (FROM read_csv(...)) TO Parquet with its defaults, the Parquet
                            sealed with the kura envelope as DuckDB writes it; target ≤ 1.3×
  peak RSS                  each process's peak resident memory (VmHWM on Linux), both rows

Times are wall clock, process start included on both sides. The machines these run on are
shared: compare the two columns of one run, not runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			if cfg.Size, err = bench.ParseSize(size); err != nil {
				return benchErr(err)
			}
			cfg.Kura = []string{exe, "data", "seal"}
			cfg.Baseline = []string{exe, "bench", "seal", "baseline"}
			return benchErr(bench.Seal(cmd.Context(), cfg, cmd.OutOrStdout()))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&size, "size", "256MiB", "size of each generated input: bytes, or with KiB, MiB or GiB")
	fs.IntVar(&cfg.Pairs, "pairs", 3, "alternated pairs per figure")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for the generated files (default: a new temporary directory, removed afterwards)")
	fs.BoolVar(&cfg.JSON, "json", false, "print the figures as JSON")
	cmd.AddCommand(&cobra.Command{
		Use:    "baseline KIND IN OUT",
		Short:  "A baseline process of kura bench seal (started by it)",
		Hidden: true,
		Args:   cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return benchErr(bench.SealBaseline(cmd.Context(), args[0], args[1], args[2]))
		},
	})
	return cmd
}
