package analysis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/scenario"
)

const testRows = 20000

// byHome is a declared analysis over both datasets: travellers who were
// seen by the carrier, by home prefecture and age band.
func byHome() collab.Analysis {
	return collab.Analysis{ID: "by_home", Kind: collab.KindAggregate, Aggregate: &collab.Aggregate{
		From:  "flights",
		Joins: []collab.Join{{Dataset: "visits", Left: "flights.phone", Right: "visits.phone"}},
		Where: []collab.Filter{
			{Column: "visits.stay_days", Op: ">=", Value: float64(2)},
			{Column: "flights.destination", Op: "in", Value: []any{"OKA", "CTS", "FUK"}},
		},
		GroupBy: []string{"flights.home_prefecture", "flights.age_band"},
		Measures: []collab.Measure{
			{Func: collab.AggCount, As: "n"},
			{Func: collab.AggCountDistinctIdentities, Dataset: "flights", As: "travellers"},
			{Func: collab.AggAvg, Column: "visits.stay_days", As: "avg_stay"},
			{Func: collab.AggMax, Column: "visits.arrival_date", As: "last_arrival"},
			{Func: collab.AggSum, Column: "visits.stay_days", As: "days"},
		},
	}}
}

func TestAggregateSQL(t *testing.T) {
	a := byHome()
	m := testManifest(a)
	ep, err := m.EffectivePolicy(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	p, th, err := compileAggregate(m, &a, newPolicy(ep))
	if err != nil {
		t.Fatal(err)
	}
	want := `SELECT "flights"."home_prefecture" AS "home_prefecture", "flights"."age_band" AS "age_band", count(*) AS "n", ` +
		`count(DISTINCT "flights"."member_id") AS "travellers", avg("visits"."stay_days") AS "avg_stay", ` +
		`max("visits"."arrival_date") AS "last_arrival", sum("visits"."stay_days") AS "days", ` +
		`count(DISTINCT "flights"."member_id") AS "__kura_k0", count(DISTINCT "visits"."subscriber_id") AS "__kura_k1" ` +
		`FROM "flights" JOIN "visits" ON "flights"."phone" = "visits"."phone" ` +
		`WHERE "visits"."stay_days" >= CAST($1 AS BIGINT) AND "flights"."destination" IN (CAST($2 AS VARCHAR), CAST($3 AS VARCHAR), CAST($4 AS VARCHAR)) ` +
		`GROUP BY "flights"."home_prefecture", "flights"."age_band"`
	if p.sql != want {
		t.Errorf("SQL:\n got %s\nwant %s", p.sql, want)
	}
	if got := jsonText(t, p.params); got != `[2,"OKA","CTS","FUK"]` {
		t.Errorf("params %s", got)
	}
	// The strictest minimum (the airline's 10) applies to both datasets.
	if len(th) != 2 || th[0].Dataset != "flights" || th[1].Dataset != "visits" || th[0].MinDistinctIdentities != 10 || th[1].MinDistinctIdentities != 10 {
		t.Errorf("thresholds %+v", th)
	}
	if len(p.hidden) != 2 {
		t.Errorf("hidden %+v", p.hidden)
	}
}

// suppress applies the threshold to rows whose last k columns are the
// distinct-identity counts, as the engine must.
func suppress(t *testing.T, rows [][]any, k int, min int64) (kept [][]any, suppressed int, small [][]any) {
	for _, r := range rows {
		below := false
		for _, v := range r[len(r)-k:] {
			if number(t, v) < min {
				below = true
			}
		}
		if below {
			suppressed++
			small = append(small, r[:len(r)-k])
			continue
		}
		kept = append(kept, r[:len(r)-k])
	}
	kept, _ = sortRows(kept)
	return kept, suppressed, small
}

func TestAggregateMatchesPlainSQL(t *testing.T) {
	fx := newFixture(t, testRows, byHome())
	want, suppressed, small := suppress(t, plain(t, fx, `
SELECT f.home_prefecture, f.age_band, count(*), count(DISTINCT f.member_id), avg(v.stay_days), max(v.arrival_date), sum(v.stay_days),
       count(DISTINCT f.member_id), count(DISTINCT v.subscriber_id)
FROM flights f JOIN visits v ON f.phone = v.phone
WHERE v.stay_days >= 2 AND f.destination IN ('OKA', 'CTS', 'FUK')
GROUP BY ALL`), 2, 10)
	if suppressed == 0 || len(want) == 0 {
		t.Fatalf("the fixture does not exercise suppression: %d kept, %d suppressed", len(want), suppressed)
	}
	for _, materialize := range []bool{false, true} {
		e := fx.engine(t, Config{Materialize: materialize})
		res, err := e.Run(context.Background(), fx.m, "by_home")
		if err != nil {
			t.Fatal(err)
		}
		if got, w := jsonText(t, res.Rows), jsonText(t, want); got != w {
			t.Errorf("materialize=%v: rows\n got %s\nwant %s", materialize, got, w)
		}
		if res.SuppressedRows != suppressed {
			t.Errorf("materialize=%v: %d rows suppressed, want %d", materialize, res.SuppressedRows, suppressed)
		}
		names := []string{}
		for _, c := range res.Columns {
			names = append(names, c.Name+":"+c.Type)
		}
		if got := strings.Join(names, " "); got != "home_prefecture:VARCHAR age_band:VARCHAR n:BIGINT travellers:BIGINT avg_stay:DOUBLE last_arrival:DATE days:HUGEINT" {
			t.Errorf("columns %s", got)
		}
		// No group below the threshold appears, and every row that does
		// has at least 10 travellers.
		for _, s := range small {
			for _, r := range res.Rows {
				if r[0] == s[0] && r[1] == s[1] {
					t.Errorf("group %v below the threshold was output", s[:2])
				}
			}
		}
		for _, r := range res.Rows {
			if number(t, r[3]) < 10 {
				t.Errorf("row %v has fewer than 10 travellers", r)
			}
		}
	}
}

func TestCustomSQLMatchesPlainSQL(t *testing.T) {
	cases := []struct {
		name, sql, plain string
		k                int
	}{{
		name: "join on phone and area, same day",
		sql: `SELECT f.destination_area AS area, f.age_band, count(DISTINCT f.member_id) AS travellers, avg(v.stay_days) AS avg_stay
FROM flights f JOIN visits v ON f.phone = v.phone AND f.destination_area = v.area
WHERE v.arrival_date = f.flight_date GROUP BY f.destination_area, f.age_band`,
		plain: `SELECT f.destination_area, f.age_band, count(DISTINCT f.member_id), avg(v.stay_days), count(DISTINCT f.member_id), count(DISTINCT v.subscriber_id)
FROM flights f JOIN visits v ON f.phone = v.phone AND f.destination_area = v.area
WHERE v.arrival_date = f.flight_date GROUP BY ALL`,
		k: 2,
	}, {
		name:  "one dataset, GROUP BY ALL, HAVING, CASE",
		sql:   `SELECT home_prefecture, CASE WHEN age_band IN ('20s', '30s') THEN 'young' ELSE 'other' END AS age, count(*) AS flights FROM flights GROUP BY ALL HAVING count(*) > 3`,
		plain: `SELECT home_prefecture, CASE WHEN age_band IN ('20s', '30s') THEN 'young' ELSE 'other' END, count(*), count(DISTINCT member_id) FROM flights GROUP BY ALL HAVING count(*) > 3`,
		k:     1,
	}, {
		name:  "aggregates only, USING",
		sql:   `SELECT count(*) AS n, count(DISTINCT phone) AS phones, min(stay_days) AS shortest FROM flights JOIN visits USING (phone)`,
		plain: `SELECT count(*), count(DISTINCT phone), min(stay_days), count(DISTINCT member_id), count(DISTINCT subscriber_id) FROM flights JOIN visits USING (phone)`,
		k:     2,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, testRows, sqlAnalysis("q", tc.sql))
			want, suppressed, _ := suppress(t, plain(t, fx, tc.plain), tc.k, 10)
			if len(want) == 0 {
				t.Fatal("nothing to compare")
			}
			res, err := fx.engine(t, Config{}).Run(context.Background(), fx.m, "q")
			if err != nil {
				t.Fatal(err)
			}
			if got, w := jsonText(t, res.Rows), jsonText(t, want); got != w {
				t.Errorf("rows\n got %s\nwant %s", got, w)
			}
			if res.SuppressedRows != suppressed {
				t.Errorf("%d rows suppressed, want %d", res.SuppressedRows, suppressed)
			}
			if len(res.Thresholds) != tc.k && !(tc.k == 1 && len(res.Thresholds) == 1) {
				t.Errorf("thresholds %+v", res.Thresholds)
			}
			if !strings.Contains(res.SQL, hiddenPrefix+"k0") {
				t.Errorf("executed SQL has no threshold column: %s", res.SQL)
			}
		})
	}
}

