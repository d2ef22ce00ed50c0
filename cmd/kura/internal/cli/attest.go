package cli

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/azure"
	"github.com/kura-cc/kura/attestation/nvidia"
	nvidialive "github.com/kura-cc/kura/attestation/nvidia/live"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/attestation/snp"
	"github.com/kura-cc/kura/attestation/tdx"
	"github.com/kura-cc/kura/attestation/tpm"
	"github.com/kura-cc/kura/verifier"
)

// maxInputFile bounds evidence and certificate files read by the CLI.
const maxInputFile = 4 << 20

func newAttestCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "attest", Short: "Produce and verify attestation evidence"}
	cmd.AddCommand(newAttestVerifyCmd(g), newAttestEvidenceCmd(g), newAttestMeasurementCmd(), newAttestGPUStatusCmd(g), newAttestTPMEnrollCmd(g))
	return cmd
}

type attestVerifyFlags struct {
	verifyFlags
	ccaFlags
	tpmFlags
	evidence, tee, report, vcek, certs, tsm, quote, collateral, nonce string
	hclReport, pcrs, tdQuote                                          string // Azure vTPM TEEs
	cocoEvidence                                                      string // a Confidential Containers attester's evidence
	gpuReport, gpuCerts                                               string // nvidia
	json, explain                                                     bool
}

