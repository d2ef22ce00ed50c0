package analysis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/internal/fault"
)

// TestCheckRefusesWhatRunRefuses runs every refused and accepted statement
// of the worker's tests through the static check, without data.
func TestCheckRefusesWhatRunRefuses(t *testing.T) {
	ctx := context.Background()
	for _, tc := range refusedSQL() {
		err := Check(ctx, testManifest(sqlAnalysis("q", tc.sql)))
		if !errors.Is(err, ErrUnsafeAnalysis) || !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v and %v", tc.sql, err, ErrUnsafeAnalysis, tc.want)
			continue
		}
		// Whatever the worker's kind, a manifest refused statically is
		// invalid input (exit 8, 400).
		if k := fault.KindOf(err); k != fault.Invalid {
			t.Errorf("%s: kind %v, want invalid", tc.sql, k)
		}
		if !strings.Contains(err.Error(), `analysis "q"`) {
			t.Errorf("%s: %v does not name the analysis", tc.sql, err)
		}
	}
	for _, q := range acceptedSQL() {
		if err := Check(ctx, testManifest(sqlAnalysis("ok", q))); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	if err := Check(ctx, testManifest(byHome())); err != nil {
		t.Errorf("declared analysis: %v", err)
	}
}

// TestCheckNamesTheExpression checks that a refusal quotes what to change.
func TestCheckNamesTheExpression(t *testing.T) {
	for _, tc := range []struct{ sql, want string }{
		{"SELECT count(*) FROM read_csv('/etc/passwd')", `"read_csv('/etc/passwd')": table functions`},
		{"SELECT count(*) FROM glob('/etc/*')", `"glob('/etc/*')": table functions`},
		{"SELECT count(*) FROM read_parquet(['/a', '/b'])", `"read_parquet(['/a', '/b'])"`},
		{"SELECT count(*) FROM 'https://x.example/a.csv'", `table "https://x.example/a.csv" is not a dataset the analysis reads`},
		{"SELECT * FROM flights", `"*": * and COLUMNS(...) are not accepted`},
		{"SELECT count(*), f.* FROM flights f", `"f.*": *`},
		{"SELECT COLUMNS('a.*') FROM flights", `"COLUMNS('a.*')": *`},
		{"SELECT count(*) FROM flights WHERE getenv('HOME') <> ''", `"getenv('HOME')": function getenv is not accepted`},
		{"SELECT count(*) FROM flights WHERE nextval('s') > 0", `"nextval('s')": function nextval`},
		{"SELECT age_band, string_agg(destination, ',') FROM flights GROUP BY age_band", `"string_agg(destination, ',')": aggregate string_agg`},
		{"SELECT count(*) FROM visits WHERE phone IN (SELECT phone FROM flights)", `"IN (SELECT phone FROM flights)": subqueries`},
		{"COPY flights TO '/tmp/x.csv'", `"COPY flights TO '/tmp/x.csv'": only a SELECT statement is accepted`},
		{"ATTACH '/tmp/x.db' AS x", `"ATTACH '/tmp/x.db' AS x": only a SELECT`},
		{"SELECT count(*) FROM flights; DELETE FROM flights", `"DELETE FROM flights": only a SELECT`},
		{"SELECT count(*) AS \"a;b\" FROM flights; INSERT INTO flights SELECT 1", `"INSERT INTO flights SELECT 1": only a SELECT`},
		{"SELECT f.phone, count(*) FROM flights f GROUP BY f.phone", `select list: flights.phone is a join column`},
		{"SELECT count(*) FROM flights WHERE member_id = 'M1'", `WHERE: flights.member_id is an identity column`},
		{"SELECT count(*) FROM flights WHERE EXISTS (SELECT 1 FROM visits)", `"EXISTS (SELECT 1 FROM visits)": subqueries`},
		{"SELECT age_band, count(*) OVER () FROM flights", `window functions`},
		{"SELECT count(*) FROM flights WHERE getenv('" + strings.Repeat("x", 100) + "') <> ''", `"getenv('` + strings.Repeat("x", 52) + `...": function getenv`},
	} {
		err := Check(context.Background(), testManifest(sqlAnalysis("q", tc.sql)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.sql, err, tc.want)
		}
	}
}