// refusedSQL is custom SQL over flights and visits that the checker
// refuses, and the error it refuses it with.
func refusedSQL() []refusedCase {
	return []refusedCase{
		// Identity and join columns, however asked for.
		{"SELECT f.phone, count(*) FROM flights f GROUP BY f.phone", ErrIdentityOutput},
		{"SELECT f.member_id AS m, count(*) AS n FROM flights f GROUP BY m", ErrIdentityOutput},
		{"SELECT upper(phone) AS p, count(*) FROM flights GROUP BY 1", ErrIdentityOutput},
		{"SELECT length(member_id) AS l, count(*) FROM flights GROUP BY l", ErrIdentityOutput},
		{"SELECT min(phone) FROM flights", ErrIdentityOutput},
		{"SELECT max(v.subscriber_id) AS x FROM visits v", ErrIdentityOutput},
		{"SELECT count(*) FROM flights WHERE phone = '+819012345678'", ErrIdentityOutput},
		{"SELECT age_band, count(*) FROM flights GROUP BY age_band HAVING min(member_id) > 'M5'", ErrIdentityOutput},
		{"SELECT age_band, count(*) FROM flights GROUP BY age_band ORDER BY max(phone)", ErrIdentityOutput},
		{"SELECT age_band, count(*) FROM flights f JOIN visits v ON f.member_id = v.subscriber_id GROUP BY 1", ErrIdentityOutput},
		{"SELECT age_band, count(*) FROM flights f JOIN visits v ON f.phone = v.phone || '' GROUP BY 1", ErrIdentityOutput},
		{"SELECT phone, count(*) FROM flights JOIN visits USING (phone) GROUP BY phone", ErrIdentityOutput},
		{"SELECT count(*) FROM flights f JOIN visits v ON f.phone = v.phone OR f.phone = v.phone", ErrIdentityOutput},
		{"SELECT * FROM flights", ErrUnsupportedSQL},
		{"SELECT count(*), flights.* FROM flights", ErrUnsupportedSQL},
		{"SELECT count(*) AS n, (SELECT max(phone) FROM flights) AS p FROM visits", ErrUnsupportedSQL},
		{"SELECT count(*) FROM visits WHERE phone IN (SELECT phone FROM flights)", ErrUnsupportedSQL},
		{"SELECT area, count(*) FROM (SELECT phone AS area FROM visits) GROUP BY area", ErrUnsupportedSQL},
		{"SELECT phone FROM flights UNION SELECT phone FROM visits", ErrUnsupportedSQL},
		{"SELECT count(*) FROM flights UNION ALL SELECT count(*) FROM visits", ErrUnsupportedSQL},
		{"WITH x AS (SELECT phone FROM flights) SELECT count(*) FROM x", ErrUnsupportedSQL},
		// Files, extensions, other databases, the catalog.
		{"SELECT count(*) FROM read_csv('/etc/passwd')", ErrUnsupportedSQL},
		{"SELECT count(*) FROM read_parquet('/proc/self/fd/3')", ErrUnsupportedSQL},
		{"SELECT count(*) FROM '/etc/passwd'", ErrUnsupportedSQL},
		{"SELECT count(*) FROM duckdb_settings()", ErrUnsupportedSQL},
		{"SELECT count(*) FROM information_schema.tables", ErrUnsupportedSQL},
		{"SELECT count(*) FROM main.flights", ErrUnsupportedSQL},
		{"SELECT count(*) FROM sqlite_master", ErrUnsupportedSQL},
		{"COPY flights TO '/tmp/flights.csv'", ErrUnsupportedSQL},
		{"COPY (SELECT count(*) FROM flights) TO '/tmp/x.csv'", ErrUnsupportedSQL},
		{"ATTACH '/tmp/x.db' AS x", ErrUnsupportedSQL},
		{"INSTALL httpfs", ErrUnsupportedSQL},
		{"LOAD httpfs", ErrUnsupportedSQL},
		{"PRAGMA database_list", ErrUnsupportedSQL},
		{"SET enable_external_access = true", ErrUnsupportedSQL},
		{"CREATE TABLE x AS SELECT count(*) FROM flights", ErrUnsupportedSQL},
		{"EXPORT DATABASE '/tmp/x'", ErrUnsupportedSQL},
		{"SELECT count(*) FROM flights WHERE current_setting('threads') > 0", ErrUnsupportedSQL},
		{"SELECT count(*) FROM glob('/etc/*')", ErrUnsupportedSQL},
		{"SELECT count(*) FROM 'https://x.example/a.csv'", ErrUnsupportedSQL},
		{"SELECT count(*) FROM flights WHERE getenv('HOME') <> ''", ErrUnsupportedSQL},
		{"SELECT count(*) FROM flights WHERE nextval('s') > 0", ErrUnsupportedSQL},
		{"DELETE FROM flights", ErrUnsupportedSQL},
		{"INSERT INTO flights SELECT * FROM flights", ErrUnsupportedSQL},
		{"UPDATE visits SET area = 'x'", ErrUnsupportedSQL},
		// Several statements, other shapes.
		{"SELECT count(*) FROM flights; SELECT count(*) FROM visits", ErrUnsupportedSQL},
		{"SELECT count(*) FROM flights; COPY flights TO '/tmp/x.csv'", ErrUnsupportedSQL},
		{"SELECT age_band FROM flights", ErrUnsupportedSQL},
		{"SELECT 1", ErrUnsupportedSQL},
		{"SELECT DISTINCT age_band, count(*) FROM flights GROUP BY age_band", ErrUnsupportedSQL},
		{"SELECT age_band, count(*) FROM flights f, visits v WHERE f.phone = v.phone GROUP BY age_band", ErrUnsupportedSQL},
		{"SELECT age_band, string_agg(destination, ',') FROM flights GROUP BY age_band", ErrUnsupportedSQL},
		{"SELECT age_band, list(phone) FROM flights GROUP BY age_band", ErrUnsupportedSQL},
		{"SELECT age_band, count(*) OVER () FROM flights", ErrUnsupportedSQL},
		{"SELECT age_band, sum(1) FILTER (WHERE age_band = '20s') FROM flights GROUP BY 1", ErrUnsupportedSQL},
		{"SELECT a, count(*) FROM flights f(a, b) GROUP BY a", ErrUnsupportedSQL},
		{"SELECT age_band, count(*) AS __kura_k0 FROM flights GROUP BY 1", ErrUnsupportedSQL},
		{"SELECT age_band, count(*) FROM flights f SEMI JOIN visits v ON f.phone = v.phone GROUP BY 1", ErrUnsupportedSQL},
		{"SELECT age_band, count(*) FROM flights GROUP BY 1 USING SAMPLE 10", ErrUnsupportedSQL},
		{"SELECT age_band, count(*) FROM flights GROUP BY 1 QUALIFY count(*) > 1", ErrUnsupportedSQL},
		{"SELECT age_band, count(*) FROM flights f JOIN flights f ON true GROUP BY 1", ErrUnsupportedSQL},
		{"SELECT age_band, count(*) FROM flights TABLESAMPLE 10% GROUP BY 1", ErrUnsupportedSQL},
		{"SELEC count(*) FROM flights", ErrUnsupportedSQL},
		{"", ErrUnsupportedSQL},
	}
}