func newAttestVerifyCmd(g *globals) *cobra.Command {
	f := &attestVerifyFlags{}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Verify attestation evidence and print the appraisal",
		Long: `Verify attestation evidence: a kura evidence bundle (--evidence) or raw vendor artifacts
(--tee snp --report, --tee snp --tsm, --tee tdx --quote, --tee cca --token,
--tee az-snp-vtpm|az-tdx-vtpm --hcl-report, --tee tpm --quote --ak), or a Confidential Containers attester's
tee-evidence (--tee TYPE --coco-evidence).
Prints every check as passed, failed or
skipped, the trust vector and the status. Exits 0 only when no performed check failed; otherwise
3 (bad signature, chain or evidence), 4 (collateral unavailable or expired), 5 (policy or nonce)
or 2 (usage).`,
		Example: `  kura attest verify --evidence bundle.json --nonce 5f1c...
  kura attest verify --tee snp --report report.bin --certs chain.pem --at 2024-01-01T00:00:00Z
  kura attest verify --tee tdx --quote quote.dat --collateral collateral/ --offline
  kura attest verify --tee tdx --quote quote.dat --collateral collateral.json --offline
  kura attest verify --tee tdx --quote quote.dat --collateral collateral.json --event-log /sys/firmware/acpi/tables/data/CCEL
  kura attest verify --tee cca --token token.cbor --cpak cpak.pem
  kura attest verify --tee tpm --quote quote.bin --pcrs pcrs.bin --ak ak.pem --event-log binary_bios_measurements --ima-log ascii_runtime_measurements
  kura attest verify --tee az-snp-vtpm --hcl-report hcl.bin --quote quote.bin --pcrs pcrs.bin --certs vcek.pem
  kura attest verify --tee az-tdx-vtpm --coco-evidence tee-evidence.json --collateral collateral.json
  kura attest verify --tee nvidia --gpu-report report.hex --gpu-certs chain.pem --nonce 931d...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAttestVerify(cmd.Context(), g, f, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	f.register(fs, g)
	f.registerCCA(fs)
	f.registerTPM(fs)
	fs.StringVar(&f.evidence, "evidence", "", "kura evidence bundle (JSON)")
	fs.StringVar(&f.tee, "tee", "", "TEE of raw artifacts: snp, tdx, cca, az-snp-vtpm, az-tdx-vtpm, tpm or nvidia")
	fs.StringVar(&f.gpuReport, "gpu-report", "", "nvidia: the GPU's attestation report (SPDM GET_MEASUREMENTS request and response), raw or hex")
	fs.StringVar(&f.gpuCerts, "gpu-certs", "", "nvidia: the GPU's device certificate chain, PEM, leaf first")
	fs.StringVar(&f.report, "report", "", "SNP: raw 1184-byte attestation report, or its hex")
	fs.StringVar(&f.vcek, "vcek", "", "SNP: VCEK or VLEK certificate, DER or PEM")
	fs.StringVar(&f.certs, "certs", "", "SNP: ASK/ARK (or ASVK/ARK) chain, PEM")
	fs.StringVar(&f.tsm, "tsm", "", "SNP: configfs-tsm capture (JSON with outblob and auxblob)")
	fs.StringVar(&f.quote, "quote", "", "TDX: quote (v4 or v5), raw or hex; az-*, tpm: the TPM quote, TPMS_ATTEST then TPMT_SIGNATURE")
	fs.StringVar(&f.hclReport, "hcl-report", "", "az-*: the HCL report, as read from vTPM NV index 0x01400001")
	fs.StringVar(&f.pcrs, "pcrs", "", "az-*, tpm: the quoted PCR values, concatenated in selection order (tpm2_pcrread -o)")
	fs.StringVar(&f.tdQuote, "td-quote", "", "az-tdx-vtpm: the TD quote over the HCL report's TD report")
	fs.StringVar(&f.cocoEvidence, "coco-evidence", "", "a Confidential Containers attester's tee-evidence (JSON) for --tee snp, tdx, sample, az-snp-vtpm, az-tdx-vtpm or cca")
	fs.StringVar(&f.collateral, "collateral", "", "TDX: directory with tcb_info.json, qe_identity.json, issuer chains and CRLs, or one JSON file as dcap-qvl and dstack ship it")
	fs.StringVar(&f.nonce, "nonce", "", "expected nonce, hex: the bundle's nonce, or the report_data of raw evidence")
	fs.BoolVar(&f.json, "json", false, "print the full report as JSON")
	fs.BoolVar(&f.explain, "explain", false, "explain why each trust-vector claim got its value")
	return cmd
}

func readInput(flag, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usagef("%s: %w", flag, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxInputFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if len(data) > maxInputFile {
		return nil, fmt.Errorf("%w: %s %s is larger than %d bytes", attestation.ErrMalformed, flag, path, maxInputFile)
	}
	return data, nil
}

// printJSON writes v as one indented JSON document: what a command's
// --json prints on stdout instead of its text.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonFlagHelp is the help of --json on commands that print one document.
const jsonFlagHelp = "print one JSON document on stdout (fields in the command's help)"

// bundle builds the evidence bundle the flags describe.
func (f *attestVerifyFlags) bundle() (*attestation.Bundle, error) {
	switch {
	case f.evidence != "":
		if f.tee != "" || f.report != "" || f.quote != "" || f.tsm != "" || f.hclReport != "" || f.token != "" || f.cocoEvidence != "" {
			return nil, usagef("--evidence takes a bundle; do not combine it with --tee, --report, --tsm, --quote or --coco-evidence")
		}
		data, err := readInput("--evidence", f.evidence)
		if err != nil {
			return nil, err
		}
		return attestation.ParseBundle(data)
	case f.cocoEvidence != "":
		return f.cocoBundle()
	case f.tee == "snp" && f.tsm != "":
		data, err := readInput("--tsm", f.tsm)
		if err != nil {
			return nil, err
		}
		return snp.ParseTSMReport(data)
	case f.tee == "snp":
		if f.report == "" {
			return nil, usagef("--tee snp needs --report FILE (or --tsm FILE)")
		}
		report, err := readInput("--report", f.report)
		if err != nil {
			return nil, err
		}
		var certs []byte
		for _, c := range []struct{ flag, path string }{{"--vcek", f.vcek}, {"--certs", f.certs}} {
			if c.path == "" {
				continue
			}
			data, err := readInput(c.flag, c.path)
			if err != nil {
				return nil, err
			}
			certs = append(certs, data...)
		}
		return snp.NewBundle(report, certs)
	case f.tee == string(attestation.AzSNPvTPM) || f.tee == string(attestation.AzTDXvTPM):
		return f.azureBundle()
	case f.tee == "tdx":
		if f.quote == "" {
			return nil, usagef("--tee tdx needs --quote FILE")
		}
		quote, err := readInput("--quote", f.quote)
		if err != nil {
			return nil, err
		}
		if f.imaLog != "" {
			return nil, usagef("--tee tdx takes --event-log FILE (the CCEL log, /sys/firmware/acpi/tables/data/CCEL), not --ima-log")
		}
		col, err := loadTDXCollateral(f.collateral)
		if err != nil {
			return nil, err
		}
		b, err := tdx.NewBundle(quote, col)
		if err != nil || f.eventLog == "" {
			return b, err
		}
		if b.EventLog, err = readInput("--event-log", f.eventLog); err != nil {
			return nil, err
		}
		return b, b.Check()
	case f.tee == string(attestation.CCA):
		return f.ccaBundle()
	case f.tee == string(attestation.TPM):
		return f.tpmBundle()
	case f.tee == string(attestation.NVIDIA):
		if f.gpuReport == "" || f.gpuCerts == "" {
			return nil, usagef("--tee nvidia needs --gpu-report FILE and --gpu-certs FILE")
		}
		report, err := readInput("--gpu-report", f.gpuReport)
		if err != nil {
			return nil, err
		}
		certs, err := readInput("--gpu-certs", f.gpuCerts)
		if err != nil {
			return nil, err
		}
		return nvidia.NewBundle(report, certs)
	case f.tee == "":
		return nil, usagef("give --evidence FILE, or raw artifacts with --tee snp|tdx|cca|az-snp-vtpm|az-tdx-vtpm|tpm|nvidia")
	}
	return nil, usagef("--tee %q: raw artifacts are snp, tdx, cca, az-snp-vtpm, az-tdx-vtpm, tpm or nvidia (sim evidence comes as a bundle)", f.tee)
}

// loadTDXCollateral reads --collateral: a directory as tdx.LoadCollateralDir
// reads it, or a file holding the one-object JSON of dcap-qvl, dstack and
// Automata (tdx.ParseCollateralJSON). "" is no collateral.
func loadTDXCollateral(path string) (*attestation.Collateral, error) {
	if path == "" {
		return nil, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, usagef("--collateral: %w", err)
	}
	if fi.IsDir() {
		col, err := tdx.LoadCollateralDir(path)
		if err != nil {
			return nil, usageError{err}
		}
		return col, nil
	}
	data, err := readInput("--collateral", path)
	if err != nil {
		return nil, err
	}
	col, err := tdx.ParseCollateralJSON(data)
	if err != nil {
		return nil, fmt.Errorf("--collateral %s: %w", path, err)
	}
	return col, nil
}

func runAttestVerify(ctx context.Context, g *globals, f *attestVerifyFlags, out io.Writer) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	opts := verifier.Options{Freshness: verifier.NoFreshness}
	if f.nonce != "" {
		n, err := hex.DecodeString(f.nonce)
		if err != nil || len(n) == 0 {
			return usagef("--nonce %q: want hex", f.nonce)
		}
		opts = verifier.Options{Freshness: verifier.ExpectedNonce, Nonce: n}
	}
	b, err := f.bundle()
	if err != nil {
		return err
	}
	f.ccaCPAKs = append(f.ccaCPAKs, f.cpaks...) // --cpak adds to --cca-cpak
	f.tpmAKs = append(f.tpmAKs, f.aks...)       // --ak adds to --tpm-ak
	svc, err := f.service(ctx, log, nil, nil)
	if err != nil {
		return err
	}
	rep, verr := svc.Verify(ctx, b, opts)
	if f.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(out, rep, f.explain)
	}
	if verr != nil {
		return verr
	}
	if names := failedChecks(rep); len(names) > 0 {
		return fmt.Errorf("%w: failed checks: %s", errPolicy, strings.Join(names, ", "))
	}
	return nil
}

func failedChecks(rep *verifier.Report) []string {
	var names []string
	for _, c := range rep.Checks {
		if c.Status == attestation.Failed {
			names = append(names, c.Name)
		}
	}
	return names
}

// printReport writes the human-readable report.
func printReport(w io.Writer, rep *verifier.Report, explain bool) {
	if rep.Insecure {
		fmt.Fprintln(w, "!! INSECURE: simulated TEE evidence proves nothing; dev mode only !!")
	}
	fmt.Fprintf(w, "tee:          %s\n", rep.TEE)
	if m, ok := rep.Claims["measurement"].(string); ok {
		fmt.Fprintf(w, "measurement:  %s\n", m)
	}
	if s, ok := rep.Claims["tcb_status"].(string); ok && s != "" {
		fmt.Fprintf(w, "tcb status:   %s\n", s)
	}
	if s, ok := rep.Claims["snp"].(map[string]any); ok {
		fmt.Fprintf(w, "platform:     AMD %v, signed by %v, reported TCB %v\n", s["product"], s["signer"], tcbString(s["reported_tcb"]))
	}
	if c, ok := rep.Claims["cca"].(map[string]any); ok {
		fmt.Fprintf(w, "platform:     Arm CCA, lifecycle %v, implementation %v, instance %v\n", c["lifecycle_state"], c["implementation_id"], c["instance_id"])
	}
	fmt.Fprintln(w, "checks:")
	for _, c := range rep.Checks {
		fmt.Fprintf(w, "  %-8s %-22s %s\n", c.Status, c.Name, c.Detail)
	}
	if rep.Appraisal == nil {
		fmt.Fprintln(w, "status:       not appraised (verification failed)")
		return
	}
	tv := rep.Appraisal.TrustVector.AsMap()
	names := make([]string, 0, len(tv))
	for k := range tv {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "trust vector:")
	for _, k := range names {
		if tv[k] == 0 && rep.Appraisal.Explain[k] == "" {
			continue
		}
		fmt.Fprintf(w, "  %-18s %3d %s\n", k, tv[k], tv[k].GetTier())
		if explain && rep.Appraisal.Explain[k] != "" {
			fmt.Fprintf(w, "      why: %s\n", rep.Appraisal.Explain[k])
		}
	}
	fmt.Fprintf(w, "status:       %s (policy %s)\n", rep.Appraisal.Status, rep.Appraisal.PolicyID)
	for i, d := range rep.Devices {
		if i == 0 {
			fmt.Fprintln(w, "devices:      (each appraised on its own; the status above weighs them)")
		}
		fmt.Fprintf(w, "  %-8s %-8s %s\n", d.Name, d.TEE, d.Appraisal.Status)
	}
}

func tcbString(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return "?"
	}
	return fmt.Sprintf("bl=%v tee=%v snp=%v ucode=%v", m["bootloader"], m["tee"], m["snp"], m["microcode"])
}

type attestEvidenceFlags struct {
	tee, nonce, data, publicKey, out string
	dev                              teeDevice
	akOut                            string   // --tpm-ak-out
	akCert                           string   // --tpm-ak-cert
	devices                          []string // --device NAME=TEE
}

// teeDevice holds the TPM options of --tee tpm, az-snp-vtpm and
// az-tdx-vtpm; the zero value is the machine's TPM and, for tpm, its
// endorsement-hierarchy attestation key.
type teeDevice struct {
	tpm      string // --tpm-device
	akHandle uint32 // --tpm-ak-handle
}

func newAttestEvidenceCmd(g *globals) *cobra.Command {
	f := &attestEvidenceFlags{}
	cmd := &cobra.Command{
		Use:   "evidence",
		Short: "Produce an evidence bundle inside a TEE (or the INSECURE sim)",
		Long: `Produce an evidence bundle binding a verifier's nonce, an optional public key and optional
context data into the hardware report_data, as docs/spec/attestation.md §3 defines. With --tee auto
(the default) kura uses SEV-SNP or TDX through configfs-tsm or the guest device, else an Azure
confidential VM's vTPM (az-snp-vtpm, az-tdx-vtpm), and fails when none is present. --tee tpm
quotes a plain TPM 2.0 with its event logs: it attests measured boot, not a TEE, so auto never
picks it, and verifiers must pin its attestation key (--tpm-ak-out writes it) or trust the
authority that certified it (--tpm-ak-cert ships the certificate kura attest tpm-enroll got).
--tee sim gives INSECURE simulated evidence for development.`,
		Example: `  nonce=$(curl -s -X POST localhost:8080/v1/attestation/nonce | jq -r .nonce | base64 -d | xxd -p -c64)
  kura attest evidence --nonce "$nonce" --data manifest.sha256 -o bundle.json
  kura attest evidence --tee tpm --nonce "$nonce" --tpm-ak-out ak.pem -o bundle.json
  kura attest evidence --tee tpm --nonce "$nonce" --tpm-ak-cert ak-cert.pem -o bundle.json
  kura attest evidence --nonce "$nonce" --device gpu0=nvidia -o bundle.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAttestEvidence(cmd.Context(), g, f, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.tee, "tee", "auto", "auto, snp, tdx, az-snp-vtpm, az-tdx-vtpm, tpm or sim")
	fs.StringVar(&f.nonce, "nonce", "", "verifier nonce, hex (required)")
	fs.StringVar(&f.dev.tpm, "tpm-device", "", "tpm, az-*: the TPM, a device or a TPM emulator's Unix socket (default /dev/tpmrm0)")
	fs.Uint32Var(&f.dev.akHandle, "tpm-ak-handle", 0, "tpm: persistent handle of the attestation key, e.g. 0x81010001 (default: an endorsement-hierarchy key, the same every time)")
	fs.StringVar(&f.akOut, "tpm-ak-out", "", "tpm: write the attestation key here (PEM), for verifiers to pin with --tpm-ak")
	fs.StringVar(&f.akCert, "tpm-ak-cert", "", "tpm: ship this certificate of the attestation key (PEM or DER, then any intermediates; kura attest tpm-enroll writes one) in the bundle's certs, for verifiers that trust its authority (--tpm-ak-ca)")
	fs.StringArrayVar(&f.devices, "device", nil, "NAME=TEE: attest this device too, into a composite bundle (docs/spec/attestation.md §2.2), e.g. tpm0=tpm or gpu0=nvidia (the first GPU, through NVML) (repeatable)")
	fs.StringVar(&f.data, "data", "", "file whose bytes are bound as the runtime-data context")
	fs.StringVar(&f.publicKey, "public-key", "", "file whose bytes are bound as the runtime-data public key (e.g. a JWK)")
	fs.StringVarP(&f.out, "output", "o", "", "write the bundle here instead of standard output")
	return cmd
}

