package bench

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/dataset/convert"
	"github.com/kura-cc/kura/dataset/table"
)

// TestSealChildProcess is not a test: TestSeal runs this test binary with
// KURA_BENCH_SEAL_CHILD=1 as kura bench seal's processes: "kura IN --schema
// S --key-file K -o OUT" seals as kura data seal does (convert.SealFile),
// "baseline KIND IN OUT" runs SealBaseline.
func TestSealChildProcess(t *testing.T) {
	args := childArgs(t, "KURA_BENCH_SEAL_CHILD", "a process of TestSeal")
	ctx := context.Background()
	switch {
	case len(args) == 4 && args[0] == "baseline":
		if err := SealBaseline(ctx, args[1], args[2], args[3]); err != nil {
			t.Fatal(err)
		}
	case len(args) == 8 && args[0] == "kura":
		data, err := os.ReadFile(args[3])
		if err != nil {
			t.Fatal(err)
		}
		sc, err := table.ParseSchema(data)
		if err != nil {
			t.Fatal(err)
		}
		key, err := dataset.ReadKeyFile(args[5])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := convert.SealFile(ctx, convert.SealConfig{Schema: sc, Header: dataset.Header{DatasetID: "bench"}}, args[7], args[1], key); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("args %q", args)
	}
}

// TestSeal runs a tiny kura bench seal: every figure gets its pair.
func TestSeal(t *testing.T) {
	child := childCommand(t, "TestSealChildProcess", "generates files and starts processes")
	var out bytes.Buffer
	err := Seal(t.Context(), SealConfig{Size: 256 << 10, Pairs: 1, JSON: true,
		Kura: append(child[:3:3], "kura"), Baseline: append(child[:3:3], "baseline"),
		Env: []string{"KURA_BENCH_SEAL_CHILD=1"}}, &out)
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, out.Bytes(), 4)
	if err := Seal(t.Context(), SealConfig{Size: 1 << 20, Pairs: 0, Kura: child, Baseline: child}, &out); err == nil {
		t.Error("no pairs: accepted")
	}
}
