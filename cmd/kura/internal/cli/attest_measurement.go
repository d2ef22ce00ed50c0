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
	"github.com/kura-cc/kura/collab"
)

// simWorkerName names a sim measurement in a manifest's reference values.
const simWorkerName = "kura-worker (simulated, INSECURE)"

func newAttestMeasurementCmd() *cobra.Command {
	var tee, binary string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "measurement --tee sim [--binary FILE] [--json]",
		Short: "Print the measurement to list in a manifest's worker reference values",
		Long: `Print the launch measurement a worker built from this kura binary reports, the value to list
under worker.reference_values.measurements in a manifest (docs/spec/manifest.md). For the
simulated TEE it is the SHA-384 of the kura executable (docs/spec/attestation.md §4.3): this
binary's, or that of --binary FILE, the binary the worker will run. Prints the hex value; the
manifest entry goes to stderr. With --json, prints the entry as JSON.`,
		Example: `  kura attest measurement --tee sim`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tee != string(attestation.Sim) {
				return usagef("--tee %q: only sim is supported; an SNP or TDX measurement is the launch digest of the worker's VM image", tee)
			}
			var m []byte
			var err error
			if binary == "" {
				m, err = sim.ExecutableMeasurement()
			} else if _, err = os.Stat(binary); err != nil {
				return usagef("--binary: %w", err)
			} else {
				m, err = sim.FileMeasurement(binary)
			}
			if err != nil {
				return err
			}
			entry := appraisal.Measurement{TEE: tee, Name: simWorkerName, Value: hex.EncodeToString(m)}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(entry)
			}
			fmt.Fprintln(cmd.OutOrStdout(), entry.Value)
			fmt.Fprintf(cmd.ErrOrStderr(), "INSECURE: a simulated TEE proves nothing. In the manifest:\nworker:\n  reference_values:\n    measurements:\n      - tee: sim\n        name: %s\n        value: %s\n", entry.Name, entry.Value)
			return nil
		},
	}
	cmd.Flags().StringVar(&tee, "tee", "", "the TEE: sim (required)")
	cmd.Flags().StringVar(&binary, "binary", "", "measure this kura executable instead of the running one")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the manifest entry {tee, name, value} as JSON")
	cmd.MarkFlagRequired("tee")
	return cmd
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