// attester returns the attester for --tee; dev says which TPM the TPM-based
// ones use.
func attester(ctx context.Context, tee string, dev teeDevice) (attestation.Attester, error) {
	switch tee {
	case "sim":
		return sim.NewAttester(sim.AttesterConfig{})
	case "snp":
		return snp.NewAttester(snp.AttesterConfig{})
	case "tdx":
		return tdx.NewAttester(tdx.AttesterConfig{})
	case string(attestation.AzSNPvTPM), string(attestation.AzTDXvTPM):
		return azureAttester(dev, attestation.TEE(tee))
	case string(attestation.TPM):
		return tpm.NewAttester(tpm.AttesterConfig{Device: dev.tpm, AKHandle: tpm2.TPMHandle(dev.akHandle)})
	case string(attestation.NVIDIA):
		return nvidialive.NewAttester(nvidialive.AttesterConfig{})
	case "auto":
		// An Azure confidential VM has no SEV-SNP or TDX guest device: its
		// hardware report comes through the vTPM. A plain TPM is no TEE, so
		// auto never picks tpm.
		var errs []error
		for _, try := range []func() (attestation.Attester, error){
			func() (attestation.Attester, error) { return attester(ctx, "snp", dev) },
			func() (attestation.Attester, error) { return attester(ctx, "tdx", dev) },
			func() (attestation.Attester, error) { return azureAttester(dev, "") },
		} {
			a, err := try()
			if err == nil {
				return a, nil
			}
			errs = append(errs, err)
		}
		return nil, fmt.Errorf("%w: %w (use --tee sim for INSECURE simulated evidence in development)", attestation.ErrNoTEE, errors.Join(errs...))
	}
	return nil, usagef("--tee %q: want auto, snp, tdx, az-snp-vtpm, az-tdx-vtpm, tpm or sim", tee)
}

