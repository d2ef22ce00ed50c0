package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/cmd/kura/internal/demo"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/scenario"
)

// TestMPCAgents: the airline and the carrier compute an analysis on the
// cryptographic backend with kura mpc agent and kura mpc run, and the
// analyst opens the result and verifies the receipt with the usual
// commands; a party that approved nothing cannot open it, and an analysis
// approved only for the TEE backend is refused with the policy exit code.
func TestMPCAgents(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
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

	peer := runInBackground(t, "mpc", "agent", "--identity", p("carrier"), "--dataset", "visits="+p("visits.kura"),
		"--key-file", "visits="+p("visits.kura.key"), "--ledger", p("carrier.ledger"), "--addr", "127.0.0.1:0")
	runArgs := func(analysis, out string) []string {
		return []string{"mpc", "run", p("mpc.collab.json"), "--analysis", analysis, "--peer", peer, "--identity", p("airline"),
			"--dataset", "flights=" + p("flights.kura"), "--key-file", "flights=" + p("flights.kura.key"), "--ledger", p("airline.ledger"), "-o", out, "--json"}
	}
	var stdout, stderr strings.Builder
	if code := Run(ctx, runArgs("by_age", p("result.json")), Env{Stdout: &stdout, Stderr: &stderr}); code != ExitOK {
		t.Fatalf("mpc run: exit %d\n%s", code, stderr.String())
	}
	var report workerRunReport
	if err := json.Unmarshal([]byte(stdout.String()), &report); err != nil || report.Rows == 0 {
		t.Fatalf("mpc run --json: %v\n%s", err, stdout.String())
	}
	code, out := run(ctx, "result", "open", p("result.json"), "--identity", p("analyst"), "--format", "csv")
	if code != ExitOK || !strings.Contains(out, "age_band,visitors") || !strings.Contains(out, "both owners' agents signed this run") {
		t.Fatalf("result open: exit %d\n%s", code, out)
	}
	if code, out := run(ctx, "receipt", "verify", p("result.receipt.json"), "--result", p("result.json"), "--identity", p("analyst")); code != ExitOK {
		t.Fatalf("receipt verify: exit %d\n%s", code, out)
	}
	// A party that approved nothing cannot vouch for the owners' cards.
	mustRun(t, "party", "init", "mallory", "-o", p("mallory"))
	if code, out := run(ctx, "result", "open", p("result.json"), "--identity", p("mallory")); code != ExitBadEvidence {
		t.Fatalf("result open by a non-party: exit %d\n%s", code, out)
	}
	// The TEE-only analysis is refused by the initiator's own agent.
	if code, out := run(ctx, runArgs("by_age_tee", p("tee.json"))...); code != ExitPolicy || !strings.Contains(out, "approved for the tee backend, not mpc") {
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
		if code, out := run(ctx, append(runArgs("by_age", p("private.json")), "--log", srv.URL)...); code != ExitOK {
			t.Fatalf("private run %d: exit %d\n%s", i+1, code, out)
		}
	}
	var lsOut, lsErr strings.Builder
	if code := Run(ctx, []string{"audit", "ls", "--log", srv.URL + "/log/", "--key", p("server/log-key.pub"), "--json", "--collab", "mpc-cli"}, Env{Stdout: &lsOut, Stderr: &lsErr}); code != ExitOK {
		t.Fatalf("audit ls: exit %d\n%s", code, lsErr.String())
	}
	results := 0
	for _, e := range parseLs(t, lsOut.String()) {
		if e.Kind == auditlog.KindResult {
			results++
			if e.Analysis != "by_age" || e.Epsilon != "0.5" {
				t.Errorf("result entry %+v: want analysis by_age, epsilon 0.5", e)
			}
		}
	}
	if results != 2 {
		t.Fatalf("%d result entries in the log, want 2\n%s", results, lsOut.String())
	}
	code, out = run(ctx, "result", "open", p("private.json"), "--identity", p("analyst"), "--format", "json")
	if code != ExitOK || !strings.Contains(out, `"mechanism":"discrete_laplace"`) {
		t.Fatalf("result open of a private run: exit %d\n%s", code, out)
	}
	if code, out := run(ctx, runArgs("by_age", p("private.json"))...); code != ExitPolicy || !strings.Contains(out, `dataset "flights" has spent ε 1 of its budget 1 in 2 runs; this run needs 0.5`) {
		t.Fatalf("a run past the budget: exit %d\n%s", code, out)
	}
	code, out = run(ctx, "collab", "budget", p("mpc.collab.json"), "--ledger", p("carrier.ledger"), "--owner", "carrier")
	if code != ExitOK || !regexp.MustCompile(`visits\s+carrier\s+1\s+1\s+0\s+2`).MatchString(out) || !strings.Contains(out, "0 more run(s) fit") {
		t.Fatalf("collab budget --ledger: exit %d\n%s", code, out)
	}
}
