package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/store"
)

// newRunCmd is `kura run`: submit runs to a coordinator's queue and follow
// them.
func newRunCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "run", Short: "Queue clean-room runs on a kura coordinator and follow them"}
	cmd.AddCommand(newRunSubmitCmd(g), newRunStatusCmd(g), newRunLsCmd(g), newRunWaitCmd(g))
	return cmd
}

// runClient holds the connection flags of the run commands.
type runClient struct {
	url, identity string
	json          bool
	cf            *clientFlags
}

func newRunClient(g *globals, cmd *cobra.Command, identity bool) *runClient {
	rc := &runClient{}
	rc.cf = &clientFlags{g: g, url: &rc.url}
	cmd.Flags().StringVar(&rc.url, "url", g.envDefault("KURA_URL", ""), urlHelp("the kura server", "KURA_URL"))
	if identity {
		rc.cf.identity = &rc.identity
		cmd.Flags().StringVar(&rc.identity, "identity", g.envDefault("KURA_IDENTITY", ""), "the party directory whose signing key signs the request (KURA_IDENTITY; client.yaml identity)")
	}
	cmd.Flags().BoolVar(&rc.json, "json", false, runJSONHelp)
	rc.cf.addCA(cmd, false)
	return rc
}

func (rc *runClient) client() (*coordinator.Client, error) {
	hc, err := rc.cf.resolve()
	if err != nil {
		return nil, err
	}
	c := &coordinator.Client{BaseURL: rc.url, HTTP: hc}
	if rc.cf.identity != nil {
		if rc.identity == "" {
			return nil, usagef("--identity DIR is required: the request is signed by a party of the collaboration")
		}
		if c.Identity, err = party.Load(rc.identity); err != nil {
			return nil, fmt.Errorf("--identity: %w", err)
		}
	}
	return c, nil
}

// print shows one run, or with --json prints it as one JSON object.
func (rc *runClient) print(w io.Writer, r *coordinator.RunStatus) error {
	if rc.json {
		return printJSON(w, r)
	}
	return rc.list(w, []*coordinator.RunStatus{r})
}

// list shows runs one a line, or with --json prints them as a JSON array.
func (rc *runClient) list(w io.Writer, runs []*coordinator.RunStatus) error {
	if rc.json {
		if runs == nil {
			runs = []*coordinator.RunStatus{}
		}
		return printJSON(w, runs)
	}
	for _, r := range runs {
		fmt.Fprintf(w, "%s  %-9s  %s/%s  attempts %d  submitted %s", r.ID, r.State, r.Collaboration, r.Analysis, r.Attempts, r.SubmittedAt.UTC().Format(time.RFC3339))
		if r.Worker != "" {
			fmt.Fprintf(w, "  worker %s", r.Worker)
		}
		if r.Error != "" {
			fmt.Fprintf(w, "  error: %s", r.Error)
		}
		fmt.Fprintln(w)
	}
	return nil
}

// runJSONHelp documents what the run commands print with --json.
const runJSONHelp = `print JSON: a run is {id, collaboration, analysis, submitted_by, submitted_at, state, worker, attempts, result, receipt, error, updated_at}; run ls prints an array of them`

func newRunSubmitCmd(g *globals) *cobra.Command {
	var analysisID string
	cmd := &cobra.Command{
		Use:   "submit COLLABORATION_ID --analysis ID --identity DIR",
		Short: "Queue a run of an approved analysis; a worker (kura worker serve) claims it",
		Long: `Queue a run of an analysis of a collaboration the coordinator holds. The request is signed by a
party the manifest lets run it (an analyst, or an owner of data it reads), and every owner whose data
it reads must have approved the current version. A worker then claims it; its key brokers check
everything again before any key moves. Prints the run, its id first; follow it with kura run wait.`,
		Args: cobra.ExactArgs(1),
	}
	rc := newRunClient(g, cmd, true)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if analysisID == "" {
			return usagef("--analysis is required")
		}
		c, err := rc.client()
		if err != nil {
			return err
		}
		r, err := c.SubmitRun(cmd.Context(), args[0], analysisID)
		if err != nil {
			return err
		}
		return rc.print(cmd.OutOrStdout(), r)
	}
	cmd.Flags().StringVar(&analysisID, "analysis", "", "analysis id")
	return cmd
}

func newRunStatusCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "status RUN", Short: "Show a run", Args: cobra.ExactArgs(1)}
	rc := newRunClient(g, cmd, false)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := rc.client()
		if err != nil {
			return err
		}
		r, err := c.GetRun(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		return rc.print(cmd.OutOrStdout(), r)
	}
	return cmd
}

func newRunLsCmd(g *globals) *cobra.Command {
	var collabID string
	cmd := &cobra.Command{Use: "ls --collab ID", Short: "List a collaboration's runs, newest first", Args: cobra.NoArgs}
	rc := newRunClient(g, cmd, false)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if collabID == "" {
			return usagef("--collab ID is required")
		}
		c, err := rc.client()
		if err != nil {
			return err
		}
		runs, err := c.ListRuns(cmd.Context(), collabID)
		if err != nil {
			return err
		}
		return rc.list(cmd.OutOrStdout(), runs)
	}
	cmd.Flags().StringVar(&collabID, "collab", "", "the collaboration whose runs to list")
	return cmd
}

// errRunFailed means a waited-for run failed.
var errRunFailed = errors.New("run failed")