// azureAttester returns the attester of an Azure confidential VM's vTPM,
// which must be of TEE want unless want is empty.
func azureAttester(dev teeDevice, want attestation.TEE) (attestation.Attester, error) {
	a, err := azure.NewAttester(azure.AttesterConfig{Device: dev.tpm})
	switch {
	case err != nil:
		return nil, err
	case want == "" || a.TEE() == want:
		return a, nil
	}
	a.Close()
	return nil, fmt.Errorf("%w: --tee %s: this Azure confidential VM's HCL report makes it %s; use --tee %s or auto", attestation.ErrNoTEE, want, a.TEE(), a.TEE())
}

func runAttestEvidence(ctx context.Context, g *globals, f *attestEvidenceFlags, out io.Writer) error {
	if f.nonce == "" {
		return usagef("--nonce is required: get one from the verifier (POST /v1/attestation/nonce)")
	}
	nonce, err := hex.DecodeString(f.nonce)
	if err != nil {
		return usagef("--nonce %q: want hex", f.nonce)
	}
	rd := attestation.RuntimeData{Nonce: nonce}
	if f.data != "" {
		if rd.Context, err = readInput("--data", f.data); err != nil {
			return err
		}
	}
	if f.publicKey != "" {
		if rd.PublicKey, err = readInput("--public-key", f.publicKey); err != nil {
			return err
		}
	}
	if err := rd.Check(); err != nil {
		return usageError{err}
	}
	a, err := attester(ctx, f.tee, f.dev)
	if err != nil {
		return err
	}
	if c, ok := a.(io.Closer); ok {
		defer c.Close()
	}
	devices, closeDevices, err := deviceAttesters(ctx, f.devices, f.dev)
	if err != nil {
		return err
	}
	defer closeDevices()
	all := []attestation.Attester{a}
	for _, d := range devices {
		all = append(all, d.Attester)
	}
	if f.akOut != "" {
		if err := writeAK(all, f.akOut); err != nil {
			return err
		}
	}
	if f.akCert != "" {
		if a, devices, err = withAKCert(f.akCert, a, devices); err != nil {
			return err
		}
	}
	for _, a := range all {
		if a.TEE() == attestation.Sim {
			fmt.Fprintln(g.env.Stderr, "kura: INSECURE: producing simulated evidence; it proves nothing and is refused outside dev mode")
			break
		}
	}
	b, err := attestation.AttestComposite(ctx, a, devices, rd)
	if err != nil {
		return err
	}
	data, err := b.Marshal()
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if f.out == "" {
		_, err = out.Write(data)
		return err
	}
	return os.WriteFile(f.out, data, 0o644)
}

