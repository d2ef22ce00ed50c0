package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/kura-cc/kura/cmd/kura/internal/demo"
	"github.com/kura-cc/kura/worker"
)

// CleanRoomConfig is a clean-room benchmark.
type CleanRoomConfig struct {
	// Rows is the size of each dataset.
	Rows int
	// Pairs is the number of alternated pairs of runs (kura, plain DuckDB).
	Pairs int
	// Analysis is the story's analysis to run: stay_by_prefecture or
	// visitors_by_area_age.
	Analysis string
	// Version is kura's version, named in the story's servers' tokens.
	Version string
	// JSON prints the figures as JSON.
	JSON bool
}

// plainQueries are the story's analyses as a user would write them for
// plain DuckDB over the plaintext files.
var plainQueries = map[string]string{
	"stay_by_prefecture": `SELECT flights.home_prefecture, count(DISTINCT visits.subscriber_id) AS travellers, avg(visits.stay_days) AS avg_stay_days
FROM read_parquet($flights) flights JOIN read_parquet($visits) visits ON flights.phone = visits.phone GROUP BY 1`,
	"visitors_by_area_age": `SELECT f.destination_area AS area, f.age_band, count(DISTINCT v.subscriber_id) AS visitors
FROM read_parquet($flights) f JOIN read_parquet($visits) v ON f.phone = v.phone AND f.destination_area = v.area AND v.arrival_date = f.flight_date
GROUP BY 1, 2`,
}

// CleanRoom sets up the clean-room story with cfg.Rows rows per dataset,
// then measures, in cfg.Pairs alternated pairs in this process, an
// end-to-end worker run (attest, key release, hash, decrypt into memory,
// load, query, output policy, encrypt, sign, wipe, receipt) against plain
// DuckDB executing the same query on the same plaintext Parquet files: two
// figures, the time and the process's peak resident memory of each run.
// It prints the figures, then the last kura run's phases.
func CleanRoom(ctx context.Context, cfg CleanRoomConfig, w io.Writer) error {
	q, ok := plainQueries[cfg.Analysis]
	if !ok || cfg.Rows < 1 || cfg.Pairs < 1 {
		return usagef("want --rows ≥ 1, --pairs ≥ 1 and --analysis stay_by_prefecture or visitors_by_area_age")
	}
	dir, err := os.MkdirTemp("", "kura-bench-cleanroom-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	t0 := time.Now()
	c, err := demo.NewCleanRoom(ctx, demo.CleanRoomConfig{Dir: dir, Rows: cfg.Rows, Version: cfg.Version, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Approve(demo.Airline, demo.Carrier); err != nil {
		return err
	}
	note := func(format string, args ...any) {
		if !cfg.JSON {
			fmt.Fprintf(w, format, args...)
		}
	}
	note("setup: %d rows per dataset generated, sealed, registered and approved in %s (not measured); GOMAXPROCS %d\n",
		cfg.Rows, time.Since(t0).Round(time.Millisecond), runtime.GOMAXPROCS(0))

	// One run of each before measuring: the sim attester hashes this
	// executable on its first use, as a TEE measures at launch.
	var last *worker.Output
	kura := func(ctx context.Context) error {
		out, err := c.Run(ctx, cfg.Analysis)
		last = out
		return err
	}
	plainRows := 0
	plain := func(ctx context.Context) (err error) {
		plainRows, err = plainDuckDB(ctx, q, c.Plaintext["flights"], c.Plaintext["visits"])
		return err
	}
	if err := kura(ctx); err != nil {
		return err
	}
	if err := plain(ctx); err != nil {
		return err
	}
	if plainRows < last.Rows {
		return fmt.Errorf("plain DuckDB returned %d rows, fewer than kura's %d after suppression", plainRows, last.Rows)
	}

	target := "≤ 1.2×"
	if cfg.Rows >= 10_000_000 {
		target = "≤ 1.1×"
	}
	timeFig := Figure{Name: fmt.Sprintf("clean-room run, %s rows each (%s)", rowsLabel(cfg.Rows), cfg.Analysis),
		Baseline: "plain DuckDB, same query and plaintext", Unit: "ms", Target: target}
	rssFig := Figure{Name: "peak resident memory of that run", Baseline: timeFig.Baseline, Unit: "MiB", Target: "≤ 1.1×"}
	// measure times one run and records its peak resident memory: the
	// whole process's (the story's key brokers and verifiers included),
	// after returning freed memory to the system so that neither variant
	// inherits the other's.
	measure := func(run func(context.Context) error, peaks *[]float64) Variant {
		return func(ctx context.Context) (float64, error) {
			debug.FreeOSMemory()
			resetPeakRSS()
			start := time.Now()
			if err := run(ctx); err != nil {
				return 0, err
			}
			d := time.Since(start)
			*peaks = append(*peaks, float64(peakRSS())/(1<<20))
			return float64(d) / float64(time.Millisecond), nil
		}
	}
	if err := Alternate(ctx, &timeFig, cfg.Pairs, measure(plain, &rssFig.Base), measure(kura, &rssFig.Kura)); err != nil {
		return err
	}
	figs := []Figure{timeFig}
	if peakRSS() > 0 {
		figs = append(figs, rssFig)
	}
	if err := WriteFigures(w, figs, cfg.JSON); err != nil {
		return err
	}
	note("analysis %s: %d rows out, %d suppressed; peak memory is the whole process's (this benchmark's key brokers and verifiers too), kura's including its decryption buffers; the plaintext in memory files, like plain DuckDB's files in the page cache, is not resident memory of the process\n",
		cfg.Analysis, last.Rows, last.Suppressed)
	note("last kura run by phase:\n")
	for _, p := range last.Timings {
		note("  %-40s %10s\n", p.Phase, p.Duration.Round(100*time.Microsecond))
	}
	return nil
}

// rowsLabel writes n as 1M, 10M, 2000.
func rowsLabel(n int) string {
	if n >= 1_000_000 && n%1_000_000 == 0 {
		return strconv.Itoa(n/1_000_000) + "M"
	}
	return strconv.Itoa(n)
}

// plainDuckDB runs q on a fresh in-memory DuckDB and returns the row count.
func plainDuckDB(ctx context.Context, q, flights, visits string) (int, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, q, sql.Named("flights", flights), sql.Named("visits", visits))
	if err != nil {
		return 0, fmt.Errorf("plain DuckDB: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}

// resetPeakRSS resets the kernel's peak resident set size of this process
// (Linux: writing 5 to /proc/self/clear_refs), so each variant's peak can
// be read on its own. Elsewhere it does nothing.
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS returns the process's peak resident set size since the last
// reset (VmHWM), or 0 if unknown.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
