package bench

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"filippo.io/age"

	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/dataset/convert"
	"github.com/kura-cc/kura/scenario"
)

// SealConfig configures Seal.
type SealConfig struct {
	// Size is the size in bytes of each generated input, the CSV and the
	// Parquet file.
	Size int64
	// Pairs is the number of alternated pairs per figure.
	Pairs int
	// JSON prints the figures as JSON.
	JSON bool
	// Kura is the command that runs `kura data seal`: the running binary
	// and "data", "seal"; the bench appends IN --schema S --key-file K -o OUT.
	Kura []string
	// Baseline is the command that runs a baseline process: the running
	// binary and "bench", "seal", "baseline"; the bench appends KIND IN OUT
	// (SealBaseline).
	Baseline []string
	// Env is added to both commands' environment.
	Env []string
	// Dir holds the generated files; "" means a temporary directory,
	// removed at the end.
	Dir string
}

// Seal generates, untimed, a CSV and a conforming Parquet file of
// cfg.Size bytes each with the clean-room story's flights schema
// (scenario.FlightsSchema: phone numbers in E.164), then measures
// `kura data seal` in its own process against the baselines in theirs,
// in alternated pairs: the Parquet file against age encrypting the same
// file to an X25519 recipient, and the CSV against DuckDB's own COPY
// (FROM read_csv(...)) TO Parquet with the Parquet sealed as DuckDB writes
// it; and each side's peak resident memory.
func Seal(ctx context.Context, cfg SealConfig, w io.Writer) error {
	if cfg.Size < 1<<10 || cfg.Pairs < 1 || len(cfg.Kura) == 0 || len(cfg.Baseline) == 0 {
		return fmt.Errorf("%w: want --size ≥ 1KiB and --pairs ≥ 1", ErrUsage)
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "kura-bench-seal-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	t0 := time.Now()
	in, err := generateSealInputs(ctx, dir, cfg.Size)
	if err != nil {
		return err
	}
	if !cfg.JSON {
		fmt.Fprintf(w, "inputs (not timed, %s): %s CSV (%d rows), %s Parquet (%d rows, zstd); GOMAXPROCS %d\n",
			time.Since(t0).Round(time.Millisecond), mib(in.csvSize), in.csvRows, mib(in.pqSize), in.pqRows, runtime.GOMAXPROCS(0))
	}
	keyFile := filepath.Join(dir, "data.key")
	os.Remove(keyFile) // a previous run's, in --dir
	if err := dataset.WriteKeyFile(keyFile, dataset.NewKey()); err != nil {
		return err
	}
	out := filepath.Join(dir, "out.sealed")
	run := func(rss *[]float64, args ...string) Variant {
		return func(ctx context.Context) (float64, error) {
			os.Remove(out)
			d, peak, err := runChild(ctx, cfg.Env, args)
			*rss = append(*rss, peak)
			return d.Seconds(), err
		}
	}
	kura := func(input string) []string {
		return append(append([]string(nil), cfg.Kura...), input, "--schema", in.schema, "--key-file", keyFile, "-o", out)
	}
	base := func(kind, input string) []string {
		return append(append([]string(nil), cfg.Baseline...), kind, input, out)
	}
	size := mib(cfg.Size)
	pq := Figure{Name: "seal conforming Parquet (" + size + ")", Baseline: "age, X25519, to a file", Unit: "s", Target: "≤ 1.5×"}
	csv := Figure{Name: "seal CSV (" + size + ")", Baseline: "DuckDB COPY read_csv → Parquet, sealed as written", Unit: "s", Target: "≤ 1.3×"}
	var pqKuraRSS, pqBaseRSS, csvKuraRSS, csvBaseRSS []float64
	if err := Alternate(ctx, &pq, cfg.Pairs, run(&pqBaseRSS, base("age", in.parquet)...), run(&pqKuraRSS, kura(in.parquet)...)); err != nil {
		return err
	}
	if err := Alternate(ctx, &csv, cfg.Pairs, run(&csvBaseRSS, base("duckdb-csv", in.csv)...), run(&csvKuraRSS, kura(in.csv)...)); err != nil {
		return err
	}
	figs := []Figure{pq, csv,
		{Name: "peak RSS, Parquet seal", Baseline: "age", Unit: "MiB", Kura: pqKuraRSS, Base: pqBaseRSS},
		{Name: "peak RSS, CSV seal", Baseline: "DuckDB COPY + seal", Unit: "MiB", Kura: csvKuraRSS, Base: csvBaseRSS},
	}
	return WriteFigures(w, figs, cfg.JSON)
}

// sealInputs are the generated files.
type sealInputs struct {
	csv, parquet, schema string
	csvRows, pqRows      int64
	csvSize, pqSize      int64
}

// flightsQuery selects rows of the story's flights table: members in a
// random order, each with an E.164 phone number.
func flightsQuery(rows int64) string {
	return fmt.Sprintf(`SELECT printf('M%%09d', hash(r, 1) %% 1000000000) AS member_id,
  printf('+8190%%08d', hash(r, 2) %% 100000000) AS phone,
  ['20s','30s','40s','50s','60s','70+'][1 + CAST(hash(r, 3) %% 6 AS BIGINT)] AS age_band,
  ['tokyo','kanagawa','osaka','aichi','saitama','chiba','hyogo','hokkaido','fukuoka','shizuoka'][1 + CAST(hash(r, 4) %% 10 AS BIGINT)] AS home_prefecture,
  ['OKA','CTS','FUK','KOJ','ISG','HIJ','SDJ','KMQ'][1 + CAST(hash(r, 5) %% 8 AS BIGINT)] AS destination,
  ['okinawa','hokkaido','fukuoka','kagoshima','ishigaki','hiroshima','sendai','kanazawa'][1 + CAST(hash(r, 5) %% 8 AS BIGINT)] AS destination_area,
  DATE '2026-01-01' + CAST(hash(r, 6) %% 365 AS INTEGER) AS flight_date
FROM range(%d) t(r)`, rows)
}

// generateSealInputs writes a CSV and a Parquet file of about size bytes
// each and the flights schema, sizing each from a sample's bytes per row.
func generateSealInputs(ctx context.Context, dir string, size int64) (*sealInputs, error) {
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
	in := &sealInputs{csv: filepath.Join(dir, "flights.csv"), parquet: filepath.Join(dir, "flights.parquet"), schema: filepath.Join(dir, "flights.json")}
	if err := os.WriteFile(in.schema, scenario.FlightsSchema().JSON(), 0o644); err != nil {
		return nil, err
	}
	write := func(path, opts string, rows int64) (int64, error) {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("COPY (%s) TO '%s' (%s)", flightsQuery(rows), path, opts)); err != nil {
			return 0, fmt.Errorf("generate %s: %w", filepath.Base(path), err)
		}
		st, err := os.Stat(path)
		if err != nil {
			return 0, err
		}
		return st.Size(), nil
	}
	for _, f := range []struct {
		path, opts  string
		rows, bytes *int64
	}{
		{in.csv, "FORMAT csv, HEADER", &in.csvRows, &in.csvSize},
		{in.parquet, "FORMAT parquet, COMPRESSION zstd", &in.pqRows, &in.pqSize},
	} {
		const sample = 200000
		n, err := write(f.path, f.opts, sample)
		if err != nil {
			return nil, err
		}
		*f.rows = max(1, int64(float64(size)/float64(n)*sample))
		if *f.bytes, err = write(f.path, f.opts, *f.rows); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// runChild runs args as a process and returns its wall time and peak
// resident memory in MiB (0 where the system does not report it).
//
// On Linux the peak is the child's own VmHWM, read from /proc every few
// milliseconds while it runs (it only grows, so the last reading misses at
// most the last few milliseconds): getrusage's ru_maxrss of a child starts
// from this process's resident size when it was started, which hides a
// child smaller than the benchmark itself.
func runChild(ctx context.Context, env, args []string) (time.Duration, float64, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	done := make(chan struct{})
	hwm := make(chan float64, 1)
	go func() {
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		peak := 0.0
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if kib, ok := vmHWM(status); ok {
				peak = max(peak, kib/1024)
			}
			select {
			case <-done:
				hwm <- peak
				return
			case <-t.C:
			}
		}
	}()
	err := cmd.Wait()
	d := time.Since(start)
	close(done)
	peak := <-hwm
	if err != nil {
		return 0, 0, fmt.Errorf("%v: %w: %s", args, err, stderr.b)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && peak == 0 {
		peak = float64(ru.Maxrss) / 1024 // KiB on Linux
		if runtime.GOOS == "darwin" {
			peak /= 1024 // bytes there
		}
	}
	return d, peak, nil
}

// vmHWM returns the VmHWM line of a /proc/PID/status file, in KiB.
func vmHWM(status string) (float64, bool) {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0, false
	}
	_, rest, ok := bytes.Cut(b, []byte("\nVmHWM:"))
	if !ok {
		return 0, false
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	kib, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(string(line)), " kB"), 64)
	return kib, err == nil
}

