package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	rows, pairs := 2000, 1
	if v := os.Getenv("KURA_BENCH_ROWS"); v != "" {
		fmt.Sscan(v, &rows)
		pairs = 3
	}
	var out strings.Builder
	if err := CleanRoom(context.Background(), CleanRoomConfig{Rows: rows, Pairs: pairs, Analysis: "stay_by_prefecture", Version: "test"}, &out); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	for _, want := range []string{"clean-room run, " + rowsLabel(rows) + " rows each", "plain DuckDB", "≤ 1.2×", "query and output policy"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if os.Getenv("KURA_BENCH_ROWS") != "" {
		return
	}
	// --json prints the figures and nothing else.
	out.Reset()
	if err := CleanRoom(context.Background(), CleanRoomConfig{Rows: 500, Pairs: 1, Analysis: "visitors_by_area_age", Version: "test", JSON: true}, &out); err != nil {
		t.Fatal(err)
	}
	var figs []Figure
	if err := json.Unmarshal([]byte(out.String()), &figs); err != nil || len(figs) == 0 || len(figs[0].Kura) != 1 || len(figs[0].Base) != 1 {
		t.Errorf("--json: %v: %s", err, out.String())
	}
}

func TestBenchCleanroomUsage(t *testing.T) {
	for _, cfg := range []CleanRoomConfig{
		{Rows: 0, Pairs: 1, Analysis: "stay_by_prefecture"},
		{Rows: 10, Pairs: 0, Analysis: "stay_by_prefecture"},
		{Rows: 10, Pairs: 1, Analysis: "nope"},
	} {
		if err := CleanRoom(context.Background(), cfg, io.Discard); !errors.Is(err, ErrUsage) {
			t.Errorf("%+v: %v, want ErrUsage", cfg, err)
		}
	}
}
