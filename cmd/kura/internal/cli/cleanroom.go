package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/kura-cc/kura/analysis"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/auditlog/intake"
	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/scenario"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/worker"
)

func newWorkerCmd(g *globals) *cobra.Command {
	var analysisID, tee, out, receiptOut, logURL, verifierURL string
	var dev, asJSON bool
	cl := &clientFlags{g: g}
	run := &cobra.Command{
		Use:   "run COLLABORATION --analysis ID -o RESULT",
		Short: "Run an approved analysis inside this TEE: the clean-room worker",
		Long: `Run one analysis of a collaboration as the clean-room worker: attest with a fresh signing key
bound into the evidence to one of the manifest's verifiers (the first with a url, or --verifier),
get each dataset key from its owner's key broker with that verifier's token, check and decrypt the
sealed files into memory only, run the analysis in DuckDB under the output policy, encrypt the
output to every receiver, sign the result bundle, wipe keys and plaintext, and sign a deletion
receipt. --tee sim (INSECURE, dev mode only) runs on machines without a TEE.`,
		Example: `  kura worker run airline-carrier.collab.json --analysis visitors_by_age -o result.json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if analysisID == "" || out == "" {
				return usagef("--analysis and -o are required")
			}
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
			c, err := readInput("COLLABORATION", args[0])
			if err != nil {
				return err
			}
			a, err := attester(ctx, tee, teeDevice{})
			if err != nil {
				return err
			}
			if receiptOut == "" {
				receiptOut = strings.TrimSuffix(out, ".json") + ".receipt.json"
			}
			var report workerRunReport
			cfg := worker.Config{Collaboration: c, Analysis: analysisID, Attester: a, Verifier: verifierURL, Logger: log, HTTP: hc}
			if logURL != "" {
				cfg.OnStart = func(ctx context.Context, start *result.File) error {
					body, err := start.Marshal()
					if err != nil {
						return err
					}
					proof, err := (&intake.Client{BaseURL: logURL, HTTP: hc}).Submit(ctx, auditlog.KindRunStart, body)
					if err != nil {
						return err
					}
					p, err := auditlog.ParseProof(proof)
					if err != nil {
						return err
					}
					report.RunStartIndex = &p.Index
					if !asJSON {
						fmt.Fprintf(cmd.OutOrStdout(), "run start logged at index %d\n", p.Index)
					}
					return nil
				}
			}
			o, err := worker.Run(ctx, cfg)
			if logURL != "" && o != nil {
				if perr := publishRun(ctx, hc, logURL, o.Result, o.Receipt); perr != nil {
					err = errors.Join(err, perr)
				}
			}
			if o != nil && o.Receipt != nil {
				if werr := writeEnvelopeFile(receiptOut, o.Receipt); werr != nil {
					return werr
				}
				report.Receipt = receiptOut
				if !asJSON {
					fmt.Fprintf(cmd.OutOrStdout(), "deletion receipt: %s\n", receiptOut)
				}
			}
			if err != nil {
				return err
			}
			if err := writeEnvelopeFile(out, o.Result); err != nil {
				return err
			}
			if asJSON {
				report.RunID, report.Rows, report.Suppressed, report.Result = o.RunID, o.Rows, o.Suppressed, out
				return printJSON(cmd.OutOrStdout(), report)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "run %s: %d rows, %d suppressed by the output policy\nresult bundle: %s\n", o.RunID, o.Rows, o.Suppressed, out)
			return nil
		},
	}
	run.Flags().StringVar(&analysisID, "analysis", "", "analysis id")
	run.Flags().BoolVar(&asJSON, "json", false, "print {run_id, rows, suppressed, result, receipt, run_start_index (with --log)} once the run succeeded")
	run.Flags().StringVar(&tee, "tee", "auto", "auto, snp, tdx, az-snp-vtpm, az-tdx-vtpm, tpm or sim")
	run.Flags().BoolVar(&dev, "dev", false, "development mode: allow the INSECURE simulated TEE")
	run.Flags().StringVarP(&out, "output", "o", "", "write the signed result bundle here")
	run.Flags().StringVar(&logURL, "log", g.envDefault("KURA_LOG_URL", ""), "record the result and receipt in the transparency log of the kura server at this URL and embed the inclusion proofs (KURA_LOG_URL)")
	run.Flags().StringVar(&receiptOut, "receipt", "", "write the signed deletion receipt here (default: RESULT with .receipt.json)")
	cl.addCA(run, false)
	run.Flags().StringVar(&verifierURL, "verifier", "", "attest to the verifier whose attestation API is at this URL (default: the first of the manifest's verifiers with a url); receivers accept only the manifest's verifiers")
	cmd := &cobra.Command{Use: "worker", Short: "The clean-room worker (runs inside a TEE)"}
	cmd.AddCommand(run, newWorkerServeCmd(g))
	return cmd
}

// workerRunReport is what `kura worker run --json` prints.
type workerRunReport struct {
	RunID         string  `json:"run_id"`
	Rows          int     `json:"rows"`
	Suppressed    int     `json:"suppressed"`
	Result        string  `json:"result"`
	Receipt       string  `json:"receipt"`
	RunStartIndex *uint64 `json:"run_start_index,omitempty"`
}

func writeEnvelopeFile(path string, f *result.File) error {
	data, err := f.Marshal()
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// trustFlags are how a receiver or auditor names what it trusts: by
// default the manifest's verifier list, which counts when its own approval
// (--identity) covers it; --trust-jwks and --trust-key name verifiers
// instead.
type trustFlags struct {
	jwks   []string
	keys   []string
	dev    bool
	logKey string
	cl     clientFlags  // --ca; the verifiers' JWKS are fetched with its client
	hc     *http.Client // set by trust
}

// publishRun records a run's result bundle and receipt in the
// transparency log at baseURL and embeds the inclusion proofs it returns.
func publishRun(ctx context.Context, hc *http.Client, baseURL string, bundle, receipt *result.File) error {
	c := &intake.Client{BaseURL: baseURL, HTTP: hc}
	for _, x := range []struct {
		f    *result.File
		kind auditlog.Kind
	}{{bundle, auditlog.KindResult}, {receipt, auditlog.KindReceipt}} {
		if x.f == nil {
			continue
		}
		body, err := x.f.Marshal()
		if err != nil {
			return err
		}
		if x.f.LogProof, err = c.Submit(ctx, x.kind, body); err != nil {
			return err
		}
	}
	return nil
}

func (t *trustFlags) register(g *globals, cmd *cobra.Command, identity *string) {
	t.cl.g, t.cl.identity = g, identity
	t.cl.addCA(cmd, false)
	cmd.Flags().StringArrayVar(&t.jwks, "trust-jwks", nil, "trust tokens from the verifier whose JWKS is in this file or at this URL, instead of the manifest's verifier list (repeatable)")
	cmd.Flags().StringArrayVar(&t.keys, "trust-key", nil, "trust tokens signed by this PEM public key, instead of the manifest's verifier list (repeatable)")
	cmd.Flags().BoolVar(&t.dev, "dev", false, "development mode: accept results from the INSECURE simulated TEE")
	cmd.Flags().StringVar(&t.logKey, "log-key", "", "require an embedded proof of inclusion in the transparency log with this verifier key (file or key text)")
}

// jwksFrom reads a --trust-jwks value: a URL to fetch or a file.
func (t *trustFlags) jwksFrom(ctx context.Context, src string) (jwk.Set, error) {
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return token.FetchJWKS(ctx, t.hc, src)
	}
	data, err := readInput("--trust-jwks", src)
	if err != nil {
		return nil, err
	}
	s, err := token.ParseJWKS(data)
	if err != nil {
		return nil, usagef("--trust-jwks %s: %w", src, err)
	}
	return s, nil
}

// resolve fills --ca and the identity from the client configuration and
// builds the client trust fetches JWKS with; call it before reading the
// identity.
func (t *trustFlags) resolve() error {
	hc, err := t.cl.resolve()
	t.hc = hc
	return err
}

// trust returns what the flags trust. Without --trust-jwks or --trust-key
// it is the manifest's verifier list, whose JWKS URLs are fetched, for id,
// the party verifying: the list counts only if id approved it.
func (t *trustFlags) trust(ctx context.Context, id *party.Identity) (result.Trust, error) {
	set := jwk.NewSet()
	for _, src := range t.jwks {
		s, err := t.jwksFrom(ctx, src)
		if err != nil {
			return result.Trust{}, err
		}
		for i := range s.Len() {
			k, _ := s.Key(i)
			if err := set.AddKey(k); err != nil {
				return result.Trust{}, err
			}
		}
	}
	keys, err := pemKeySet(t.keys)
	if err != nil {
		return result.Trust{}, err
	}
	for i := range keys.Len() {
		k, _ := keys.Key(i)
		if err := set.AddKey(k); err != nil {
			return result.Trust{}, err
		}
	}
	tr := result.Trust{Verifiers: set, DevMode: t.dev}
	if set.Len() == 0 {
		if id == nil {
			return result.Trust{}, usagef("no trusted verifier: give --identity DIR (the manifest's verifier list counts for a party that approved it) or name the verifiers with --trust-jwks FILE|URL or --trust-key FILE")
		}
		tr.Verifiers, tr.Party = nil, id.Card().SigningKey
		tr.FetchJWKS = func(ctx context.Context, url string) (jwk.Set, error) {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return token.FetchJWKS(ctx, t.hc, url)
		}
	}
	if t.logKey != "" {
		if tr.Log, err = loadLogKey(t.logKey); err != nil {
			return result.Trust{}, err
		}
	}
	return tr, nil
}

func readEnvelopeFile(flag, path string) (*result.File, error) {
	data, err := readInput(flag, path)
	if err != nil {
		return nil, err
	}
	return result.ParseFile(data)
}

func printChecks(w io.Writer, a *result.Attested) {
	for _, c := range a.Checks {
		fmt.Fprintf(w, "  ok  %s\n", c)
	}
	if a.Insecure {
		fmt.Fprintln(w, "  !!  INSECURE: simulated TEE; this result proves nothing about where it was computed")
	}
}

func newResultCmd(g *globals) *cobra.Command {
	var identityDir, out, format string
	var tf trustFlags
	open := &cobra.Command{
		Use:   "open RESULT --identity DIR [--format table|csv|json|parquet] [-o FILE]",
		Short: "Verify a result bundle offline, then decrypt your copy of the output",
		Long: `Verify a result bundle before decrypting anything: the bundle signature with the run's attested
key, the attestation token against the manifest's verifier list — which counts because your own
approval covers it; their JWKS URLs are fetched — or against the verifiers you name with
--trust-jwks / --trust-key, its binding to the run and the evidence, the worker measurement against
the manifest, the collaboration history and every data owner's approval, and the inputs' digests.
Then decrypt your copy and check it against the signed digest. Any failure is an error naming what
failed; a token from a verifier not trusted names its key and claimed verifier. The output is a
table, CSV (a header row, then the rows), JSON (the signed result exactly as decrypted) or Parquet
(each column of its DuckDB type; needs -o). With a format other than table on stdout, the
verification report goes to stderr.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if out == "-" {
				out = "" // stdout
			}
			if format == "" {
				format = formatTable
				if out != "" {
					format = formatJSON
				}
			}
			switch format {
			case formatTable, formatCSV, formatJSON:
			case formatParquet:
				if out == "" {
					return usagef("--format parquet writes a file: give -o FILE")
				}
			default:
				return usagef("--format %q: want table, csv, json or parquet", format)
			}
			if err := tf.resolve(); err != nil {
				return err
			}
			if identityDir == "" {
				return usagef("--identity is required: the directory from 'kura party init'")
			}
			id, err := party.Load(identityDir)
			if err != nil {
				return err
			}
			t, err := tf.trust(ctx, id)
			if err != nil {
				return err
			}
			f, err := readEnvelopeFile("RESULT", args[0])
			if err != nil {
				return err
			}
			v, err := result.VerifyBundle(ctx, f, t)
			if err != nil {
				return err
			}
			plain, err := v.Open(id)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if out == "" && format != formatTable {
				w = cmd.ErrOrStderr() // stdout carries the result itself
			}
			fmt.Fprintf(w, "result of %s / %s, run %s\n", v.Run.Collaboration, v.Run.Analysis, v.Run.RunID)
			printChecks(w, v.Attested)
			if out == "" {
				return writeResult(ctx, cmd.OutOrStdout(), "", format, plain)
			}
			if format == formatParquet {
				return writeResult(ctx, nil, out, format, plain)
			}
			var buf bytes.Buffer
			if err := writeResult(ctx, &buf, out, format, plain); err != nil {
				return err
			}
			return os.WriteFile(out, buf.Bytes(), 0o600)
		},
	}
	tf.register(g, open, &identityDir)
	open.Flags().StringVar(&identityDir, "identity", g.envDefault("KURA_IDENTITY", ""), "your party identity directory (KURA_IDENTITY; client.yaml identity)")
	open.Flags().StringVarP(&out, "output", "o", "", "write the decrypted output to this file (mode 0600) instead of printing it; - is stdout")
	open.Flags().StringVar(&format, "format", "", "table, csv, json (the signed result as decrypted) or parquet (needs -o); default table, or json with -o")
	cmd := &cobra.Command{Use: "result", Short: "Fetch, verify and open clean-room results"}
	cmd.AddCommand(open, newResultFetchCmd(g))
	return cmd
}

