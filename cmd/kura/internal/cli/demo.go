package cli

import (
	"context"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/cmd/kura/internal/demo"
	"github.com/kura-cc/kura/dataset"
)

func newDemoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Run kura's story on this machine: attestation round trip and real hardware evidence",
		Long: `Run kura's story end to end on this machine, with no network and no TEE hardware:
a workload in the INSECURE simulated TEE attests to a verifier over HTTP and gets a signed EAR
token that a relying party checks against the verifier's JWKS; then real SEV-SNP and TDX evidence
captured on hardware is verified offline, and tampered copies are refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd.Context(), g, cmd.OutOrStdout()) },
	}
}

func runDemo(ctx context.Context, g *globals, out io.Writer) error {
	// The demo narrates on stdout; the services' own logs would only
	// interleave with it, so they go to stderr at --log-level debug only.
	log := slog.New(slog.DiscardHandler)
	if g.logLevel == "debug" {
		var err error
		if log, err = g.logger(); err != nil {
			return err
		}
	}
	return demo.Run(ctx, demo.Config{
		Version: Version,
		Logger:  log,
		SealData: func(ctx context.Context, in, schema, sealed, keyFile, datasetID string, out io.Writer) error {
			quiet := &globals{env: &Env{Stdin: g.env.Stdin, Stdout: io.Discard, Stderr: io.Discard, Getenv: g.env.Getenv}, logLevel: "error", logFormat: "text"}
			return runDataSeal(ctx, quiet, &dataSealFlags{out: sealed, schema: schema, keyFile: keyFile, datasetID: datasetID, chunkSize: dataset.DefaultChunkSize}, in, out)
		},
		PublishRun:         publishRun,
		FetchKept:          fetchKept,
		PrintResult:        printResult,
		VerifyRegistration: verifyRegistrationProof,
	}, out)
}
