package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/cmd/kura/internal/cli"
	"github.com/kura-cc/kura/cmd/kura/internal/demo"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/scenario"
)

// TestMPCAgents: the airline and the carrier compute an analysis on the
// cryptographic backend with their agents as separate processes (kura mpc
// agent, kura mpc run) on loopback; the analyst opens the result and
// verifies the receipt with the usual commands and gets exactly the
// plaintext join's counts after the same suppression; a party that
// approved nothing cannot open it, and an analysis approved only for the
// TEE backend is refused with the policy exit code. Then private runs spend
// the budgets, are logged with their ε, and the run past the budget is
// refused with the numbers.
func TestMPCAgents(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	k := kuraProcs(t)
	run := k.run
	mustRun := func(t *testing.T, args ...string) {
		t.Helper()
		if code, out := k.run(ctx, args...); code != cli.ExitOK {
			t.Fatalf("kura %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	for _, name := range []string{"airline", "carrier", "analyst"} {
		mustRun(t, "party", "init", name, "-o", p(name))
	}
	files, err := scenario.Generate(ctx, dir, scenario.Config{Rows: 6000, Seed: 3, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]*party.Identity{}
	for _, name := range []string{"airline", "carrier", "analyst"} {
		if ids[name], err = party.Load(p(name)); err != nil {
			t.Fatal(err)
		}
	}
	m := &collab.Manifest{Format: collab.FormatVersion, ID: "mpc-cli",
		Parties: []collab.Party{
			{Name: "airline", Roles: []collab.Role{collab.RoleDataProvider}, Card: ids["airline"].Card()},
			{Name: "carrier", Roles: []collab.Role{collab.RoleDataProvider}, Card: ids["carrier"].Card()},
			{Name: "analyst", Roles: []collab.Role{collab.RoleResultReceiver}, Card: ids["analyst"].Card()},
		},
		Receivers: []string{"analyst"},
		Verifiers: []collab.Verifier{{Name: "unused", JWKSURL: "https://verifier.example/.well-known/jwks.json"}},
	}
	m.Worker.ReferenceValues.Measurements = []appraisal.Measurement{{TEE: "snp", Name: "unused", Value: strings.Repeat("ab", 48)}}
	for _, ds := range []struct {
		id, owner, plain string
		schema           *table.Schema
	}{{"flights", "airline", files.Flights, scenario.FlightsSchema()}, {"visits", "carrier", files.Visits, scenario.VisitsSchema()}} {
		sealed := p(ds.id + ".kura")
		schemaFile := p(ds.id + ".schema.json")
		os.WriteFile(schemaFile, ds.schema.JSON(), 0o600)
		mustRun(t, "data", "seal", ds.plain, "--schema", schemaFile, "--dataset-id", ds.id, "-o", sealed)
		key, err := dataset.ReadKeyFile(sealed + ".key")
		if err != nil {
			t.Fatal(err)
		}
		kid := key.ID()
		sum, size, err := dataset.FileSHA256(sealed)
		if err != nil {
			t.Fatal(err)
		}
		m.Datasets = append(m.Datasets, collab.Dataset{ID: ds.id, Owner: ds.owner, OutputPolicy: collab.OutputPolicy{MinDistinctIdentities: 5},
			Descriptor: collab.Descriptor{Version: 1, DatasetID: ds.id, Owner: ds.owner, Format: "parquet", Schema: ds.schema,
				KeyID: hex.EncodeToString(kid[:]), SealedSHA256: sum, SealedSize: size,
				KeyBroker: collab.KeyBrokerRef{URL: "https://kbs." + ds.owner + ".example", Resource: ds.owner + "/dataset-key/" + ds.id, Version: 1}}})
	}
	agg := func() *collab.Aggregate {
		return &collab.Aggregate{From: "flights", Joins: []collab.Join{{Dataset: "visits", Left: "flights.phone", Right: "visits.phone"}},
			GroupBy:  []string{"flights.age_band"},
			Measures: []collab.Measure{{Func: collab.AggCountDistinctIdentities, Dataset: "visits", As: "visitors"}}}
	}
	m.Analyses = []collab.Analysis{
		{ID: "by_age", Kind: collab.KindAggregate, Backend: collab.BackendMPC, Aggregate: agg()},
		{ID: "by_age_tee", Kind: collab.KindAggregate, Aggregate: agg()},
	}
	c, err := collab.New(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"airline", "carrier", "analyst"} {
		if _, err := c.Approve(ids[name], time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p("mpc.collab.json"), data, 0o600)

	peer := k.background(t, "mpc", "agent", "--identity", p("carrier"), "--dataset", "visits="+p("visits.kura"),
		"--key-file", "visits="+p("visits.kura.key"), "--ledger", p("carrier.ledger"), "--addr", "127.0.0.1:0")
	runArgs := func(analysis, out string) []string {
		return []string{"mpc", "run", p("mpc.collab.json"), "--analysis", analysis, "--peer", peer, "--identity", p("airline"),
			"--dataset", "flights=" + p("flights.kura"), "--key-file", "flights=" + p("flights.kura.key"), "--ledger", p("airline.ledger"), "-o", out, "--json"}
	}
	code, stdout, stderr := k.split(ctx, runArgs("by_age", p("result.json"))...)
	if code != cli.ExitOK {
		t.Fatalf("mpc run: exit %d\n%s", code, stderr)
	}
	var report struct{ Rows, Suppressed int }
	if err := json.Unmarshal([]byte(stdout), &report); err != nil || report.Rows == 0 {
		t.Fatalf("mpc run --json: %v\n%s", err, stdout)
	}
	code, stdout, stderr = k.split(ctx, "result", "open", p("result.json"), "--identity", p("analyst"), "--format", "csv")
	if code != cli.ExitOK || !strings.Contains(stderr, "both owners' agents signed this run") {
		t.Fatalf("result open: exit %d\n%s", code, stderr)
	}
	t.Logf("released, equal to the plaintext join:\n%s", stdout)
	if want := plaintextByAge(t, files, 5); stdout != want {
		t.Fatalf("released:\n%s\nthe plaintext join after the same suppression:\n%s", stdout, want)
	}
	if code, out := run(ctx, "receipt", "verify", p("result.receipt.json"), "--result", p("result.json"), "--identity", p("analyst")); code != cli.ExitOK {
		t.Fatalf("receipt verify: exit %d\n%s", code, out)
	}
	// A party that approved nothing cannot vouch for the owners' cards.
	mustRun(t, "party", "init", "mallory", "-o", p("mallory"))
	if code, out := run(ctx, "result", "open", p("result.json"), "--identity", p("mallory")); code != cli.ExitBadEvidence {
		t.Fatalf("result open by a non-party: exit %d\n%s", code, out)
	}
	// The TEE-only analysis is refused by the initiator's own agent.
	if code, out := run(ctx, runArgs("by_age_tee", p("tee.json"))...); code != cli.ExitPolicy || !strings.Contains(out, "approved for the tee backend, not mpc") {
		t.Fatalf("mpc run of a tee analysis: exit %d\n%s", code, out)
	}

	// Version 2 gives both datasets a privacy budget of 1 and the
	// analyses ε 0.5: two runs fit, the third is refused with the numbers,
	// and collab budget reads what the carrier's running agent spent.
	m2 := *c.Current()
	m2.Previous = m2.Hash()
	m2.Datasets = append([]collab.Dataset(nil), m2.Datasets...)
	m2.Analyses = append([]collab.Analysis(nil), m2.Analyses...)
	for i := range m2.Datasets {
		m2.Datasets[i].OutputPolicy.PrivacyBudget = "1"
	}
	for i := range m2.Analyses {
		m2.Analyses[i].Privacy = &collab.Privacy{Epsilon: "0.5"}
	}
	if err := c.AddVersion(&m2); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"airline", "carrier", "analyst"} {
		if _, err := c.Approve(ids[name], time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if data, err = c.Marshal(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p("mpc.collab.json"), data, 0o600)
	// The private runs are recorded in a transparency log, whose result
	// entries carry the ε the owners' agents charged.
	srv, err := demo.StartServer(ctx, p("server"), "owner", "test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	for i := range 2 {
		if code, out := run(ctx, append(runArgs("by_age", p("private.json")), "--log", srv.URL)...); code != cli.ExitOK {
			t.Fatalf("private run %d: exit %d\n%s", i+1, code, out)
		}
	}
	code, ls, lsErr := k.split(ctx, "audit", "ls", "--log", srv.URL+"/log/", "--key", p("server/log-key.pub"), "--json", "--collab", "mpc-cli")
	if code != cli.ExitOK {
		t.Fatalf("audit ls: exit %d\n%s", code, lsErr)
	}
	results := 0
	for line := range strings.Lines(ls) {
		var l struct {
			Entry json.RawMessage `json:"entry"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("audit ls --json: %q: %v", line, err)
		}
		e, err := auditlog.DecodeEntryJSON(l.Entry)
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind == auditlog.KindResult {
			results++
			if e.Analysis != "by_age" || e.Epsilon != "0.5" {
				t.Errorf("result entry %+v: want analysis by_age, epsilon 0.5", e)
			}
		}
	}
	if results != 2 {
		t.Fatalf("%d result entries in the log, want 2\n%s", results, ls)
	}
	code, out := run(ctx, "result", "open", p("private.json"), "--identity", p("analyst"), "--format", "json")
	if code != cli.ExitOK || !strings.Contains(out, `"mechanism":"discrete_laplace"`) {
		t.Fatalf("result open of a private run: exit %d\n%s", code, out)
	}
	if code, out := run(ctx, runArgs("by_age", p("private.json"))...); code != cli.ExitPolicy || !strings.Contains(out, `dataset "flights" has spent ε 1 of its budget 1 in 2 runs; this run needs 0.5`) {
		t.Fatalf("a run past the budget: exit %d\n%s", code, out)
	}
	code, out = run(ctx, "collab", "budget", p("mpc.collab.json"), "--ledger", p("carrier.ledger"), "--owner", "carrier")
	if code != cli.ExitOK || !regexp.MustCompile(`visits\s+carrier\s+1\s+1\s+0\s+2`).MatchString(out) || !strings.Contains(out, "0 more run(s) fit") {
		t.Fatalf("collab budget --ledger: exit %d\n%s", code, out)
	}
}

// procs runs kura commands as processes of the test binary (TestMain makes
// it kura).
type procs struct{ bin string }

func kuraProcs(t *testing.T) *procs {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "kura")
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}
	return &procs{bin: bin}
}

func (k *procs) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, k.bin, args...)
	cmd.Env = append(os.Environ(), "KURA_LOG_LEVEL=warn")
	return cmd
}

// split runs a command to its end: its exit code, stdout and stderr.
func (k *procs) split(ctx context.Context, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	cmd := k.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return -1, "", err.Error()
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// run is split with the two outputs together.
func (k *procs) run(ctx context.Context, args ...string) (int, string) {
	code, stdout, stderr := k.split(ctx, args...)
	return code, stdout + stderr
}

// background starts a serving command until the test ends and returns the
// address it announced.
func (k *procs) background(t *testing.T, args ...string) string {
	t.Helper()
	cmd := k.command(context.Background(), args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, addr, ok := strings.Cut(sc.Text(), "kura listening on "); ok {
			go io.Copy(io.Discard, out)
			return addr
		}
	}
	cmd.Wait()
	t.Fatalf("kura %s never listened\n%s", strings.Join(args, " "), stderr.String())
	return ""
}

// plaintextByAge is the analysis on the plaintext files, as kura result
// open --format csv prints it: distinct phone numbers both hold, by the
// passengers' age band, groups below min suppressed.
func plaintextByAge(t *testing.T, files *scenario.Files, min int) string {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ambiguous int
	q := fmt.Sprintf(`SELECT count(*) FROM (SELECT phone FROM (SELECT DISTINCT phone, age_band FROM '%s') GROUP BY phone HAVING count(*) > 1)`, files.Flights)
	if err := db.QueryRow(q).Scan(&ambiguous); err != nil || ambiguous != 0 {
		t.Fatalf("test data: %d phone numbers in several age bands (%v): the agent counts each in one, at random", ambiguous, err)
	}
	rows, err := db.Query(fmt.Sprintf(`SELECT f.age_band, count(DISTINCT f.phone) AS n FROM (SELECT DISTINCT phone, age_band FROM '%s') f
JOIN (SELECT DISTINCT phone FROM '%s') v ON f.phone = v.phone GROUP BY 1 HAVING n >= %d ORDER BY 1`, files.Flights, files.Visits, min))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := "age_band,visitors\n"
	for rows.Next() {
		var band string
		var n int64
		if err := rows.Scan(&band, &n); err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf("%s,%d\n", band, n)
	}
	return out
}
