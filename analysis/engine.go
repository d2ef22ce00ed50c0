package analysis

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset/table"
)

// Config tunes the engine. The zero value is ready to use.
type Config struct {
	// Threads is DuckDB's thread count; zero means runtime.GOMAXPROCS(0).
	Threads int
	// MemoryLimit is DuckDB's memory_limit, e.g. "4GB"; "" keeps DuckDB's
	// default (80% of the machine's memory). A query that needs more fails
	// with ErrQueryFailed: nothing spills to disk.
	MemoryLimit string
	// Materialize copies each dataset into a DuckDB table when it is
	// loaded, instead of querying its Parquet bytes through a view. It
	// costs load time and holds the data twice until the caller drops the
	// memory file, and pays off only when several analyses run on the same
	// load (docs/spec/analysis.md §2).
	Materialize bool
	// Logger receives the engine's decisions; nil discards them.
	Logger *slog.Logger
	// Rand is the source of differential-privacy noise and of the key that
	// bounds each unit's contribution (docs/spec/analysis.md §7); nil
	// means crypto/rand.Reader. It must be uniform and secret: tests pass
	// a seeded one, nothing else should.
	Rand io.Reader
}

// Engine is one in-memory DuckDB database holding the datasets of one run.
// Load every dataset, then Run analyses; the first Run locks the database
// down, after which nothing more can be loaded. An Engine is safe for use
// by one goroutine at a time; its methods serialise.
type Engine struct {
	mu       sync.Mutex
	cfg      Config
	log      *slog.Logger
	db       *sql.DB
	conn     *sql.Conn
	locked   bool
	closed   bool
	datasets map[string]*loaded
	order    []string
	aggs     map[string]bool // DuckDB's aggregate function names, once custom SQL needs them
}

// loaded is one dataset in the engine.
type loaded struct {
	id     string
	schema *table.Schema
	file   *os.File
	path   string
}

// New opens an in-memory DuckDB database with spilling to disk disabled
// (temp_directory ”), extension auto-loading off, and the given limits.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	e := &Engine{cfg: cfg, log: cfg.Logger, datasets: map[string]*loaded{}}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, fmt.Errorf("analysis: open duckdb: %w", err)
	}
	e.db = db
	if e.conn, err = db.Conn(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("analysis: open duckdb: %w", err)
	}
	threads := cfg.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	stmts := []string{
		// An in-memory database spills to ./.tmp by default; an empty
		// temp_directory makes DuckDB fail with an out-of-memory error
		// instead of writing plaintext to disk.
		"SET temp_directory = ''",
		fmt.Sprintf("SET threads = %d", threads),
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET allow_community_extensions = false",
		"SET preserve_insertion_order = false",
	}
	if cfg.MemoryLimit != "" {
		stmts = append(stmts, "SET memory_limit = "+quoteString(cfg.MemoryLimit))
	}
	for _, q := range stmts {
		if _, err := e.conn.ExecContext(ctx, q); err != nil {
			e.closeDB()
			return nil, fmt.Errorf("analysis: configure duckdb: %s: %w", q, err)
		}
	}
	return e, nil
}

// Prepare does ahead of Run the part of running analysis analysisID of m
// that needs no data, so that a caller can overlap it with fetching and
// decrypting the datasets: for custom SQL, listing DuckDB's aggregate
// functions, which its checks need (about 10 ms; once per engine). It
// checks nothing, Run still checks everything, and calling it is
// optional: Run does what Prepare did not.
func (e *Engine) Prepare(ctx context.Context, m *collab.Manifest, analysisID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if m == nil {
		return nil
	}
	if a := m.Analysis(analysisID); a == nil || a.Kind != collab.KindSQL || e.aggs != nil {
		return nil
	}
	aggs, err := e.aggregateNames(ctx)
	if err != nil {
		return err
	}
	e.aggs = aggs
	return nil
}

// aggregateNames lists DuckDB's aggregate functions, so that the custom
// SQL checker can tell aggregates from scalar functions.
func (e *Engine) aggregateNames(ctx context.Context) (map[string]bool, error) {
	rows, err := e.conn.QueryContext(ctx, "SELECT DISTINCT lower(function_name) FROM duckdb_functions() WHERE function_type = 'aggregate'")
	if err != nil {
		return nil, fmt.Errorf("analysis: list aggregate functions: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out[n] = true
	}
	return out, rows.Err()
}

// duckType returns the DuckDB type of a schema type in kura's Parquet
// files.
func duckType(t table.Type) string {
	switch t {
	case table.String:
		return "VARCHAR"
	case table.Int64:
		return "BIGINT"
	case table.Double:
		return "DOUBLE"
	case table.Bool:
		return "BOOLEAN"
	case table.Date:
		return "DATE"
	case table.Timestamp:
		return "TIMESTAMP"
	}
	return ""
}

// LoadParquet makes the plaintext Parquet file f (normally a MemFile)
// available to analyses as the table named datasetID, after checking that
// its columns are exactly the schema's, with the schema's types (an error
// wrapping table.ErrSchemaMismatch otherwise). The engine keeps f and
// closes it in Close.
func (e *Engine) LoadParquet(ctx context.Context, datasetID string, schema *table.Schema, f *os.File) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closed:
		return ErrClosed
	case e.locked:
		return fmt.Errorf("%w: cannot load dataset %q after the first run", ErrLocked, datasetID)
	case datasetID == "" || strings.HasPrefix(strings.ToLower(datasetID), hiddenPrefix):
		return fmt.Errorf("%w: dataset id %q", ErrInvalidAnalysis, datasetID)
	case e.datasets[strings.ToLower(datasetID)] != nil:
		return fmt.Errorf("%w: dataset %q loaded twice", ErrInvalidAnalysis, datasetID)
	case schema == nil:
		return fmt.Errorf("%w: dataset %q has no schema", ErrInvalidAnalysis, datasetID)
	case f == nil:
		return fmt.Errorf("%w: dataset %q: no file", ErrInvalidAnalysis, datasetID)
	}
	if err := schema.Validate(); err != nil {
		return fmt.Errorf("dataset %q: %w", datasetID, err)
	}
	path := fdPath(f)
	src := "read_parquet(" + quoteString(path) + ")"
	if err := e.checkColumns(ctx, src, schema); err != nil {
		return fmt.Errorf("dataset %q: %w", datasetID, err)
	}
	cols := make([]string, len(schema.Columns))
	for i, c := range schema.Columns {
		cols[i] = quoteIdent(c.Name)
	}
	kind := "VIEW"
	if e.cfg.Materialize {
		kind = "TABLE"
	}
	q := fmt.Sprintf("CREATE %s %s AS SELECT %s FROM %s", kind, quoteIdent(datasetID), strings.Join(cols, ", "), src)
	if _, err := e.conn.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("dataset %q: load parquet: %w", datasetID, err)
	}
	e.datasets[strings.ToLower(datasetID)] = &loaded{id: datasetID, schema: schema, file: f, path: path}
	e.order = append(e.order, datasetID)
	e.log.InfoContext(ctx, "dataset loaded", "dataset", datasetID, "columns", len(schema.Columns), "materialized", e.cfg.Materialize)
	return nil
}