// TestCheckEveryAnalysis checks that every refused analysis is reported,
// and that declared analyses are checked too.
func TestCheckEveryAnalysis(t *testing.T) {
	m := testManifest(
		sqlAnalysis("files", "SELECT count(*) FROM read_csv('/etc/passwd')"),
		sqlAnalysis("fine", "SELECT age_band, count(*) FROM flights GROUP BY age_band"),
		collab.Analysis{ID: "by_phone", Kind: collab.KindAggregate, Aggregate: &collab.Aggregate{From: "visits",
			GroupBy: []string{"visits.phone"}, Measures: []collab.Measure{{Func: collab.AggCount, As: "n"}}}},
	)
	err := Check(context.Background(), m)
	if !errors.Is(err, ErrUnsupportedSQL) || !errors.Is(err, ErrIdentityOutput) || !errors.Is(err, ErrUnsafeAnalysis) {
		t.Fatalf("got %v", err)
	}
	for _, id := range []string{`"files"`, `"by_phone"`} {
		if !strings.Contains(err.Error(), id) {
			t.Errorf("%v does not name %s", err, id)
		}
	}
	if strings.Contains(err.Error(), `"fine"`) {
		t.Errorf("%v names an accepted analysis", err)
	}
	// The owner's output policy is checked as the worker checks it.
	m = testManifest(sqlAnalysis("stay", "SELECT area, sum(stay_days) FROM visits GROUP BY area"))
	m.Datasets[1].OutputPolicy.AllowedAggregates = []collab.AggFunc{collab.AggCount}
	if err := Check(context.Background(), m); !errors.Is(err, ErrPolicyViolation) || !errors.Is(err, ErrUnsafeAnalysis) {
		t.Errorf("policy: %v", err)
	}
	if err := Check(context.Background(), nil); !errors.Is(err, ErrInvalidAnalysis) || !errors.Is(err, ErrUnsafeAnalysis) {
		t.Errorf("nil manifest: %v", err)
	}
	if err := Check(context.Background(), testManifest(sqlAnalysis("none", "SELECT 1"))); !errors.Is(err, ErrUnsafeAnalysis) {
		t.Errorf("reads nothing: %v", err)
	}
}

func TestCheckCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Check(ctx, testManifest(sqlAnalysis("q", "SELECT age_band, count(*) FROM flights GROUP BY age_band")))
	if err == nil || errors.Is(err, ErrUnsafeAnalysis) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestPolicyWarnings(t *testing.T) {
	m := testManifest()
	if w := PolicyWarnings(m); len(w) != 0 {
		t.Errorf("strong policies: %q", w)
	}
	m.Datasets[1].OutputPolicy.MinDistinctIdentities = 2
	m.Datasets = append(m.Datasets, collab.Dataset{ID: "towers", Owner: "carrier", OutputPolicy: collab.OutputPolicy{MinDistinctIdentities: 20},
		Descriptor: collab.Descriptor{Schema: schemaOf(table.Column{Name: "region", Type: table.String})}})
	w := PolicyWarnings(m)
	want := []string{
		`dataset "visits" (owner carrier): min_distinct_identities 2 is below 5`,
		`dataset "towers" (owner carrier): no identity column`,
	}
	if len(w) != len(want) {
		t.Fatalf("got %q", w)
	}
	for i := range want {
		if !strings.HasPrefix(w[i], want[i]) {
			t.Errorf("warning %d: %q, want %s...", i, w[i], want[i])
		}
	}
	if PolicyWarnings(nil) != nil {
		t.Error("nil manifest")
	}
}

// BenchmarkCheck measures the static check of one custom SQL analysis and
// one declared analysis: opening and locking down an empty DuckDB, listing
// its aggregates, parsing, walking, rewriting and parsing again.
func BenchmarkCheck(b *testing.B) {
	for _, tc := range []struct {
		name string
		m    *collab.Manifest
	}{
		{"sql", testManifest(sqlAnalysis("q", "SELECT f.age_band, count(DISTINCT v.subscriber_id) AS n FROM flights f JOIN visits v ON f.phone = v.phone GROUP BY 1"))},
		{"declared", testManifest(byHome())},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if err := Check(context.Background(), tc.m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func ExampleCheck() {
	m := &collab.Manifest{
		Datasets: []collab.Dataset{{ID: "visits", Owner: "carrier", OutputPolicy: collab.OutputPolicy{MinDistinctIdentities: 10},
			Descriptor: collab.Descriptor{Schema: &table.Schema{Columns: []table.Column{
				{Name: "phone", Type: table.String, Identity: true, Join: true}, {Name: "area", Type: table.String}}}}}},
		Analyses: []collab.Analysis{{ID: "leak", Kind: collab.KindSQL, Reads: []string{"visits"},
			SQL: "SELECT area, count(*) FROM read_csv('/etc/passwd') GROUP BY area"}},
	}
	err := Check(context.Background(), m)
	fmt.Println(errors.Is(err, ErrUnsafeAnalysis), errors.Is(err, ErrUnsupportedSQL))
	fmt.Println(err)
	// Output:
	// true true
	// analysis: refused by the static check: analysis "leak": analysis: unsupported SQL: "read_csv('/etc/passwd')": table functions (read_csv, read_parquet, glob, ...) are not accepted
}