type refusedCase struct {
	sql  string
	want error
}

func TestCustomSQLRefused(t *testing.T) {
	fx := newFixture(t, 2000)
	e := fx.engine(t, Config{})
	for i, tc := range refusedSQL() {
		id := "q" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		fx.m.Analyses = append(fx.m.Analyses, sqlAnalysis(id, tc.sql))
		res, err := e.Run(context.Background(), fx.m, id)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v (result %v), want %v", tc.sql, err, res, tc.want)
		}
	}
}

// acceptedSQL is custom SQL over flights and visits that the checker
// accepts.
func acceptedSQL() []string {
	return []string{
		"SELECT age_band, count(*) FROM flights GROUP BY age_band",
		"SELECT f.age_band, count(DISTINCT v.subscriber_id) AS n FROM flights AS f INNER JOIN visits AS v ON v.phone = f.phone GROUP BY f.age_band ORDER BY n DESC LIMIT 3",
		"SELECT f.age_band, count(v.subscriber_id) AS seen FROM flights f LEFT JOIN visits v ON f.phone = v.phone GROUP BY ALL",
		"SELECT date_trunc('month', arrival_date) AS month, round(avg(stay_days), 1) AS avg_stay FROM visits WHERE stay_days BETWEEN 1 AND 5 GROUP BY 1",
		"SELECT CAST(count(*) AS DOUBLE) / 2 AS half FROM visits WHERE area LIKE 'oki%'",
		"SELECT area, max(arrival_date) AS last FROM visits GROUP BY ROLLUP (area)",
		"SELECT AREA, COUNT(*) FROM VISITS GROUP BY AREA",
	}
}