func newReceiptCmd(g *globals) *cobra.Command {
	var resultPath, identityDir string
	var tf trustFlags
	var asJSON bool
	verify := &cobra.Command{
		Use:   "verify RECEIPT [--result RESULT]",
		Short: "Verify a deletion receipt offline",
		Long: `Verify a run's deletion receipt: its signature with the run's attested key, the attestation token
against the manifest's verifier list (with --identity, whose approval covers it) or the verifiers
you name with --trust-jwks / --trust-key, its binding to the run and the evidence, and the worker
measurement against the manifest; with --result, that it is the receipt of that result bundle.

--json prints {ok, error (when not ok), receipt, result, collaboration, manifest_hash, analysis,
run_id, outcome, destroyed_at, result_digest, tee, measurement, status, verifier, insecure,
checks: [...], destroyed: [{dataset, sealed_sha256, key_resource, key_released, plaintext_bytes}]};
a receipt or result that does not verify still prints it, with ok false, and exits with its code
(3 for a bad signature, binding or untrusted verifier).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := tf.resolve(); err != nil {
				return err
			}
			var id *party.Identity
			if identityDir != "" {
				var err error
				if id, err = party.Load(identityDir); err != nil {
					return err
				}
			}
			t, err := tf.trust(ctx, id)
			if err != nil {
				return err
			}
			f, err := readEnvelopeFile("RECEIPT", args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fail := func(err error) error {
				if asJSON {
					if perr := printJSON(w, receiptVerification{Error: err.Error(), Receipt: args[0], Result: resultPath, Checks: []string{}, Destroyed: []result.Destroyed{}}); perr != nil {
						return perr
					}
				}
				return err
			}
			var vb *result.VerifiedBundle
			if resultPath != "" {
				bf, err := readEnvelopeFile("--result", resultPath)
				if err != nil {
					return err
				}
				if vb, err = result.VerifyBundle(ctx, bf, t); err != nil {
					return fail(err)
				}
			}
			v, err := result.VerifyReceipt(ctx, f, vb, t)
			if err != nil {
				return fail(err)
			}
			if asJSON {
				return printJSON(w, receiptVerificationOf(v, args[0], resultPath))
			}
			fmt.Fprintf(w, "deletion receipt for %s / %s, run %s: %s at %s\n", v.Run.Collaboration, v.Run.Analysis, v.Run.RunID, v.Receipt.Outcome, v.Receipt.DestroyedAt.Format("2006-01-02 15:04:05Z07:00"))
			printChecks(w, v.Attested)
			for _, d := range v.Receipt.Destroyed {
				fmt.Fprintf(w, "  wiped  %s: key %s (released: %t), %d plaintext bytes\n", d.Dataset, d.KeyResource, d.KeyReleased, d.PlaintextBytes)
			}
			return nil
		},
	}
	tf.register(g, verify, &identityDir)
	verify.Flags().StringVar(&resultPath, "result", "", "also check that the receipt is for this result bundle")
	verify.Flags().StringVar(&identityDir, "identity", g.envDefault("KURA_IDENTITY", ""), "your party identity directory: trust the manifest's verifier list, which you approved (KURA_IDENTITY; client.yaml identity)")
	verify.Flags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	cmd := &cobra.Command{Use: "receipt", Short: "Verify deletion receipts"}
	cmd.AddCommand(verify)
	return cmd
}

// receiptVerification is what `kura receipt verify --json` prints.
type receiptVerification struct {
	OK            bool               `json:"ok"`
	Error         string             `json:"error,omitempty"`
	Receipt       string             `json:"receipt"`
	Result        string             `json:"result,omitempty"`
	Collaboration string             `json:"collaboration,omitempty"`
	ManifestHash  string             `json:"manifest_hash,omitempty"`
	Analysis      string             `json:"analysis,omitempty"`
	RunID         string             `json:"run_id,omitempty"`
	Outcome       string             `json:"outcome,omitempty"`
	DestroyedAt   *time.Time         `json:"destroyed_at,omitempty"`
	ResultDigest  string             `json:"result_digest,omitempty"`
	TEE           string             `json:"tee,omitempty"`
	Measurement   string             `json:"measurement,omitempty"`
	Status        string             `json:"status,omitempty"`
	Verifier      string             `json:"verifier,omitempty"`
	Insecure      bool               `json:"insecure"`
	Checks        []string           `json:"checks"`
	Destroyed     []result.Destroyed `json:"destroyed"`
}

// receiptVerificationOf describes a receipt that verified.
func receiptVerificationOf(v *result.VerifiedReceipt, receiptPath, resultPath string) receiptVerification {
	r := receiptVerification{OK: true, Receipt: receiptPath, Result: resultPath,
		Collaboration: v.Run.Collaboration, ManifestHash: v.Run.ManifestHash, Analysis: v.Run.Analysis, RunID: v.Run.RunID,
		Outcome: v.Receipt.Outcome, DestroyedAt: &v.Receipt.DestroyedAt, ResultDigest: v.Receipt.ResultDigest,
		TEE: v.TEE, Measurement: v.Measurement, Status: v.Status, Verifier: v.Verifier, Insecure: v.Insecure,
		Checks: v.Checks, Destroyed: v.Receipt.Destroyed}
	if r.Checks == nil {
		r.Checks = []string{}
	}
	if r.Destroyed == nil {
		r.Destroyed = []result.Destroyed{}
	}
	return r
}

// pemKeySet reads PEM public keys into a key set.
func pemKeySet(paths []string) (jwk.Set, error) {
	set := jwk.NewSet()
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, usagef("--trust-key: %w", err)
		}
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, usagef("--trust-key %s: no PEM block", p)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, usagef("--trust-key %s: %w", p, err)
		}
		s, err := token.PublicKeySet(pub)
		if err != nil {
			return nil, err
		}
		key, _ := s.Key(0)
		if err := set.AddKey(key); err != nil {
			return nil, err
		}
	}
	return set, nil
}

func newScenarioCmd() *cobra.Command {
	var rows int
	var seed int64
	var out string
	gen := &cobra.Command{
		Use:   "gen --rows N [--seed S] -o DIR",
		Short: "Generate the synthetic airline and carrier datasets (Parquet) and their schemas",
		Long: `Generate the demo's synthetic data: an airline's flights (member_id, phone, age band, home
prefecture, destination, date) and a mobile carrier's visits (subscriber_id, phone, area, arrival
date, stay), overlapping on part of the population, skewed so that some groups are small. Writes
flights.parquet, visits.parquet and their schemas (flights.schema.yaml, visits.schema.yaml) for
'kura data seal'. The same rows and seed give byte-identical files.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("-o DIR is required")
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			files, err := scenario.Generate(cmd.Context(), out, scenario.Config{Rows: rows, Seed: seed})
			if err != nil {
				return usageError{err}
			}
			for name, sc := range map[string]*table.Schema{"flights.schema.yaml": scenario.FlightsSchema(), "visits.schema.yaml": scenario.VisitsSchema()} {
				data, err := yaml.Marshal(sc)
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(out, name), data, 0o644); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s and %s (%d rows each, seed %d) with their schemas\n", files.Flights, files.Visits, rows, seed)
			return nil
		},
	}
	gen.Flags().IntVar(&rows, "rows", 10000, "rows per dataset")
	gen.Flags().Int64Var(&seed, "seed", 1, "random seed")
	gen.Flags().StringVarP(&out, "output", "o", "", "output directory")
	cmd := &cobra.Command{Use: "scenario", Short: "Synthetic data for demos and benchmarks"}
	cmd.AddCommand(gen)
	return cmd
}

// decodeResult decodes a decrypted analysis output.
func decodeResult(data []byte) (*analysis.Result, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var r analysis.Result
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decode the result: %w", err)
	}
	return &r, nil
}

// printResult prints a decrypted analysis output as a table, and says how
// many rows the output policy withheld and why.
func printResult(w io.Writer, data []byte) error {
	r, err := decodeResult(data)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for i, c := range r.Columns {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, c.Name)
	}
	fmt.Fprintln(tw)
	for _, row := range r.Rows {
		for i, v := range row {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			if f, ok := v.(json.Number); ok && strings.Contains(f.String(), ".") {
				if x, err := f.Float64(); err == nil {
					v = strconv.FormatFloat(x, 'f', 2, 64)
				}
			}
			fmt.Fprint(tw, v)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var rules []string
	for _, t := range r.Thresholds {
		rules = append(rules, fmt.Sprintf("%s ≥ %d", t.Dataset, t.MinDistinctIdentities))
	}
	fmt.Fprintf(w, "%d rows; %d suppressed by the output policy (distinct identities per row: %s)\n", len(r.Rows), r.SuppressedRows, strings.Join(rules, ", "))
	return nil
}
