package cli

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/cmd/kura/internal/bench"
)

// newBenchVerifierCmd is `kura bench verifier`, with its hidden server
// process `kura bench verifier server`.
func newBenchVerifierCmd() *cobra.Command {
	var cfg bench.VerifierConfig
	cmd := &cobra.Command{
		Use:   "verifier [--clients N] [--duration D] [--pairs P] [--json]",
		Short: "Measure the verifier service over HTTP against the same verifications in process",
		Long: `Start a verifier server process on loopback, built as 'kura serve --dev --roles verifier' builds it
(HTTPS with a self-signed certificate, nonces in memory unless --store, every verification logged),
with the per-client rate limit lifted, and run --clients concurrent clients for --duration, each
repeating the attestation round trip: POST /v1/attestation/nonce, INSECURE sim evidence bound to
the nonce, POST /v1/attestation/verify. The baseline runs as many goroutines on the same verifier
in this process (a fresh nonce, the same evidence, verifier.Verify). The two alternate in --pairs
pairs; it reports verifications/s and the p99 latency of one round trip. The machines these run on
are shared: compare the two columns of one run, not runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			cfg.Command = []string{self, "bench", "verifier", "server"}
			cfg.Version = "kura " + Version
			return benchErr(bench.Verifier(cmd.Context(), cfg, cmd.OutOrStdout()))
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&cfg.Clients, "clients", 64, "concurrent clients, over HTTP and in process")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "each measured run")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "unmeasured load before each run")
	fs.IntVar(&cfg.Pairs, "pairs", 3, "alternated pairs")
	fs.StringVar(&cfg.Store, "store", "", "the server's store for nonces: a SQLite file or a postgres:// URL (default in memory)")
	fs.BoolVar(&cfg.PlainHTTP, "plain-http", false, "serve plain HTTP instead of HTTPS")
	fs.StringVar(&cfg.ServerProfile, "server-cpuprofile", "", "write the server process's CPU profile (pprof) to this file")
	fs.BoolVar(&cfg.JSON, "json", false, "print the figures as JSON")

	server := &cobra.Command{
		Use:    "server",
		Short:  "The server process of kura bench verifier",
		Hidden: true,
		// Its flags are bench.ParseVerifierServerArgs's.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := bench.ParseVerifierServerArgs(args)
			if err != nil {
				return benchErr(err)
			}
			return bench.VerifierServer(cmd.Context(), sc, os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.AddCommand(server)
	return cmd
}