func TestCustomSQLAccepted(t *testing.T) {
	fx := newFixture(t, 2000)
	e := fx.engine(t, Config{})
	for i, q := range acceptedSQL() {
		id := "ok" + string(rune('a'+i))
		fx.m.Analyses = append(fx.m.Analyses, sqlAnalysis(id, q))
		if _, err := e.Run(context.Background(), fx.m, id); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
}

func TestOutputPolicy(t *testing.T) {
	agg := func(id string, ms ...collab.Measure) collab.Analysis {
		return collab.Analysis{ID: id, Kind: collab.KindAggregate, Aggregate: &collab.Aggregate{From: "visits", GroupBy: []string{"visits.area"}, Measures: ms}}
	}
	fx := newFixture(t, 2000,
		agg("stay", collab.Measure{Func: collab.AggSum, Column: "visits.stay_days", As: "days"}),
		agg("avg", collab.Measure{Func: collab.AggAvg, Column: "visits.stay_days", As: "days"}),
		agg("count", collab.Measure{Func: collab.AggCount, As: "n"}),
		collab.Analysis{ID: "by_phone", Kind: collab.KindAggregate, Aggregate: &collab.Aggregate{From: "visits", GroupBy: []string{"visits.phone"}, Measures: []collab.Measure{{Func: collab.AggCount, As: "n"}}}},
		collab.Analysis{ID: "where_id", Kind: collab.KindAggregate, Aggregate: &collab.Aggregate{From: "visits",
			Where: []collab.Filter{{Column: "visits.subscriber_id", Op: "=", Value: "S000000001"}}, Measures: []collab.Measure{{Func: collab.AggCount, As: "n"}}}},
		collab.Analysis{ID: "sql_stay", Kind: collab.KindSQL, Reads: []string{"visits"}, SQL: "SELECT area, sum(stay_days) FROM visits GROUP BY area"},
		collab.Analysis{ID: "sql_date", Kind: collab.KindSQL, Reads: []string{"visits"}, SQL: "SELECT arrival_date, count(*) FROM visits GROUP BY 1"},
		collab.Analysis{ID: "sql_count", Kind: collab.KindSQL, Reads: []string{"visits"}, SQL: "SELECT area, count(*) FROM visits GROUP BY area"},
	)
	// The carrier allows only area and stay_days, and only count and avg.
	fx.m.Datasets[1].OutputPolicy = collab.OutputPolicy{MinDistinctIdentities: 5,
		AllowedAggregates: []collab.AggFunc{collab.AggCount, collab.AggAvg}, AllowedColumns: []string{"area", "stay_days"}}
	e := fx.engine(t, Config{})
	for id, want := range map[string]error{
		"stay": ErrPolicyViolation, "avg": nil, "count": nil, "by_phone": ErrIdentityOutput, "where_id": ErrIdentityOutput,
		"sql_stay": ErrPolicyViolation, "sql_date": ErrPolicyViolation, "sql_count": nil,
	} {
		res, err := e.Run(context.Background(), fx.m, id)
		if !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("%s: got %v, want %v", id, err, want)
		}
		// Only the carrier's minimum (5) applies: flights is not read.
		if err == nil && res.Thresholds[0].MinDistinctIdentities != 5 {
			t.Errorf("%s: thresholds %+v", id, res.Thresholds)
		}
	}
}

