package cli

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/cmd/kura/internal/bench"
)

// newBenchKBSCmd is `kura bench kbs` and its hidden server process.
func newBenchKBSCmd() *cobra.Command {
	var cfg bench.KBSConfig
	cmd := &cobra.Command{
		Use:   "kbs",
		Short: "Key release throughput and paced latency, the broker in its own process against a bare token check",
		Long: `Start two server processes on loopback from this binary: the key broker as 'kura kbs serve --dev'
builds it (SQLite state in a temporary directory, the built-in verifier, the default release
policy), and a bare baseline that answers the same resource route after checking the Bearer token
only (its signature once, then by digest until it expires, as the broker does). Store one resource
through the owner API, attest with INSECURE sim evidence for an EAR token bound to a fresh TEE key,
and drive each process from this one with pre-built keep-alive HTTP/1.1 requests carrying the token
(every release is the real path: token, policy, durable audit record, JWE to the TEE key; a sample
of releases is decrypted and compared with the stored value).

Reported, in alternated pairs (--pairs; --paced-runs for the paced figure):
  saturation releases/s     --conns connections sending as fast as answers come back (target: 8000/s)
  server CPU per release    the server process's user+system time from /proc, so the load
                            generator's own cost is not counted
  p99 at --rate/s           open-loop load, each request's latency from its scheduled time (no
                            coordinated omission); target < 20 ms, and the count of runs meeting it

The load generator shares the machine with the servers: on a small machine its CPU is the servers'
too. --server-profile writes the broker process's CPU profile (go tool pprof).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			cfg.Command = []string{exe, "bench", "kbs", "server"}
			cfg.Version = "kura " + Version
			return benchErr(bench.KBS(cmd.Context(), cfg, cmd.OutOrStdout()))
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&cfg.Pairs, "pairs", 3, "alternated saturation pairs")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Second, "each saturation run")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "load before each saturation run, not measured")
	fs.IntVar(&cfg.Conns, "conns", 64, "keep-alive connections")
	fs.IntVar(&cfg.Rate, "rate", 3000, "paced load, releases/s")
	fs.IntVar(&cfg.PacedRuns, "paced-runs", 10, "alternated paced pairs (each after 1 s of warm-up)")
	fs.DurationVar(&cfg.PacedDuration, "paced-duration", 5*time.Second, "each paced run")
	fs.StringVar(&cfg.ServerProfile, "server-profile", "", "write the broker process's CPU profile to this file")
	fs.BoolVar(&cfg.JSON, "json", false, "print the report as JSON")

	server := &cobra.Command{
		Use:                "server",
		Short:              "A server process of kura bench kbs (started by it)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := bench.ParseKBSServerArgs(args)
			if err != nil {
				return benchErr(err)
			}
			return bench.KBSServer(cmd.Context(), sc, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.AddCommand(server)
	return cmd
}
