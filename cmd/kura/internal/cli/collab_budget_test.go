package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/cmd/kura/internal/demo"
	"github.com/kura-cc/kura/collab"
)

// TestCollabBudget: both owners give their datasets a privacy budget of
// 2.5 and approve an analysis at ε 1; two runs pass, the third is refused
// by the key broker with the numbers, and kura collab budget shows 2 of
// 2.5 spent by 2 runs, 0.5 left, no more run of the analysis, per dataset
// and per broker.
func TestCollabBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two key brokers and runs DuckDB")
	}
	ctx := context.Background()
	c := newStory(t, 20)
	data, err := json.Marshal(c.Collab.Current())
	if err != nil {
		t.Fatal(err)
	}
	m, err := collab.ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	m.Previous = c.Collab.Current().Hash()
	a := demo.Analyses()[0]
	a.Privacy = &collab.Privacy{Epsilon: "1"}
	a.Aggregate.Measures[1].Clip = &collab.Clip{Min: 0, Max: 30}
	m.Analyses = []collab.Analysis{a}
	for i := range m.Datasets {
		m.Datasets[i].OutputPolicy.PrivacyBudget = "2.5"
	}
	if err := c.Collab.AddVersion(m); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{demo.Airline, demo.Carrier} {
		if _, err := c.Collab.Approve(c.Parties[name], time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		out, err := c.Run(ctx, a.ID)
		if err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		if out.Result == nil {
			t.Fatalf("run %d: no result", i+1)
		}
	}
	_, err = c.Run(ctx, a.ID)
	const refused = `privacy budget of dataset "flights" exhausted: 2 of 2.5 spent by 2 run(s), this run needs 1`
	if err == nil || !strings.Contains(err.Error(), refused) {
		t.Fatalf("a third run: %v; want %q", err, refused)
	}

	file := filepath.Join(c.Dir, "collab.json")
	b, err := c.Collab.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		var out, errOut strings.Builder
		code := Run(ctx, args, Env{Stdout: &out, Stderr: &errOut})
		return code, out.String() + errOut.String()
	}
	code, out := run("collab", "budget", file)
	airline, carrier := c.Servers[demo.Airline].URL, c.Servers[demo.Carrier].URL
	for _, want := range []string{
		"flights  airline  2.5     2      0.5        2     " + airline,
		"visits   carrier  2.5     2      0.5        2     " + carrier,
		"analysis " + a.ID + " spends ε 1 per run: 0 more run(s) fit",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("collab budget: exit %d, output lacks %q:\n%s", code, want, out)
		}
	}
	code, out = run("collab", "budget", file, "--broker", airline, "--json")
	var got struct {
		Collaboration string       `json:"collaboration"`
		Datasets      []budgetLine `json:"datasets"`
	}
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || len(got.Datasets) != 1 ||
		got.Datasets[0] != (budgetLine{Dataset: "flights", Owner: demo.Airline, Broker: airline, Resource: "airline/dataset-key/flights", Budget: "2.5", Spent: "2", Remaining: "0.5", Runs: 2}) {
		t.Errorf("collab budget --broker --json: exit %d, %v\n%s", code, err, out)
	}
	if code, out := run("collab", "budget", file, "--broker", "http://127.0.0.1:1"); code != ExitUsage || !strings.Contains(out, "no dataset") {
		t.Errorf("a broker holding no key: exit %d\n%s", code, out)
	}
}
