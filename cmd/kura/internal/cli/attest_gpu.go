package cli

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/nvidia"
	nvidialive "github.com/kura-cc/kura/attestation/nvidia/live"
)

func newAttestGPUStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "gpu-status [--json]",
		Short: "Show what the NVIDIA driver says of confidential computing, and test-attest each GPU",
		Long: `Load NVML (libnvidia-ml) and print what the driver says: its version, the confidential-computing
state (CC feature, devtools mode, environment, multi-GPU mode, whether GPUs accept work, the CPU
TEE it sees) and each GPU (name, UUID, architecture). For each GPU it then fetches an attestation
report for a random nonce and verifies it offline against NVIDIA's embedded Device Identity CA,
printing every check: what 'kura attest evidence --device gpu0=nvidia' would send.

The CC state is the driver's word: the signed report does not carry it (docs/spec/attestation.md
§4.7). Exits 0 when CC is on, devtools off and every GPU's report verifies; 1 when there is no
NVIDIA driver or GPU, or CC is off or in devtools mode ("no TEE found"); 3 when a report does not
verify. With --json, prints one document {driver_version, cc_feature, devtools_mode, environment,
multi_gpu_mode, gpus_ready, cpu_caps, gpus_caps, gpu_count, ready, problem, gpus: [{index, name,
uuid, architecture, report: {fetched, bytes, verified, error, checks}}]}.`,
		Example: `  kura attest gpu-status
  kura attest gpu-status --json | jq .ready`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGPUStatus(cmd.Context(), g, asJSON, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	return cmd
}

// gpuStatus is what kura attest gpu-status prints: the system's CC state
// as NVML says it, and each GPU's test attestation.
type gpuStatus struct {
	nvidialive.CCState
	// Ready: CC on, devtools off, and every GPU's report verified.
	Ready bool `json:"ready"`
	// Problem says why not Ready.
	Problem string      `json:"problem,omitempty"`
	GPUs    []gpuAttest `json:"gpus"`
}

type gpuAttest struct {
	nvidialive.GPUInfo
	Report gpuReport `json:"report"`
}

type gpuReport struct {
	Fetched  bool                `json:"fetched"`
	Bytes    int                 `json:"bytes,omitempty"`
	Verified bool                `json:"verified"`
	Error    string              `json:"error,omitempty"`
	Checks   []attestation.Check `json:"checks,omitempty"`
}

func runGPUStatus(ctx context.Context, g *globals, asJSON bool, out io.Writer) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	// AllowCCOff: report the state whatever it is; the refusal comes last.
	first, err := nvidialive.NewAttester(nvidialive.AttesterConfig{Logger: log, AllowCCOff: true})
	if err != nil {
		return err
	}
	st := gpuStatus{CCState: first.State()}
	st.GPU = nvidialive.GPUInfo{}
	v, err := nvidia.NewVerifier(nvidia.Config{Logger: log})
	if err != nil {
		first.Close()
		return err
	}
	var failure error
	for i := range st.GPUCount {
		a := first
		if i > 0 {
			if a, err = nvidialive.NewAttester(nvidialive.AttesterConfig{Index: i, Logger: log, AllowCCOff: true}); err != nil {
				st.GPUs = append(st.GPUs, gpuAttest{GPUInfo: nvidialive.GPUInfo{Index: i}, Report: gpuReport{Error: err.Error()}})
				failure = firstErr(failure, fmt.Errorf("GPU %d: %w", i, err))
				continue
			}
		}
		ga, err := testAttest(ctx, a, v)
		a.Close()
		st.GPUs = append(st.GPUs, ga)
		failure = firstErr(failure, err)
	}
	ccReady, why := st.CCState.Ready()
	switch {
	case !ccReady:
		st.Problem = why
		failure = fmt.Errorf("%w: %s: kura attest evidence would refuse these GPUs", attestation.ErrNoTEE, why)
	case failure != nil:
		st.Problem = failure.Error()
	default:
		st.Ready = true
	}
	if asJSON {
		if err := printJSON(out, st); err != nil {
			return err
		}
	} else {
		printGPUStatus(out, &st)
	}
	return failure
}

// testAttest fetches a's report for a random nonce and verifies it with v.
func testAttest(ctx context.Context, a *nvidialive.Attester, v *nvidia.Verifier) (gpuAttest, error) {
	ga := gpuAttest{GPUInfo: a.State().GPU}
	var rd [attestation.ReportDataSize]byte
	rand.Read(rd[:nvidia.NonceSize])
	b, err := a.Attest(ctx, rd)
	if err != nil {
		ga.Report.Error = err.Error()
		return ga, fmt.Errorf("GPU %d: %w", ga.Index, err)
	}
	ga.Report.Fetched, ga.Report.Bytes = true, len(b.Evidence)
	res, err := v.VerifyReport(ctx, b.Evidence, b.Certs, rd[:nvidia.NonceSize])
	if res != nil {
		ga.Report.Checks = res.Checks
	}
	if err != nil {
		ga.Report.Error = err.Error()
		return ga, fmt.Errorf("GPU %d: %w", ga.Index, err)
	}
	ga.Report.Verified = true
	return ga, nil
}

// firstErr keeps the first error.
func firstErr(first, next error) error {
	if first != nil {
		return first
	}
	return next
}

func printGPUStatus(w io.Writer, st *gpuStatus) {
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	fmt.Fprintf(w, "driver:          %s\n", st.DriverVersion)
	fmt.Fprintf(w, "cc feature:      %s\n", dash(st.CCFeature))
	fmt.Fprintf(w, "devtools mode:   %s\n", dash(st.DevToolsMode))
	fmt.Fprintf(w, "environment:     %s\n", dash(st.Environment))
	fmt.Fprintf(w, "multi-gpu mode:  %s\n", dash(st.MultiGPUMode))
	fmt.Fprintf(w, "gpus ready:      %s\n", dash(st.GPUsReady))
	fmt.Fprintf(w, "cpu tee (nvml):  %s\n", dash(st.CPUCaps))
	fmt.Fprintf(w, "gpus:            %d\n", st.GPUCount)
	for _, g := range st.GPUs {
		fmt.Fprintf(w, "gpu %d:           %s %s (%s)\n", g.Index, dash(g.Name), dash(g.UUID), dash(g.Architecture))
		switch {
		case g.Report.Verified:
			fmt.Fprintf(w, "  report:        fetched (%d bytes) for a random nonce, verified\n", g.Report.Bytes)
		case g.Report.Fetched:
			fmt.Fprintf(w, "  report:        fetched (%d bytes), does not verify\n", g.Report.Bytes)
		default:
			fmt.Fprintf(w, "  report:        not fetched: %s\n", g.Report.Error)
		}
		for _, c := range g.Report.Checks {
			fmt.Fprintf(w, "    %-8s %-24s %s\n", c.Status, c.Name, c.Detail)
		}
	}
	if st.Ready {
		fmt.Fprintln(w, "status:          ready: CC on, devtools off, every GPU's report verifies under NVIDIA's root")
	} else {
		fmt.Fprintf(w, "status:          not ready: %s\n", st.Problem)
	}
	fmt.Fprintln(w, "note:            the CC state above is the driver's word (NVML); the signed report does not carry it")
}
