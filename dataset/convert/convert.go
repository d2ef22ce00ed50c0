// Package convert validates tabular data (CSV, JSON lines, Parquet) against
// a dataset schema (package dataset/table) and converts it to Parquet with
// DuckDB (docs/spec/dataset.md §5), and SealFile seals the result (package
// dataset): Parquet that already conforms to the schema as it is, anything
// else as DuckDB writes it. Conversion runs an in-memory DuckDB database:
// nothing but the output file is written, apart from DuckDB spilling to a
// temporary directory that is removed afterwards.
package convert

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/kura-cc/kura/dataset/table"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/duckdb/duckdb-go/v2" // also registers the "duckdb" driver
)

// Format is an input format.
type Format string

// Input formats.
const (
	CSV     Format = "csv"     // comma-separated, with a header line
	Parquet Format = "parquet" // Apache Parquet
	JSONL   Format = "jsonl"   // one JSON object per line
)

// DetectFormat returns the format named by path's extension.
func DetectFormat(path string) (Format, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return CSV, nil
	case ".parquet", ".pq":
		return Parquet, nil
	case ".jsonl", ".ndjson":
		return JSONL, nil
	}
	return "", fmt.Errorf("%w: cannot tell the format of %s from its extension (want .csv, .parquet or .jsonl)", table.ErrUnsupportedFormat, path)
}

// Config configures DuckDB for a conversion. The zero value is ready to use.
type Config struct {
	// MemoryLimit is DuckDB's memory_limit; "" means "1GB". DuckDB spills
	// to TempDir beyond it.
	MemoryLimit string
	// Threads is DuckDB's thread count; zero means runtime.GOMAXPROCS(0).
	Threads int
	// TempDir is the parent of the spill directory; "" means os.TempDir().
	// The spill directory is removed when the conversion ends.
	TempDir string
}

// Result describes a finished conversion.
type Result struct {
	Rows int64
}

// session is one in-memory DuckDB database on one connection.
type session struct {
	db    *sql.DB
	conn  *sql.Conn
	spill string
}

func open(ctx context.Context, cfg Config) (*session, error) {
	spill, err := os.MkdirTemp(cfg.TempDir, "kura-duckdb-*")
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		os.RemoveAll(spill)
		return nil, err
	}
	s := &session{db: db, spill: spill}
	if s.conn, err = db.Conn(ctx); err != nil {
		s.close()
		return nil, err
	}
	mem := cfg.MemoryLimit
	if mem == "" {
		mem = "1GB"
	}
	threads := cfg.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	for _, q := range []string{
		"SET memory_limit = " + quote(mem),
		fmt.Sprintf("SET threads = %d", threads),
		"SET temp_directory = " + quote(spill),
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET preserve_insertion_order = true",
	} {
		if _, err := s.conn.ExecContext(ctx, q); err != nil {
			s.close()
			return nil, fmt.Errorf("duckdb: %s: %w", q, err)
		}
	}
	return s, nil
}

func (s *session) close() {
	if s.conn != nil {
		s.conn.Close()
	}
	s.db.Close()
	os.RemoveAll(s.spill)
}

// quote returns s as an SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ident returns s as an SQL identifier.
func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// isEmpty reports whether a CSV or JSON-lines file holds nothing but white space.
func isEmpty(path string, format Format) (bool, error) {
	if format == Parquet {
		return false, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		n, err := f.Read(buf)
		if strings.TrimSpace(string(buf[:n])) != "" {
			return false, nil
		}
		if err != nil {
			return true, nil
		}
	}
}

// source returns a table expression reading path. With text true, CSV and
// JSON-lines values are read as VARCHAR, so that validation sees them as
// written.
func (s *session) source(ctx context.Context, path string, format Format, text bool) (string, error) {
	switch format {
	case CSV:
		if text {
			return fmt.Sprintf("read_csv(%s, header = true, delim = ',', all_varchar = true)", quote(path)), nil
		}
		return fmt.Sprintf("read_csv(%s, header = true, delim = ',')", quote(path)), nil
	case Parquet:
		return fmt.Sprintf("read_parquet(%s)", quote(path)), nil
	case JSONL:
		src := fmt.Sprintf("read_json(%s, format = 'newline_delimited')", quote(path))
		if !text {
			return src, nil
		}
		cols, err := s.describe(ctx, src)
		if err != nil {
			return "", err
		}
		var fields []string
		for _, c := range cols {
			fields = append(fields, quote(c.name)+": 'VARCHAR'")
		}
		return fmt.Sprintf("read_json(%s, format = 'newline_delimited', columns = {%s})", quote(path), strings.Join(fields, ", ")), nil
	}
	return "", fmt.Errorf("%w: %q", table.ErrUnsupportedFormat, format)
}

// readError turns DuckDB's refusal of a malformed input into table.ErrUnreadable
// with the first line of its message: the rest lists DuckDB's own options
// and may quote a line of the input. Other errors are wrapped as they are.
func readError(err error) error {
	var de *duckdb.Error
	if !errors.As(err, &de) || de.Type != duckdb.ErrorTypeInvalidInput {
		return fmt.Errorf("reading the input: %w", err)
	}
	msg, _, _ := strings.Cut(de.Msg, "\n")
	msg = strings.TrimPrefix(msg, "Invalid Input Error: ")
	if strings.Contains(msg, "sniffing") {
		return fmt.Errorf("%w: the CSV dialect could not be detected: are its line endings mixed (CRLF and LF), or do rows differ in columns or quoting? Save it with one line ending and try again", table.ErrUnreadable)
	}
	if before, _, ok := strings.Cut(msg, "Original Line"); ok {
		msg = before
	}
	return fmt.Errorf("%w: %s", table.ErrUnreadable, strings.TrimSpace(msg))
}

