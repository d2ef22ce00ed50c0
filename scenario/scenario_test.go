package scenario

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"testing"

	"github.com/kura-cc/kura/dataset/table"
)

func TestGenerate(t *testing.T) {
	ctx := context.Background()
	a, err := Generate(ctx, t.TempDir(), Config{Rows: 4000, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(ctx, t.TempDir(), Config{Rows: 4000, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Generate(ctx, t.TempDir(), Config{Rows: 4000, Seed: 8})
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	if !bytes.Equal(read(a.Flights), read(b.Flights)) || !bytes.Equal(read(a.Visits), read(b.Visits)) {
		t.Error("the same seed gave different files")
	}
	if bytes.Equal(read(a.Flights), read(c.Flights)) {
		t.Error("different seeds gave the same flights")
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	one := func(q string) int64 {
		t.Helper()
		var n int64
		if err := db.QueryRow(q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	if n := one("SELECT count(*) FROM '" + a.Flights + "'"); n != 4000 {
		t.Errorf("flights: %d rows, want 4000", n)
	}
	if n := one("SELECT count(*) FROM '" + a.Visits + "'"); n != 4000 {
		t.Errorf("visits: %d rows, want 4000", n)
	}
	// Part of the population overlaps, and matched visits are to the area
	// flown to, arriving on the flight date.
	overlap := one("SELECT count(DISTINCT f.member_id) FROM '" + a.Flights + "' f JOIN '" + a.Visits + "' v USING (phone)")
	if overlap < 500 || overlap > 1000 {
		t.Errorf("%d of 2000 passengers are subscribers, want about 800", overlap)
	}
	if n := one("SELECT count(*) FROM '" + a.Flights + "' f JOIN '" + a.Visits + "' v ON f.phone = v.phone AND f.destination_area = v.area AND v.arrival_date = f.flight_date"); n < 1000 {
		t.Errorf("only %d visits match a flight", n)
	}
	// Skew: some prefecture has fewer than 10 passengers, so a threshold of
	// 10 suppresses it.
	if n := one("SELECT min(n) FROM (SELECT count(DISTINCT member_id) n FROM '" + a.Flights + "' GROUP BY home_prefecture)"); n >= 10 {
		t.Errorf("smallest prefecture has %d passengers, want < 10", n)
	}
	// Every column the schema declares is there, with its type.
	for path, sc := range map[string][]string{a.Flights: names(FlightsSchema().Columns), a.Visits: names(VisitsSchema().Columns)} {
		for _, col := range sc {
			one("SELECT count(" + col + ") FROM '" + path + "'")
		}
	}
}

func names(cols []table.Column) []string {
	var out []string
	for _, c := range cols {
		out = append(out, c.Name)
	}
	return out
}

func TestGenerateRefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{{Rows: 0}, {Rows: 10, Overlap: 2}, {Rows: 10, Overlap: -1}} {
		if _, err := Generate(context.Background(), t.TempDir(), cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
