// Package scenario generates the synthetic data kura's demo, tests and
// benchmarks use: an airline's passengers and their flights, and a mobile
// carrier's subscribers and their visits to areas, overlapping on part of
// the population (the same phone numbers), with realistic skew so that some
// groups are small enough for an output policy to suppress.
//
// The data is made up: phone numbers are in Japan's 090 range but derived
// from a hash, names are absent, and the seed fixes every value, so the same
// (rows, seed) always gives byte-identical files.
package scenario

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" driver

	"github.com/kura-cc/kura/dataset/table"
)

// Config says how much data to generate.
type Config struct {
	// Rows is the number of rows of each dataset (flights and visits).
	Rows int
	// Seed fixes every generated value.
	Seed int64
	// Overlap is the fraction of the airline's passengers who are also the
	// carrier's subscribers; zero means 0.4.
	Overlap float64
	// Threads and MemoryLimit tune DuckDB; zero values mean all cores and
	// 2GB.
	Threads     int
	MemoryLimit string
}

// Files are the generated Parquet files.
type Files struct {
	Flights string // the airline's dataset
	Visits  string // the carrier's dataset
}

// Destinations are the areas the airline flies to and the carrier sees
// visits in, with their airports.
var Destinations = []struct{ Area, Airport string }{
	{"okinawa", "OKA"}, {"hokkaido", "CTS"}, {"fukuoka", "FUK"}, {"kagoshima", "KOJ"},
	{"ishigaki", "ISG"}, {"hiroshima", "HIJ"}, {"sendai", "SDJ"}, {"kanazawa", "KMQ"},
}

// Prefectures are the passengers' home prefectures, most populous first:
// the generator draws them with a steep skew, so the last few are rare.
var Prefectures = []string{
	"tokyo", "kanagawa", "osaka", "aichi", "saitama", "chiba", "hyogo", "hokkaido", "fukuoka", "shizuoka",
	"ibaraki", "hiroshima", "kyoto", "miyagi", "niigata", "nagano", "gifu", "tochigi", "gunma", "okayama",
	"fukushima", "mie", "kumamoto", "kagoshima", "okinawa", "shiga", "yamaguchi", "ehime", "nara", "nagasaki",
	"aomori", "iwate", "oita", "ishikawa", "yamagata", "miyazaki", "toyama", "akita", "kagawa", "wakayama",
	"saga", "yamanashi", "fukui", "tokushima", "kochi", "shimane", "tottori",
}

// AgeBands are the passengers' age bands.
var AgeBands = []string{"20s", "30s", "40s", "50s", "60s", "70+"}

// FlightsSchema is the airline dataset's schema: member_id identifies a
// passenger, phone is the join column shared with the carrier.
func FlightsSchema() *table.Schema {
	return &table.Schema{DefaultCountryCode: "81", Columns: []table.Column{
		{Name: "member_id", Type: table.String, Identity: true},
		{Name: "phone", Type: table.String, Join: true, Normalize: []table.Normalization{table.E164}},
		{Name: "age_band", Type: table.String},
		{Name: "home_prefecture", Type: table.String},
		{Name: "destination", Type: table.String},
		{Name: "destination_area", Type: table.String},
		{Name: "flight_date", Type: table.Date},
	}}
}

// VisitsSchema is the carrier dataset's schema: subscriber_id identifies a
// subscriber, phone is the join column shared with the airline.
func VisitsSchema() *table.Schema {
	return &table.Schema{DefaultCountryCode: "81", Columns: []table.Column{
		{Name: "subscriber_id", Type: table.String, Identity: true},
		{Name: "phone", Type: table.String, Join: true, Normalize: []table.Normalization{table.E164}},
		{Name: "area", Type: table.String},
		{Name: "arrival_date", Type: table.Date},
		{Name: "stay_days", Type: table.Int64},
	}}
}