func TestLockDown(t *testing.T) {
	fx := newFixture(t, 2000, sqlAnalysis("q", "SELECT area, count(*) FROM visits GROUP BY area"))
	outside := filepath.Join(t.TempDir(), "x")
	for _, materialize := range []bool{false, true} {
		ctx := context.Background()
		e := fx.engine(t, Config{Materialize: materialize})
		if _, err := e.Run(ctx, fx.m, "q"); err != nil {
			t.Fatal(err)
		}
		// Even SQL that bypassed the checker is refused by DuckDB.
		for _, q := range []string{
			"COPY visits TO '" + outside + ".csv'",
			"COPY (SELECT 1) TO '" + outside + ".parquet' (FORMAT parquet)",
			"ATTACH '" + outside + ".db' AS x",
			"INSTALL httpfs",
			"LOAD httpfs",
			"SELECT * FROM read_csv('/etc/passwd')",
			"SELECT * FROM read_text('/etc/hostname')",
			"SELECT * FROM read_parquet('" + fx.files.Flights + "')",
			"SELECT * FROM '" + fx.files.Flights + "'",
			"EXPORT DATABASE '" + outside + "'",
			"SET enable_external_access = true",
			"SET temp_directory = '" + outside + "'",
			"SET allowed_paths = ['/']",
			"SET lock_configuration = false",
			"RESET lock_configuration",
		} {
			if _, err := e.conn.ExecContext(ctx, q); err == nil {
				t.Errorf("materialize=%v: %s was not refused", materialize, q)
			}
		}
		if err := e.LoadParquet(ctx, "more", scenario.VisitsSchema(), memCopy(t, fx.files.Visits)); !errors.Is(err, ErrLocked) {
			t.Errorf("load after run: %v", err)
		}
	}
	if m, _ := filepath.Glob(outside + "*"); len(m) > 0 {
		t.Errorf("files written: %v", m)
	}
}

