package cli

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/auditlog/intake"
	inferencetrust "github.com/kura-cc/kura/inference/trust"
	"github.com/kura-cc/kura/party"
)

func newAICmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ai",
		Short: "Confidential inference: an attested gateway, a verifying local proxy, build approvals",
		Long: `Confidential inference (docs/spec/inference.md): kura ai gateway runs inside a TEE next to an
OpenAI-compatible model server and answers only end-to-end encrypted requests; kura ai proxy
verifies the gateway (its attestation, GPU and logged build) and offers a local OpenAI-compatible
endpoint that encrypts every request to it; kura ai approve-build signs and logs a gateway build.`,
	}
	cmd.AddCommand(newAIGatewayCmd(g), newAIProxyCmd(g), newAIApproveBuildCmd(g))
	return cmd
}

// approvedBuild is what approve-build --json prints.
type approvedBuild struct {
	Approval    string `json:"approval"`
	Proof       string `json:"proof"`
	Approver    string `json:"approver"`
	TEE         string `json:"tee"`
	Measurement string `json:"measurement"`
	Version     string `json:"version"`
	LogIndex    uint64 `json:"log_index"`
}

func newAIApproveBuildCmd(g *globals) *cobra.Command {
	var (
		b                  inferencetrust.Build
		identity, url, out string
		asJSON             bool
	)
	cl := &clientFlags{g: g, url: &url, identity: &identity}
	cmd := &cobra.Command{
		Use:   "approve-build --tee TEE --measurement HEX --version V --source URL -o build.json",
		Short: "Sign an inference gateway build's approval and record it in the transparency log",
		Long: `Sign, as the party of --identity, that the inference gateway build with launch measurement
--measurement on --tee is approved (its --version and --source), record the approval in the
transparency log of the kura server at --url (POST /v1/inference/builds), and write the approval to
OUT and its inclusion proof to OUT.proof.json. A gateway publishes both (kura ai gateway
--build OUT); proxies whose policy trusts your fingerprint as an approver then accept it.
--json prints {approval, proof, approver, tee, measurement, version, log_index}.`,
		Example: `  kura ai approve-build --tee snp --measurement $(kura attest measurement --tee snp ...) \
    --version 1.4.2 --source https://github.com/example/gateway@4f1c2e --identity ~/.kura/me -o build.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hc, err := cl.resolve()
			if err != nil {
				return err
			}
			switch {
			case out == "":
				return usagef("-o FILE is required: where to write the signed approval")
			case identity == "":
				return usagef("--identity DIR is required: the party that approves the build")
			}
			b.Measurement = strings.ToLower(b.Measurement)
			if _, err := hex.DecodeString(b.Measurement); err != nil {
				return usagef("--measurement %q: want hex", b.Measurement)
			}
			id, err := party.Load(identity)
			if err != nil {
				return fmt.Errorf("--identity: %w", err)
			}
			b.ApprovedAt = time.Now().UTC()
			if err := b.Sign(id); err != nil {
				return usageError{err}
			}
			data, err := b.Marshal()
			if err != nil {
				return err
			}
			raw, err := (&intake.Client{BaseURL: url, HTTP: hc}).Submit(cmd.Context(), auditlog.KindInferenceBuild, data)
			if err != nil {
				return err
			}
			p, err := auditlog.ParseProof(raw)
			if err != nil {
				return err
			}
			for path, content := range map[string][]byte{out: data, out + ".proof.json": raw} {
				if err := writeAtomic(path, 0o644, func(w io.Writer) error { _, err := w.Write(content); return err }); err != nil {
					return err
				}
			}
			res := approvedBuild{Approval: out, Proof: out + ".proof.json", Approver: b.Approver, TEE: b.TEE, Measurement: b.Measurement, Version: b.Version, LogIndex: p.Index}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "approved %s %s on %s as %s\nlogged at index %d: %s, proof %s\n", b.Version, b.Measurement, b.TEE, b.Approver, p.Index, res.Approval, res.Proof)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&b.TEE, "tee", "", "the TEE the build runs on: snp, tdx, az-snp-vtpm, az-tdx-vtpm, cca, tpm or sim")
	fs.StringVar(&b.Measurement, "measurement", "", "the build's launch measurement, hex (kura attest measurement computes it)")
	fs.StringVar(&b.Version, "version", "", "the build's version")
	fs.StringVar(&b.Source, "source", "", "where its source is, e.g. a repository URL at a commit")
	fs.StringVar(&identity, "identity", g.envDefault("KURA_IDENTITY", ""), "your party directory: the approver (KURA_IDENTITY; client.yaml identity)")
	fs.StringVar(&url, "url", g.envDefault("KURA_URL", ""), urlHelp("the kura server whose transparency log records the approval", "KURA_URL"))
	fs.StringVarP(&out, "output", "o", "", "write the signed approval here, and its inclusion proof to OUT.proof.json")
	fs.BoolVar(&asJSON, "json", false, jsonFlagHelp)
	cl.addCA(cmd, false)
	return cmd
}