func newRunWaitCmd(g *globals) *cobra.Command {
	var timeout, every time.Duration
	cmd := &cobra.Command{Use: "wait RUN", Short: "Wait until a run completes (exit 0) or fails", Args: cobra.ExactArgs(1)}
	rc := newRunClient(g, cmd, false)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := rc.client()
		if err != nil {
			return err
		}
		r, err := waitRun(cmd.Context(), c, args[0], timeout, every)
		if err != nil {
			return err
		}
		if perr := rc.print(cmd.OutOrStdout(), r); perr != nil {
			return perr
		}
		if r.State == store.RunFailed {
			return fmt.Errorf("%w: %s", errRunFailed, r.Error)
		}
		return nil
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "give up after this long")
	cmd.Flags().DurationVar(&every, "every", time.Second, "how often to ask")
	return cmd
}

// waitRun polls a run until it completes or fails.
func waitRun(ctx context.Context, c *coordinator.Client, id string, timeout, every time.Duration) (*coordinator.RunStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		r, err := c.GetRun(ctx, id)
		if err != nil {
			return nil, err
		}
		if r.State == store.RunCompleted || r.State == store.RunFailed {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("run %s still %s after %s", id, r.State, timeout)
		case <-t.C:
		}
	}
}

// newResultFetchCmd is `kura result fetch`: a completed run's result
// bundle and receipt, as the log role kept them (proofs embedded).
func newResultFetchCmd(g *globals) *cobra.Command {
	var out, receiptOut string
	cmd := &cobra.Command{
		Use:   "fetch RUN -o RESULT",
		Short: "Fetch a completed run's result bundle and deletion receipt; check them with kura result open",
		Long: `Fetch a completed run's result bundle and deletion receipt from the log role that kept them (with
their inclusion proofs), check that each is the file the coordinator names for the run, signed by
the run's key, and write them. Check them with kura result open and kura receipt verify.

--json prints {run_id, collaboration, analysis, result: {path, payload_sha256}, receipt: {path,
payload_sha256}}: the files written and the SHA-256 of their signed payloads, by which the
transparency log and the coordinator name them.`,
		Args: cobra.ExactArgs(1),
	}
	rc := newRunClient(g, cmd, false)
	cmd.Flags().Lookup("json").Usage = jsonFlagHelp
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if out == "" {
			return usagef("-o RESULT is required")
		}
		c, err := rc.client()
		if err != nil {
			return err
		}
		r, err := c.GetRun(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		if r.State != store.RunCompleted {
			return fmt.Errorf("run %s is %s, not completed%s", r.ID, r.State, map[bool]string{true: ": " + r.Error}[r.Error != ""])
		}
		if receiptOut == "" {
			receiptOut = strings.TrimSuffix(out, ".json") + ".receipt.json"
		}
		fetched := fetchedResult{RunID: r.ID, Collaboration: r.Collaboration, Analysis: r.Analysis,
			Result: fetchedFile{Path: out, PayloadSHA256: r.Result}, Receipt: fetchedFile{Path: receiptOut, PayloadSHA256: r.Receipt}}
		for _, x := range []struct {
			kind string
			file fetchedFile
		}{{"results", fetched.Result}, {"receipts", fetched.Receipt}} {
			f, err := fetchKept(cmd.Context(), c.HTTP, rc.url, x.kind, x.file.PayloadSHA256, r.ID)
			if err != nil {
				return err
			}
			if err := writeEnvelopeFile(x.file.Path, f); err != nil {
				return err
			}
			if !rc.json {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", strings.TrimSuffix(x.kind, "s"), x.file.Path)
			}
		}
		if rc.json {
			return printJSON(cmd.OutOrStdout(), fetched)
		}
		return nil
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the result bundle here")
	cmd.Flags().StringVar(&receiptOut, "receipt", "", "write the deletion receipt here (default: RESULT with .receipt.json)")
	return cmd
}

// fetchedResult is what `kura result fetch --json` prints.
type fetchedResult struct {
	RunID         string      `json:"run_id"`
	Collaboration string      `json:"collaboration"`
	Analysis      string      `json:"analysis"`
	Result        fetchedFile `json:"result"`
	Receipt       fetchedFile `json:"receipt"`
}

// fetchedFile is a file `kura result fetch` wrote.
type fetchedFile struct {
	Path          string `json:"path"`
	PayloadSHA256 string `json:"payload_sha256"`
}

// fetchKept GETs a bundle or receipt the log kept, by its payload digest,
// and checks that it is that file, signed by the key of run runID.
func fetchKept(ctx context.Context, hc *http.Client, base, kind, digest, runID string) (*result.File, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/v1/cleanroom/"+kind+"/"+digest, nil)
	if err != nil {
		return nil, err
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, result.MaxSize+1))
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, web.ReadProblem("log", res.StatusCode, data)
	}
	f, err := result.ParseFile(data)
	if err != nil {
		return nil, err
	}
	if got := result.DigestHex(f.Envelope.Payload); got != digest {
		return nil, fmt.Errorf("%w: the server answered %s %s with a file whose payload digest is %s", result.ErrTampered, kind, digest, got)
	}
	rc, err := result.CheckSigned(f)
	if err != nil {
		return nil, err
	}
	if rc.RunID != runID {
		return nil, fmt.Errorf("%w: the coordinator names %s %s for run %s, but it was signed for run %s", result.ErrTampered, kind, digest, runID, rc.RunID)
	}
	return f, nil
}
