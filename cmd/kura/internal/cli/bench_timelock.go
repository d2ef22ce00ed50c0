package cli

import (
	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/cmd/kura/internal/bench"
)

func newBenchTimelockCmd() *cobra.Command {
	var (
		cfg  bench.TimelockConfig
		size string
	)
	cmd := &cobra.Command{
		Use:   "timelock [--size 64MiB] [--pairs 3]",
		Short: "Time-lock seal and open against drand's tlock library on the same file",
		Long: `Write a --size file of zeros, then seal it with package timelock (drand's tlock format, what
'kura timelock seal' writes without --to, its registration's SHA-256 included) and with drand's
tlock library (tlock.New(network).Encrypt), and open the sealed file with each (timelock.Open,
tlock Decrypt), in --pairs alternated pairs. Both sides lock to the same round of the same chain, a
dev beacon in this process whose signature is computed once, so no network is involved; both read
and write files in one temporary directory (--dir), without fsync. Prints rates in MiB/s and how
far each seal raises the process's peak resident memory (Linux), with the ratios kura / tlock.
The machines these run on are shared: compare the columns of one run, not runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := bench.ParseSize(size)
			if err != nil {
				return benchErr(err)
			}
			cfg.Size = n
			return benchErr(bench.Timelock(cmd.Context(), cfg, cmd.OutOrStdout()))
		},
	}
	cmd.Flags().StringVar(&size, "size", "64MiB", "plaintext size: bytes, or with KiB, MiB or GiB")
	cmd.Flags().IntVar(&cfg.Pairs, "pairs", 3, "alternated pairs per figure")
	cmd.Flags().StringVar(&cfg.Dir, "dir", "", "directory for the files (default: a new temporary directory, removed afterwards)")
	cmd.Flags().BoolVar(&cfg.JSON, "json", false, "print the figures as JSON")
	return cmd
}