// checkColumns compares the Parquet file's columns with the schema.
func (e *Engine) checkColumns(ctx context.Context, src string, schema *table.Schema) error {
	rows, err := e.conn.QueryContext(ctx, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+src+")")
	if err != nil {
		return fmt.Errorf("%w: not a readable Parquet file: %w", table.ErrSchemaMismatch, err)
	}
	defer rows.Close()
	have := map[string]string{}
	var names []string
	for rows.Next() {
		var n, t string
		if err := rows.Scan(&n, &t); err != nil {
			return err
		}
		have[n] = t
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, c := range schema.Columns {
		want[c.Name] = true
		t, ok := have[c.Name]
		if !ok {
			return &table.ColumnError{Column: c.Name, Err: table.ErrMissingColumn}
		}
		if t != duckType(c.Type) {
			return &table.ColumnError{Column: c.Name, Err: fmt.Errorf("%w: the schema says %s (%s), the file holds %s", table.ErrTypeMismatch, c.Type, duckType(c.Type), t)}
		}
	}
	for _, n := range names {
		if !want[n] {
			return &table.ColumnError{Column: n, Err: table.ErrExtraColumn}
		}
	}
	return nil
}

// lockDown disables every file, network and extension access except
// reading the datasets' own memory files, and locks the configuration.
func (e *Engine) lockDown(ctx context.Context) error {
	if e.locked {
		return nil
	}
	var stmts []string
	if !e.cfg.Materialize && len(e.order) > 0 {
		paths := make([]string, 0, len(e.order))
		for _, id := range e.order {
			paths = append(paths, quoteString(e.datasets[strings.ToLower(id)].path))
		}
		stmts = append(stmts, "SET allowed_paths = ["+strings.Join(paths, ", ")+"]")
	}
	stmts = append(stmts,
		"SET enable_external_access = false",
		"SET lock_configuration = true",
	)
	for _, q := range stmts {
		if _, err := e.conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("analysis: lock down duckdb: %s: %w", q, err)
		}
	}
	e.locked = true
	e.log.InfoContext(ctx, "engine locked down", "datasets", len(e.order), "external_access", false)
	return nil
}

// Close drops the database and every dataset in it, and truncates and
// closes the memory files given to LoadParquet.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	err := e.closeDB()
	for _, d := range e.datasets {
		// Truncating frees the plaintext pages even if the caller still
		// holds another descriptor of the same memory file.
		d.file.Truncate(0)
		d.file.Close()
	}
	e.datasets = nil
	return err
}

func (e *Engine) closeDB() error {
	var errs []error
	if e.conn != nil {
		errs = append(errs, e.conn.Close())
	}
	errs = append(errs, e.db.Close())
	return errors.Join(errs...)
}

// queryError turns a DuckDB error into one safe to report: errors raised
// before any data is read (parsing, binding, the catalog) keep DuckDB's
// message, which quotes only the SQL; others keep only their class,
// because DuckDB quotes the offending value (a conversion error names the
// string it could not convert).
func queryError(err error) error {
	var de *duckdb.Error
	if !errors.As(err, &de) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w: %w", ErrQueryFailed, err)
		}
		return fmt.Errorf("%w: %T", ErrQueryFailed, err)
	}
	switch de.Type {
	case duckdb.ErrorTypeParser, duckdb.ErrorTypeSyntax, duckdb.ErrorTypeBinder, duckdb.ErrorTypeCatalog, duckdb.ErrorTypePermission, duckdb.ErrorTypeOutOfMemory, duckdb.ErrorTypeInterrupt:
		return fmt.Errorf("%w: %s", ErrQueryFailed, de.Msg)
	}
	class, _, _ := strings.Cut(de.Msg, ":")
	if len(class) > 40 {
		class = "error"
	}
	return fmt.Errorf("%w: %s (details withheld: they may quote data)", ErrQueryFailed, class)
}

// quoteString returns s as an SQL string literal.
func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// quoteIdent returns s as an SQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