// limitedBuffer keeps the first 4 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

func mib(n int64) string {
	if n >= 1<<30 && n%(1<<30) == 0 {
		return fmt.Sprintf("%d GiB", n>>30)
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

// SealBaseline is a baseline process of Seal: kind "age" encrypts in to
// out with age to a fresh X25519 recipient, streaming; kind "duckdb-csv"
// runs DuckDB's COPY (FROM read_csv(in)) TO Parquet (DuckDB's defaults)
// and seals the Parquet into out with the kura envelope as DuckDB writes
// it (dataset.Seal, streaming).
func SealBaseline(ctx context.Context, kind, in, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	switch kind {
	case "age":
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return err
		}
		src, err := os.Open(in)
		if err != nil {
			return err
		}
		defer src.Close()
		w, err := age.Encrypt(f, id.Recipient())
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, src); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	case "duckdb-csv":
		pr, pw := io.Pipe()
		copied := make(chan error, 1)
		go func() {
			err := duckdbCSVToParquet(ctx, in, pw)
			pw.CloseWithError(err)
			copied <- err
		}()
		err := dataset.Seal(ctx, f, pr, dataset.NewKey(), dataset.Header{DatasetID: "baseline", Format: "parquet"}, dataset.Options{})
		pr.CloseWithError(errors.New("sealing stopped"))
		if cerr := <-copied; cerr != nil {
			return cerr
		}
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: baseline %q: want age or duckdb-csv", ErrUsage, kind)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// duckdbCSVToParquet runs COPY (FROM read_csv(in)) TO Parquet with DuckDB's
// defaults and copies what DuckDB writes into w as it writes it, as kura's
// conversion feeds its sealer (convert.CopyParquet).
func duckdbCSVToParquet(ctx context.Context, in string, w io.Writer) error {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = convert.CopyParquet(ctx, db, "FROM read_csv('"+strings.ReplaceAll(in, "'", "''")+"')", "", w, "")
	return err
}