// Generate writes flights.parquet and visits.parquet into dir.
//
// The population is Rows/2 passengers, each with about two flights; a
// fraction Overlap of them are carrier subscribers, who make most of the
// carrier's visits (mostly to the area they flew to, arriving on the day of
// a flight), and the carrier's other subscribers make the rest.
func Generate(ctx context.Context, dir string, cfg Config) (*Files, error) {
	if cfg.Rows < 1 {
		return nil, fmt.Errorf("scenario: rows must be at least 1, got %d", cfg.Rows)
	}
	if cfg.Overlap == 0 {
		cfg.Overlap = 0.4
	}
	if cfg.Overlap < 0 || cfg.Overlap > 1 {
		return nil, fmt.Errorf("scenario: overlap must be in (0, 1], got %g", cfg.Overlap)
	}
	if cfg.MemoryLimit == "" {
		cfg.MemoryLimit = "2GB"
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	files := &Files{Flights: filepath.Join(dir, "flights.parquet"), Visits: filepath.Join(dir, "visits.parquet")}
	people := max(cfg.Rows/2, 1)
	overlapPeople := max(int(float64(people)*cfg.Overlap), 1)
	// h(i, k) is a deterministic pseudo-random number in [0, 1) for row i
	// and purpose k.
	h := func(i string, k int) string {
		return fmt.Sprintf("(hash(%s, %d, %d) %% 1000000007) / 1000000007.0", i, cfg.Seed, k)
	}
	stmts := []string{
		"SET memory_limit = '" + cfg.MemoryLimit + "'",
		"SET preserve_insertion_order = true",
		"CREATE TEMP TABLE dest AS SELECT * FROM (VALUES " + destValues() + ") t(i, area, airport)",
		"CREATE TEMP TABLE pref AS SELECT * FROM (VALUES " + listValues(Prefectures) + ") t(i, name)",
		"CREATE TEMP TABLE age AS SELECT * FROM (VALUES " + listValues(AgeBands) + ") t(i, name)",
		// Flights: row r belongs to person r % people; a person's home
		// prefecture and age band are fixed by the person, steeply skewed.
		fmt.Sprintf(`CREATE TEMP TABLE flights AS
SELECT printf('M%%09d', p) AS member_id,
       printf('+8190%%08d', (hash(p, %[1]d, 7) %% 100000000)) AS phone,
       age.name AS age_band, pref.name AS home_prefecture,
       dest.airport AS destination, dest.area AS destination_area,
       DATE '2026-01-01' + CAST(floor(%[2]s * 365) AS INTEGER) AS flight_date
FROM (SELECT r, r %% %[3]d AS p FROM range(%[4]d) t(r)) rows
JOIN pref ON pref.i = CAST(floor((1 - pow(1 - %[5]s, 1 / 1.6)) * %[6]d) AS INTEGER)
JOIN age ON age.i = CAST(floor(pow(%[7]s, 1.4) * %[8]d) AS INTEGER)
JOIN dest ON dest.i = CAST(floor(pow(%[9]s, 1.8) * %[10]d) AS INTEGER)
ORDER BY r`, cfg.Seed, h("r", 1), people, cfg.Rows, h("p", 2), len(Prefectures), h("p", 3), len(AgeBands), h("r", 4), len(Destinations)),
		// Visits: most are by overlapping passengers to the area of one of
		// their flights, arriving that day; the rest by other subscribers.
		fmt.Sprintf(`CREATE TEMP TABLE visits AS
WITH v AS (SELECT r, %[1]s < 0.7 AS matched FROM range(%[2]d) t(r)),
     f AS (SELECT row_number() OVER () - 1 AS k, * FROM flights WHERE CAST(substr(member_id, 2) AS BIGINT) < %[3]d)
SELECT CASE WHEN matched AND (SELECT count(*) FROM f) > 0 THEN printf('S%%09d', CAST(substr(f.member_id, 2) AS BIGINT)) ELSE printf('S%%09d', 1000000000 + r) END AS subscriber_id,
       CASE WHEN matched AND f.phone IS NOT NULL THEN f.phone ELSE printf('+8180%%08d', (hash(r, %[4]d, 8) %% 100000000)) END AS phone,
       CASE WHEN matched AND f.phone IS NOT NULL THEN f.destination_area ELSE dest.area END AS area,
       CASE WHEN matched AND f.phone IS NOT NULL THEN f.flight_date ELSE DATE '2026-01-01' + CAST(floor(%[5]s * 365) AS INTEGER) END AS arrival_date,
       1 + CAST(floor(pow(%[6]s, 2) * 10) AS BIGINT) AS stay_days
FROM v
LEFT JOIN f ON f.k = (hash(v.r, %[4]d, 9) %% greatest((SELECT count(*) FROM f), 1))
JOIN dest ON dest.i = CAST(floor(%[7]s * %[8]d) AS INTEGER)
ORDER BY r`, h("r", 5), cfg.Rows, overlapPeople, cfg.Seed, h("r", 6), h("r", 10), h("r", 11), len(Destinations)),
		"COPY flights TO '" + files.Flights + "' (FORMAT parquet, COMPRESSION zstd)",
		"COPY visits TO '" + files.Visits + "' (FORMAT parquet, COMPRESSION zstd)",
	}
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			os.Remove(files.Flights)
			os.Remove(files.Visits)
			return nil, fmt.Errorf("scenario: generate: %w", err)
		}
	}
	return files, nil
}

func destValues() string {
	var b strings.Builder
	for i, d := range Destinations {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%d, '%s', '%s')", i, d.Area, d.Airport)
	}
	return b.String()
}

func listValues(names []string) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%d, '%s')", i, n)
	}
	return b.String()
}
