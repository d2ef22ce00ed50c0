package cli

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/attestation/snp"
	"github.com/kura-cc/kura/attestation/tdx"
	"github.com/kura-cc/kura/collab"
)

// simWorkerName names a sim measurement in a manifest's reference values.
const simWorkerName = "kura-worker (simulated, INSECURE)"

func newAttestMeasurementCmd() *cobra.Command {
	var tee, binary, digest, report, quote, name string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "measurement --tee sim|snp|tdx [--binary FILE | --launch-digest HEX | --report FILE | --quote FILE] [--json]",
		Short: "Print the measurement to list in a manifest's worker reference values",
		Long: `Print the launch measurement of a worker, the value to list under
worker.reference_values.measurements in a manifest (docs/spec/manifest.md), and the manifest entry.

  --tee sim   the SHA-384 of the kura executable (docs/spec/attestation.md §4.3): this binary's, or
              that of --binary FILE, the binary the worker will run. INSECURE: proves nothing.
  --tee snp   the 48-byte launch digest of the worker's VM image: --launch-digest HEX as your
              measuring tool computed it (e.g. sev-snp-measure), or read from --report FILE, a raw or
              hex SNP report of a worker booted from that image.
  --tee tdx   the 48-byte MRTD: --launch-digest HEX, or read from --quote FILE, a raw TDX quote.

A value read from a report or quote is not verified here (kura attest verify does that): use
evidence you produced yourself from the image you mean to approve. Prints the hex value; the
manifest entry goes to stderr. With --json, prints the entry {tee, name, value} as JSON.`,
		Example: `  kura attest measurement --tee sim
  kura attest measurement --tee snp --launch-digest 5f1c...(96 hex digits)
  kura attest measurement --tee tdx --quote quote.dat --name kura-worker-tdx`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := measurement(tee, binary, digest, report, quote)
			if err != nil {
				return err
			}
			if name == "" {
				name = "kura-worker"
				if tee == string(attestation.Sim) {
					name = simWorkerName
				}
			}
			entry := appraisal.Measurement{TEE: tee, Name: name, Value: hex.EncodeToString(m)}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(entry)
			}
			fmt.Fprintln(cmd.OutOrStdout(), entry.Value)
			if tee == string(attestation.Sim) {
				fmt.Fprint(cmd.ErrOrStderr(), "INSECURE: a simulated TEE proves nothing. ")
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "In the manifest:\nworker:\n  reference_values:\n    measurements:\n      - tee: %s\n        name: %s\n        value: %s\n", entry.TEE, entry.Name, entry.Value)
			return nil
		},
	}
	cmd.Flags().StringVar(&tee, "tee", "", "the TEE: sim, snp or tdx (required)")
	cmd.Flags().StringVar(&binary, "binary", "", "sim: measure this kura executable instead of the running one")
	cmd.Flags().StringVar(&digest, "launch-digest", "", "snp, tdx: the launch digest (MRTD for TDX), 96 hex digits")
	cmd.Flags().StringVar(&report, "report", "", "snp: read the measurement from this SNP report (raw or hex), unverified")
	cmd.Flags().StringVar(&quote, "quote", "", "tdx: read the MRTD from this TDX quote (raw), unverified")
	cmd.Flags().StringVar(&name, "name", "", `the entry's name (default "kura-worker")`)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the manifest entry {tee, name, value} as JSON")
	cmd.MarkFlagRequired("tee")
	return cmd
}

// measurement finds the measurement the flags name for tee.
func measurement(tee, binary, digest, report, quote string) ([]byte, error) {
	given := 0
	for _, f := range []string{binary, digest, report, quote} {
		if f != "" {
			given++
		}
	}
	if given > 1 {
		return nil, usagef("give one of --binary, --launch-digest, --report, --quote")
	}
	readFile := func(flag, path string) ([]byte, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, usagef("%s: %w", flag, err)
		}
		return data, nil
	}
	switch {
	case tee == string(attestation.Sim) && digest == "" && report == "" && quote == "":
		if binary == "" {
			return sim.ExecutableMeasurement()
		}
		if _, err := os.Stat(binary); err != nil {
			return nil, usagef("--binary: %w", err)
		}
		return sim.FileMeasurement(binary)
	case tee != string(attestation.SNP) && tee != string(attestation.TDX) && tee != string(attestation.Sim):
		return nil, usagef("--tee %q: want sim, snp or tdx", tee)
	case tee == string(attestation.Sim) || binary != "":
		return nil, usagef("--binary is for --tee sim, and --tee sim takes only --binary")
	case digest != "":
		m, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(digest), "0x"))
		if err != nil || len(m) != 48 {
			return nil, usagef("--launch-digest: want 48 bytes as 96 hex digits")
		}
		return m, nil
	case report != "" && tee == string(attestation.SNP):
		data, err := readFile("--report", report)
		if err != nil {
			return nil, err
		}
		return snp.ReportMeasurement(data)
	case quote != "" && tee == string(attestation.TDX):
		data, err := readFile("--quote", quote)
		if err != nil {
			return nil, err
		}
		return tdx.QuoteMeasurement(data)
	}
	return nil, usagef("--tee %s needs --launch-digest HEX or %s", tee, map[string]string{"snp": "--report FILE", "tdx": "--quote FILE"}[tee])
}

// warnSimMeasurement warns on w when m lists sim measurements and none is
// this kura binary's: a sim worker run from it would be refused its keys,
// which nobody would learn until after every owner approved.
func warnSimMeasurement(w io.Writer, m *collab.Manifest) {
	var listed []string
	for _, v := range m.Worker.ReferenceValues.Measurements {
		if v.TEE == string(attestation.Sim) {
			listed = append(listed, strings.ToLower(v.Value))
		}
	}
	if len(listed) == 0 {
		return
	}
	own, err := sim.ExecutableMeasurement()
	if err != nil {
		fmt.Fprintf(w, "warning: cannot check the manifest's sim measurement: %v\n", err)
		return
	}
	for _, v := range listed {
		if b, err := hex.DecodeString(v); err == nil && bytes.Equal(b, own) {
			return
		}
	}
	fmt.Fprintf(w, "warning: the worker's sim measurement is not this kura binary's (%s): a sim worker run with it would be refused its keys; kura attest measurement --tee sim prints the value\n", hex.EncodeToString(own))
}
