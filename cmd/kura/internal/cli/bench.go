package cli

import (
	"crypto/ed25519"
	"errors"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/cmd/kura/internal/bench"
)

func newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Benchmarks: load on a running server, an end-to-end clean-room run"}
	var cfg bench.ServeConfig
	var adminKey string
	cl := &clientFlags{g: g, url: &cfg.URL, adminKey: &adminKey}
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Mixed load against a running 'kura serve --dev': verify, key release, audit reads",
		Long: `Run --clients concurrent clients against a running 'kura serve --dev' for --duration, each
picking operations at random by the --mix weights:

  verify   nonce, then verify INSECURE sim evidence bound to it (verifier role)
  release  KBS auth, attest with sim evidence, fetch and decrypt a resource the bench stored
           first through the owner API (kbs role; needs --admin-key, and the server a
           --kbs-rate-limit above the load, since every client shares one address)
  resource fetch and decrypt that resource again with the client's KBS session, attested
           once on first use (kbs role; the release path alone, attestation excluded)
  audit    GET /log/checkpoint (log role); when the server has no log it is reported as
           unavailable and left out of the mix

It prints throughput and p50/p99 latency per operation and per route, and errors by kind;
--json prints the same as JSON. It exits 1 if any operation failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cl.fill(); err != nil {
				return err
			}
			cfg.NewClient = func(maxConns int) (*http.Client, error) { return clientTLS(cl.ca, maxConns) }
			cfg.AdminKey = func() (ed25519.PrivateKey, error) { return loadAdminKey(adminKey) }
			return benchErr(bench.Serve(cmd.Context(), cfg, cmd.OutOrStdout()))
		},
	}
	fs := serve.Flags()
	fs.StringVar(&cfg.URL, "url", g.envDefault("KURA_URL", ""), urlHelp("the server's URL", "KURA_URL"))
	cl.addCA(serve, false)
	fs.StringVar(&adminKey, "admin-key", g.envDefault("KURA_ADMIN_KEY", ""), "owner signing key file, to store the resource the release operation fetches (KURA_ADMIN_KEY; client.yaml admin_key)")
	fs.IntVar(&cfg.Clients, "clients", 200, "concurrent clients")
	fs.DurationVar(&cfg.Duration, "duration", 60*time.Second, "how long to run")
	fs.StringVar(&cfg.Mix, "mix", "verify=1,release=1,audit=1", "operation weights, OP=WEIGHT,...")
	fs.BoolVar(&cfg.JSON, "json", false, "print the report as JSON")
	cmd.AddCommand(serve, newBenchCleanroomCmd(), newBenchAICmd(), newBenchPSICmd(),
		newBenchSealCmd(), newBenchKBSCmd(), newBenchVerifierCmd(), newBenchAttestCmd(), newBenchTimelockCmd())
	return cmd
}

func newBenchCleanroomCmd() *cobra.Command {
	var cfg bench.CleanRoomConfig
	cmd := &cobra.Command{
		Use:   "cleanroom [--rows N] [--pairs P] [--analysis ID] [--json]",
		Short: "Measure an end-to-end clean-room run against plain DuckDB on the same plaintext",
		Long: `Set up the clean-room story with N rows per dataset (two owners' key brokers on loopback, sealed
and registered data, approved manifest), then measure P alternated pairs, in this process, of an
end-to-end worker run (attest, key release, hash, decrypt into memory, load, query, output policy,
encrypt, sign, wipe, receipt) and plain DuckDB executing the same query on the same plaintext
Parquet files. Prints two figures, time and peak resident memory, each kura against plain DuckDB
with the ratio's median and range over the pairs and the target (time: ≤ 1.2× below 10M rows,
≤ 1.1× from 10M; memory: ≤ 1.1×), then the last kura run's phases. The machines these run on
are shared: compare the columns of one run, not runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Version = Version
			return benchErr(bench.CleanRoom(cmd.Context(), cfg, cmd.OutOrStdout()))
		},
	}
	cmd.Flags().IntVar(&cfg.Rows, "rows", 1000000, "rows per dataset")
	cmd.Flags().IntVar(&cfg.Pairs, "pairs", 3, "alternated pairs of runs (kura, plain DuckDB)")
	cmd.Flags().StringVar(&cfg.Analysis, "analysis", "stay_by_prefecture", "analysis to run: stay_by_prefecture or visitors_by_area_age")
	cmd.Flags().BoolVar(&cfg.JSON, "json", false, "print the figures as JSON")
	return cmd
}

// benchErr reports an error in a benchmark's configuration as a usage
// error.
func benchErr(err error) error {
	if errors.Is(err, bench.ErrUsage) {
		return usageError{err}
	}
	return err
}

func newBenchAICmd() *cobra.Command {
	var cfg bench.AIConfig
	cmd := &cobra.Command{
		Use:   "ai",
		Short: "Measure what confidential inference adds: a local model server direct and through proxy and gateway",
		Long: `Start, in this process on loopback, an OpenAI-compatible model server, a verifier (dev mode), a
kura ai gateway in front of the model (INSECURE sim TEE) and a kura ai proxy that verified it, then
send the same requests to the model directly and through the proxy, alternating: --requests small
chat completions (p50 and p99 latency each way, and the difference) and --streams streamed answers
of --tokens server-sent events (tokens/s each way, and the ratio). --rate paces the model's stream
as a real model would; 0 streams as fast as it can, measuring the pipeline's capacity. The machines
these run on are shared: compare the two columns of one run, not runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchErr(bench.AI(cmd.Context(), cfg, cmd.OutOrStdout()))
		},
	}
	cmd.Flags().IntVar(&cfg.Requests, "requests", 2000, "small chat completions timed each way")
	cmd.Flags().IntVar(&cfg.Tokens, "tokens", 4096, "tokens per streamed answer")
	cmd.Flags().IntVar(&cfg.Streams, "streams", 10, "streamed answers timed each way")
	cmd.Flags().Float64Var(&cfg.Rate, "rate", 0, "pace the model's stream at this many tokens/s (0: unpaced)")
	cmd.Flags().BoolVar(&cfg.JSON, "json", false, "print the report as JSON")
	return cmd
}

func newBenchPSICmd() *cobra.Command {
	var cfg bench.PSIConfig
	cmd := &cobra.Command{
		Use:   "psi [--rows N]",
		Short: "Time a two-party private set intersection of N identifiers each (software secret computation, no TEE)",
		Long: `Run one two-party ECDH private set intersection over ristretto255 (package mpc/psi, semi-honest,
cardinality mode) of --rows phone-number-like identifiers per party, --overlap of them shared, both
parties in this process with every message through its wire encoding, and check the result against
the plaintext join. Reports each phase's time and identifiers/s per core. The two parties share this
machine's cores; on two machines each would have its own.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchErr(bench.PSI(cmd.Context(), cfg, cmd.OutOrStdout()))
		},
	}
	cmd.Flags().IntVar(&cfg.Rows, "rows", 100000, "identifiers per party")
	cmd.Flags().Float64Var(&cfg.Overlap, "overlap", 0.5, "fraction of A's identifiers B holds too")
	cmd.Flags().BoolVar(&cfg.JSON, "json", false, "print the report as JSON")
	return cmd
}