// deviceAttesters opens the attesters of --device NAME=TEE specs (TEE tpm,
// nvidia or sim); closeAll closes those that hold a device.
func deviceAttesters(ctx context.Context, specs []string, dev teeDevice) (devices []attestation.DeviceAttester, closeAll func(), err error) {
	closeAll = func() {
		for _, d := range devices {
			if c, ok := d.Attester.(io.Closer); ok {
				c.Close()
			}
		}
	}
	for _, spec := range specs {
		name, tee, ok := strings.Cut(spec, "=")
		if !ok || (tee != string(attestation.TPM) && tee != string(attestation.Sim) && tee != string(attestation.NVIDIA)) {
			closeAll()
			return nil, nil, usagef("--device %q: want NAME=TEE, TEE tpm, nvidia or sim (e.g. tpm0=tpm, gpu0=nvidia)", spec)
		}
		da, err := attester(ctx, tee, dev)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("--device %s: %w", spec, err)
		}
		devices = append(devices, attestation.DeviceAttester{Name: name, Attester: da})
	}
	return devices, closeAll, nil
}

// writeAK writes the attestation key of the tpm attester among as to path
// as PEM.
func writeAK(as []attestation.Attester, path string) error {
	var ta *tpm.Attester
	for _, a := range as {
		if t, ok := a.(*tpm.Attester); ok {
			ta = t
		}
	}
	if ta == nil {
		return usagef("--tpm-ak-out: only --tee tpm or a --device NAME=tpm has an attestation key to pin")
	}
	k, err := ta.AttestationKey()
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
}