func TestNoSpill(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // DuckDB's default spill directory is ./.tmp
	t.Setenv("TMPDIR", dir)
	ctx := context.Background()
	e, err := New(ctx, Config{MemoryLimit: "64MB", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.lockDown(ctx); err != nil {
		t.Fatal(err)
	}
	// A sort of ~1 GB cannot fit in 64 MB: it must fail, not spill.
	_, err = e.conn.ExecContext(ctx, "SELECT count(*) FROM (SELECT r, repeat(CAST(hash(r) AS VARCHAR), 3) AS s FROM range(10000000) t(r) ORDER BY s)")
	if err == nil {
		t.Fatal("a query larger than the memory limit succeeded: did it spill?")
	}
	if !errors.Is(queryError(err), ErrQueryFailed) || !strings.Contains(strings.ToLower(err.Error()), "memory") {
		t.Errorf("error %v, want out of memory", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		t.Errorf("files written to the working directory: %v", ents)
	}
	var temp string
	if err := e.conn.QueryRowContext(ctx, "SELECT current_setting('temp_directory')").Scan(&temp); err != nil || temp != "" {
		t.Errorf("temp_directory = %q, %v", temp, err)
	}
}

func TestLoadSchemaMismatch(t *testing.T) {
	fx := newFixture(t, 200)
	ctx := context.Background()
	good := scenario.VisitsSchema()
	missing := scenario.VisitsSchema()
	missing.Columns = append(missing.Columns, table.Column{Name: "plan", Type: table.String})
	extra := scenario.VisitsSchema()
	extra.Columns = extra.Columns[:len(extra.Columns)-1]
	wrongType := scenario.VisitsSchema()
	wrongType.Columns[len(wrongType.Columns)-1].Type = table.Double
	for _, tc := range []struct {
		name   string
		schema *table.Schema
		want   error
	}{
		{"missing", missing, table.ErrMissingColumn},
		{"extra", extra, table.ErrExtraColumn},
		{"type", wrongType, table.ErrTypeMismatch},
		{"good", good, nil},
	} {
		e, err := New(ctx, Config{})
		if err != nil {
			t.Fatal(err)
		}
		err = e.LoadParquet(ctx, "visits", tc.schema, memCopy(t, fx.files.Visits))
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
		if tc.want != nil && !errors.Is(err, table.ErrSchemaMismatch) {
			t.Errorf("%s: %v does not wrap table.ErrSchemaMismatch", tc.name, err)
		}
		e.Close()
	}
	// Not Parquet at all.
	e, _ := New(ctx, Config{})
	defer e.Close()
	junk, _ := MemFile("junk")
	junk.WriteString("not parquet")
	if err := e.LoadParquet(ctx, "visits", good, junk); !errors.Is(err, table.ErrSchemaMismatch) {
		t.Errorf("junk: %v", err)
	}
}

func TestRunErrors(t *testing.T) {
	fx := newFixture(t, 200, byHome())
	ctx := context.Background()
	e, err := New(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.LoadParquet(ctx, "flights", scenario.FlightsSchema(), memCopy(t, fx.files.Flights)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(ctx, fx.m, "by_home"); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("visits not loaded: %v", err)
	}
	if _, err := e.Run(ctx, fx.m, "nope"); !errors.Is(err, ErrInvalidAnalysis) {
		t.Errorf("unknown analysis: %v", err)
	}
	e.Close()
	if _, err := e.Run(ctx, fx.m, "by_home"); !errors.Is(err, ErrClosed) {
		t.Errorf("after close: %v", err)
	}
	// The manifest's schema must be the one loaded.
	e2 := fx.engine(t, Config{})
	fx.m.Datasets[0].Descriptor.Schema = schemaOf(table.Column{Name: "member_id", Type: table.String, Identity: true})
	if _, err := e2.Run(ctx, fx.m, "by_home"); !errors.Is(err, ErrInvalidAnalysis) {
		t.Errorf("schema differs: %v", err)
	}
}

func TestCloseClosesMemFiles(t *testing.T) {
	fx := newFixture(t, 200)
	ctx := context.Background()
	e, _ := New(ctx, Config{})
	f := memCopy(t, fx.files.Visits)
	if err := e.LoadParquet(ctx, "visits", scenario.VisitsSchema(), f); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("memory file still open after Close: %v", err)
	}
}

func TestResultEncoding(t *testing.T) {
	fx := newFixture(t, testRows, byHome())
	a, err := fx.engine(t, Config{}).Run(context.Background(), fx.m, "by_home")
	if err != nil {
		t.Fatal(err)
	}
	b, err := fx.engine(t, Config{Materialize: true, Threads: 1}).Run(context.Background(), fx.m, "by_home")
	if err != nil {
		t.Fatal(err)
	}
	ea, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	eb, _ := b.Encode()
	if string(ea) != string(eb) {
		t.Errorf("two runs encode differently:\n%s\n%s", ea, eb)
	}
	sum := sha256.Sum256(ea)
	if a.Digest() != hex.EncodeToString(sum[:]) {
		t.Error("Digest is not the SHA-256 of Encode")
	}
	// Rows are in canonical order whatever order they are given in.
	c := *a
	c.Rows = slices.Clone(a.Rows)
	slices.Reverse(c.Rows)
	if ec, _ := c.Encode(); string(ec) != string(ea) {
		t.Error("row order changes the encoding")
	}
	for _, want := range []string{`{"analysis":"by_home","columns":[{"name":"home_prefecture","type":"VARCHAR"}`, `"suppressed_rows":`, `"thresholds":[{"dataset":"flights"`, `"sql":"SELECT `, `"params":[2,"OKA","CTS","FUK"]`} {
		if !strings.Contains(string(ea), want) {
			t.Errorf("encoding lacks %s: %s", want, ea)
		}
	}
	// A different output has a different digest.
	c.SuppressedRows++
	if c.Digest() == a.Digest() {
		t.Error("digest ignores suppressed_rows")
	}
}

func TestJSONValue(t *testing.T) {
	for _, tc := range []struct {
		in   any
		typ  string
		want string
	}{
		{int64(-3), "BIGINT", "-3"},
		{2.5, "DOUBLE", "2.5"},
		{nil, "VARCHAR", "null"},
		{"x", "VARCHAR", `"x"`},
	} {
		v, err := jsonValue(tc.in, tc.typ)
		if err != nil {
			t.Fatal(err)
		}
		if got := jsonText(t, v); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.in, got, tc.want)
		}
	}
	if _, err := jsonValue(struct{}{}, "STRUCT"); !errors.Is(err, ErrUnsupportedSQL) {
		t.Errorf("struct: %v", err)
	}
}

// TestPrepare: a run after Prepare outputs exactly what a run without it
// does, refuses what it refuses, and Prepare of a declared analysis, an
// unknown one or no manifest is a no-op.
func TestPrepare(t *testing.T) {
	ctx := context.Background()
	q := `SELECT f.destination_area AS area, f.age_band, count(DISTINCT v.subscriber_id) AS visitors
FROM flights f JOIN visits v ON f.phone = v.phone AND f.destination_area = v.area AND v.arrival_date = f.flight_date
GROUP BY f.destination_area, f.age_band`
	fx := newFixture(t, 5000, sqlAnalysis("q", q), sqlAnalysis("bad", "SELECT f.phone, count(*) FROM flights f GROUP BY f.phone"), byHome())
	run := func(prepare bool, id string) (string, error) {
		t.Helper()
		e := fx.engine(t, Config{})
		if prepare {
			for _, p := range []string{id, "nope"} {
				if err := e.Prepare(ctx, fx.m, p); err != nil {
					t.Fatalf("prepare %s: %v", p, err)
				}
			}
			if err := e.Prepare(ctx, nil, id); err != nil {
				t.Fatal(err)
			}
		}
		res, err := e.Run(ctx, fx.m, id)
		if err != nil {
			return "", err
		}
		b, err := res.Encode()
		return string(b), err
	}
	for _, id := range []string{"q", "by_home"} {
		want, err := run(false, id)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := run(true, id); err != nil || got != want {
			t.Errorf("%s: prepared run differs: %v\n got %s\nwant %s", id, err, got, want)
		}
	}
	if _, err := run(true, "bad"); !errors.Is(err, ErrIdentityOutput) {
		t.Errorf("prepared refused analysis: %v, want ErrIdentityOutput", err)
	}
	e, err := New(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	if err := e.Prepare(ctx, fx.m, "q"); !errors.Is(err, ErrClosed) {
		t.Errorf("prepare after close: %v, want ErrClosed", err)
	}
}