type described struct{ name, typ string }

func (s *session) describe(ctx context.Context, src string) ([]described, error) {
	rows, err := s.conn.QueryContext(ctx, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+src+")")
	if err != nil {
		return nil, readError(err)
	}
	defer rows.Close()
	var out []described
	for rows.Next() {
		var d described
		if err := rows.Scan(&d.name, &d.typ); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// e164Pattern is what a phone number in E.164 form matches, in full.
const e164Pattern = `\+[1-9][0-9]{6,14}`

// Convert reads the CSV, Parquet or JSON-lines file inPath (format "" means
// by extension), checks it against the schema, normalises it and writes it
// as Parquet to outPath. outPath appears only when the conversion succeeded.
// Input errors wrap table.ErrSchemaMismatch and are *table.ColumnError.
func Convert(ctx context.Context, cfg Config, inPath string, format Format, sc *table.Schema, outPath string) (*Result, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	in, err := OpenInput(ctx, cfg, inPath, format, sc)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(outPath), "."+filepath.Base(outPath)+".tmp-*")
	if err != nil {
		return nil, err
	}
	tmp.Close()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp.Name())
		}
	}()
	res, err := in.run(ctx, func(q string) (int64, error) { return in.s.copyFile(ctx, q, tmp.Name()) })
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), outPath); err != nil {
		return nil, err
	}
	ok = true
	return res, nil
}

// invalidMarker is the message of the error the conversion query raises at
// the first value that does not convert; the conversion then looks for
// every column's first such row to report (checkValues).
const invalidMarker = "kura: value does not convert"

// columns compares the input's columns with the schema: a missing or an
// extra column is an error naming it.
func (s *session) columns(ctx context.Context, src string, sc *table.Schema) error {
	cols, err := s.describe(ctx, src)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, c := range cols {
		have[c.name] = true
	}
	want := map[string]bool{}
	for _, c := range sc.Columns {
		want[c.Name] = true
		if !have[c.Name] {
			return &table.ColumnError{Column: c.Name, Err: table.ErrMissingColumn}
		}
	}
	for _, c := range cols {
		if !want[c.name] {
			return &table.ColumnError{Column: c.name, Err: table.ErrExtraColumn}
		}
	}
	return nil
}

// checkValues finds, in one pass, the first row where each column's value
// does not convert.
func (s *session) checkValues(ctx context.Context, src string, sc *table.Schema) error {
	var l layers
	var exprs []string
	for _, c := range sc.Columns {
		exprs = append(exprs, fmt.Sprintf("min(CASE WHEN %s IS NOT NULL AND %s IS NULL THEN __kura_row END)", ident(c.Name), l.value(sc, c)))
	}
	q := fmt.Sprintf("SELECT %s FROM %s", strings.Join(exprs, ", "), l.from("(SELECT row_number() OVER () AS __kura_row, * FROM "+src+")"))
	bad := make([]sql.NullInt64, len(sc.Columns))
	dst := make([]any, len(bad))
	for i := range bad {
		dst[i] = &bad[i]
	}
	if err := s.conn.QueryRowContext(ctx, q).Scan(dst...); err != nil {
		return readError(err)
	}
	var errs []error
	for i, c := range sc.Columns {
		if !bad[i].Valid {
			continue
		}
		e := fmt.Errorf("%w: want %s", table.ErrTypeMismatch, c.Type)
		if c.Type == table.String {
			e = fmt.Errorf("%w: cannot normalise with %v", table.ErrInvalidValue, c.Normalize)
		}
		errs = append(errs, &table.ColumnError{Column: c.Name, Row: bad[i].Int64, Err: e})
	}
	return errors.Join(errs...)
}

// Infer reads the input's columns and types and returns a schema for them.
// Types DuckDB detects beyond the schema types are read as strings.
func Infer(ctx context.Context, cfg Config, inPath string, format Format) (*table.Schema, error) {
	in, err := OpenInput(ctx, cfg, inPath, format, nil)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	return in.Schema(), nil
}

// infer returns a schema for the columns and types of the input.
func (s *session) infer(ctx context.Context, path string, format Format) (*table.Schema, error) {
	src, err := s.source(ctx, path, format, false)
	if err != nil {
		return nil, err
	}
	cols, err := s.describe(ctx, src)
	if err != nil {
		return nil, err
	}
	sc := &table.Schema{}
	for _, c := range cols {
		sc.Columns = append(sc.Columns, table.Column{Name: c.name, Type: typeOf(c.typ)})
	}
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	return sc, nil
}

func typeOf(duck string) table.Type {
	t := strings.ToUpper(duck)
	switch {
	case t == "BIGINT" || t == "INTEGER" || t == "SMALLINT" || t == "TINYINT" || t == "UINTEGER" || t == "USMALLINT" || t == "UTINYINT":
		return table.Int64
	case t == "DOUBLE" || t == "FLOAT" || strings.HasPrefix(t, "DECIMAL"):
		return table.Double
	case t == "BOOLEAN":
		return table.Bool
	case t == "DATE":
		return table.Date
	case strings.HasPrefix(t, "TIMESTAMP"):
		return table.Timestamp
	}
	return table.String
}
