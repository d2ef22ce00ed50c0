package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/auditlog/intake"
	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/worker"
)

func newWorkerServeCmd(g *globals) *cobra.Command {
	var base, tee, verifierURL string
	var dev bool
	var poll, renew time.Duration
	cl := &clientFlags{g: g, url: &base}
	cmd := &cobra.Command{
		Use:   "serve --url SERVER",
		Short: "Serve the coordinator's run queue: claim queued runs and execute them inside this TEE",
		Long: `Run as a long-lived clean-room worker inside a TEE. At start it makes a queue key in memory,
attests with that key bound (to --verifier, else to the verifier role of the server at --url) and
registers with the coordinator at --url by the verifier's token: no key file, nothing for an
operator to hand the worker. It then claims queued runs (kura run submit) and executes each exactly
as kura worker run does — attest with the run context bound, get the keys, decrypt into memory
only, run the analysis, sign the result and the deletion receipt — one at a time. The result bundle
and receipt are recorded in the server's transparency log (which keeps them for kura result fetch)
before the run is reported completed. If this worker dies mid-run, its claim lapses and another
worker runs it again under the same run id.

A worker whose TEE gives no evidence, or whose evidence the verifier refuses, exits before it
claims anything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if tee == "sim" && !dev {
				return fmt.Errorf("%w: INSECURE: --tee sim proves nothing; it needs --dev", attestation.ErrPolicyDenied)
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			hc, err := cl.resolve()
			if err != nil {
				return err
			}
			a, err := attester(ctx, tee, teeDevice{})
			if err != nil {
				return err
			}
			logs := &intake.Client{BaseURL: base, HTTP: hc}
			cfg := worker.ServeConfig{
				Queue: &coordinator.Client{BaseURL: base, HTTP: hc},
				Run: worker.Config{Attester: a, Verifier: verifierURL, Logger: log, HTTP: hc,
					OnStart: func(ctx context.Context, start *result.File) error {
						body, err := start.Marshal()
						if err != nil {
							return err
						}
						_, err = logs.Submit(ctx, auditlog.KindRunStart, body)
						return err
					}},
				Publish: func(ctx context.Context, o *worker.Output) error {
					return publishRun(ctx, hc, base, o.Result, o.Receipt)
				},
				Poll:  poll,
				Renew: renew,
			}
			fmt.Fprintf(cmd.OutOrStdout(), "kura worker serving %s\n", base)
			if err := worker.Serve(ctx, cfg); err != nil && ctx.Err() == nil {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "url", g.envDefault("KURA_URL", ""), urlHelp("the kura server whose coordinator queues the runs", "KURA_URL"))
	cmd.Flags().StringVar(&tee, "tee", "auto", "auto, snp, tdx, az-snp-vtpm, az-tdx-vtpm, tpm or sim")
	cmd.Flags().BoolVar(&dev, "dev", false, "development mode: allow the INSECURE simulated TEE")
	cmd.Flags().StringVar(&verifierURL, "verifier", "", "attest to the verifier whose attestation API is at this URL, to register and for every run (default: register with --url's verifier; runs attest to the first of the manifest's verifiers with a url)")
	cmd.Flags().DurationVar(&poll, "poll", 2*time.Second, "how long to wait when no run is queued")
	cmd.Flags().DurationVar(&renew, "renew", coordinator.DefaultLease/3, "how often to renew the claim on the running run (keep it well under the server's --run-lease)")
	cl.addCA(cmd, false)
	return cmd
}
