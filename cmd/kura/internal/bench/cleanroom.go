package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
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
	// Runs is the number of timed runs of each variant.
	Runs int
	// Analysis is the story's analysis to run: stay_by_prefecture or
	// visitors_by_area_age.
	Analysis string
	// Version is kura's version, named in the story's servers' tokens.
	Version string
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

// CleanRoom sets up the clean-room story with cfg.Rows rows per dataset, then
// times cfg.Runs end-to-end worker runs against as many runs of plain DuckDB
// executing the same query on the same plaintext, alternating, in this
// process, and reports medians, the ratio and each variant's peak resident
// memory on w.
func CleanRoom(ctx context.Context, cfg CleanRoomConfig, w io.Writer) error {
	rows, runs, analysisID := cfg.Rows, cfg.Runs, cfg.Analysis
	q, ok := plainQueries[analysisID]
	if !ok || rows < 1 || runs < 1 {
		return usagef("want --rows ≥ 1, --runs ≥ 1 and --analysis stay_by_prefecture or visitors_by_area_age")
	}
	dir, err := os.MkdirTemp("", "kura-bench-cleanroom-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	t0 := time.Now()
	c, err := demo.NewCleanRoom(ctx, demo.CleanRoomConfig{Dir: dir, Rows: rows, Version: cfg.Version, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Approve(demo.Airline, demo.Carrier); err != nil {
		return err
	}
	fmt.Fprintf(w, "setup: %d rows per dataset generated, sealed, registered and approved in %s (not timed below); GOMAXPROCS %d\n",
		rows, time.Since(t0).Round(time.Millisecond), runtime.GOMAXPROCS(0))

	var kuraTimes, plainTimes []time.Duration
	var kuraPeak, plainPeak int64
	var phases []worker.Timing
	var rowsOut, suppressed int
	for range runs {
		resetPeakRSS()
		start := time.Now()
		out, err := c.Run(ctx, analysisID)
		if err != nil {
			return err
		}
		kuraTimes = append(kuraTimes, time.Since(start))
		kuraPeak = max(kuraPeak, peakRSS())
		phases, rowsOut, suppressed = out.Timings, out.Rows, out.Suppressed

		resetPeakRSS()
		start = time.Now()
		n, err := plainDuckDB(ctx, q, c.Plaintext["flights"], c.Plaintext["visits"])
		if err != nil {
			return err
		}
		plainTimes = append(plainTimes, time.Since(start))
		plainPeak = max(plainPeak, peakRSS())
		if n < rowsOut {
			return fmt.Errorf("plain DuckDB returned %d rows, fewer than kura's %d after suppression", n, rowsOut)
		}
	}
	km, pm := median(kuraTimes), median(plainTimes)
	fmt.Fprintf(w, "analysis %s: %d rows out, %d suppressed\n", analysisID, rowsOut, suppressed)
	fmt.Fprintf(w, "%-44s %12s %12s  %s\n", "variant", "median", "peak RSS", "runs")
	fmt.Fprintf(w, "%-44s %12s %12s  %s\n", "plain DuckDB on the plaintext Parquet", pm.Round(time.Millisecond), mib(plainPeak), durations(plainTimes))
	fmt.Fprintf(w, "%-44s %12s %12s  %s\n", "kura end to end (attest ... receipt)", km.Round(time.Millisecond), mib(kuraPeak), durations(kuraTimes))
	fmt.Fprintf(w, "ratio kura / plain: %.2f×\n", float64(km)/float64(pm))
	fmt.Fprintln(w, "last kura run by phase:")
	for _, p := range phases {
		fmt.Fprintf(w, "  %-40s %10s\n", p.Phase, p.Duration.Round(100*time.Microsecond))
	}
	if peakRSS() == 0 {
		fmt.Fprintln(w, "(peak RSS unavailable on this system)")
	}
	return nil
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

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func durations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(parts, " ")
}

func mib(b int64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
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
