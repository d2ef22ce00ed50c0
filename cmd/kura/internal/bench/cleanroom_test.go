package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestBenchCleanroom runs the benchmark small, so it cannot rot;
// KURA_BENCH_ROWS runs it at a real size and prints the report.
func TestBenchCleanroom(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two key brokers and runs DuckDB")
	}
	rows, runs := 2000, 1
	if v := os.Getenv("KURA_BENCH_ROWS"); v != "" {
		fmt.Sscan(v, &rows)
		runs = 3
	}
	var out strings.Builder
	if err := CleanRoom(context.Background(), CleanRoomConfig{Rows: rows, Runs: runs, Analysis: "stay_by_prefecture", Version: "test"}, &out); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if !strings.Contains(out.String(), "ratio kura / plain") {
		t.Errorf("report lacks the ratio:\n%s", out.String())
	}
}
