package convert

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kura-cc/kura/dataset/table"
)

// Input is one input file opened for checking and conversion in one
// in-memory DuckDB session, so that inferring its schema, deciding whether
// it already is what conversion would write, and converting it read the
// file no more often than needed.
type Input struct {
	s      *session
	path   string // absolute, as DuckDB reads it
	format Format
	sc     *table.Schema
	empty  bool
}

// OpenInput opens the CSV, Parquet or JSON-lines file at path (format ""
// means by extension) to be checked against sc; with sc nil the schema is
// inferred from the file's columns and types. Close the Input when done.
func OpenInput(ctx context.Context, cfg Config, path string, format Format, sc *table.Schema) (*Input, error) {
	if sc != nil {
		if err := sc.Validate(); err != nil {
			return nil, err
		}
	}
	if format == "" {
		var err error
		if format, err = DetectFormat(path); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	empty, err := isEmpty(path, format)
	if err != nil {
		return nil, err
	}
	if empty && sc == nil {
		return nil, fmt.Errorf("%w: %s is empty: give a schema with --schema", table.ErrInvalidSchema, path)
	}
	s, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	in := &Input{s: s, path: abs, format: format, sc: sc, empty: empty}
	if sc == nil {
		if in.sc, err = s.infer(ctx, abs, format); err != nil {
			s.close()
			return nil, err
		}
	}
	return in, nil
}

// Schema returns the schema the input is checked against: the one given
// to OpenInput, or the one inferred.
func (in *Input) Schema() *table.Schema { return in.sc }

// Format returns the input's format.
func (in *Input) Format() Format { return in.format }

// Close ends the DuckDB session and removes its spill directory.
func (in *Input) Close() error {
	in.s.close()
	return nil
}

// WriteParquet checks the input against the schema, normalises it and
// writes the Parquet file to w as DuckDB produces it, in one pass over the
// input; the input is read a second time only when a value does not
// convert, to name each such column's first row. On error w may have
// received part of a file: discard it. Input errors are as Convert's.
func (in *Input) WriteParquet(ctx context.Context, w io.Writer) (*Result, error) {
	return in.run(ctx, func(q string) (int64, error) { return in.s.copyTo(ctx, q, w) })
}

// run checks the columns, then converts with copy, which runs COPY
// (query) TO its target and returns the rows written.
func (in *Input) run(ctx context.Context, copy func(query string) (int64, error)) (*Result, error) {
	sc := in.sc
	if in.empty {
		var cols []string
		for _, c := range sc.Columns {
			cols = append(cols, fmt.Sprintf("CAST(NULL AS %s) AS %s", c.Type.SQL(), ident(c.Name)))
		}
		rows, err := copy("SELECT " + strings.Join(cols, ", ") + " WHERE false")
		if err != nil {
			return nil, fmt.Errorf("writing parquet: %w", err)
		}
		return &Result{Rows: rows}, nil
	}
	src, err := in.s.source(ctx, in.path, in.format, true)
	if err != nil {
		return nil, err
	}
	if err := in.s.columns(ctx, src, sc); err != nil {
		return nil, err
	}
	// Each value converts or, where it does not, stops the copy; the
	// conversion then runs the check that names the first bad row of
	// every column.
	var l layers
	var sel []string
	for _, c := range sc.Columns {
		guarded := fmt.Sprintf("coalesce(%s, CASE WHEN %s IS NOT NULL THEN error(%s) END)", l.value(sc, c), ident(c.Name), quote(invalidMarker))
		sel = append(sel, fmt.Sprintf("CAST(%s AS %s) AS %s", guarded, c.Type.SQL(), ident(c.Name)))
	}
	rows, err := copy("SELECT " + strings.Join(sel, ", ") + " FROM " + l.from(src))
	if err == nil {
		return &Result{Rows: rows}, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if strings.Contains(err.Error(), invalidMarker) {
		if cerr := in.s.checkValues(ctx, src, sc); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("%w: a value does not convert", table.ErrSchemaMismatch)
	}
	if rerr := readError(err); errors.Is(rerr, table.ErrUnreadable) {
		return nil, rerr
	}
	return nil, fmt.Errorf("writing parquet: %w", err)
}

// Execer runs a statement: *sql.DB and *sql.Conn of a DuckDB database.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// compression is how conversion compresses Parquet: zstd at level 1,
// which on the story's data writes faster than DuckDB's default snappy
// and smaller than zstd's default level 3, and reads as fast as either.
const compression = "COMPRESSION zstd, COMPRESSION_LEVEL 1"

// copyTo converts with COPY (query) as compressed Parquet into w
// (CopyParquet).
func (s *session) copyTo(ctx context.Context, query string, w io.Writer) (int64, error) {
	return CopyParquet(ctx, s.conn, query, compression, w, s.spill)
}

// copyOptions returns COPY's options for Parquet with opts added.
func copyOptions(opts string) string {
	if opts == "" {
		return "FORMAT parquet"
	}
	return "FORMAT parquet, " + opts
}

// copyFile runs COPY (query) TO the file at path as compressed Parquet.
func (s *session) copyFile(ctx context.Context, query, path string) (int64, error) {
	// The caller removes path on failure; DuckDB writes it in place
	// (by default it writes beside an existing file, then renames).
	res, err := s.conn.ExecContext(ctx, fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, %s, USE_TMP_FILE false)", query, quote(path), compression))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Conforms reports whether the input is a Parquet file that already is
// what conversion would write, so that it can be sealed unchanged. It is,
// when all of these hold:
//
//   - its path names one file (no glob characters, which DuckDB would
//     expand);
//   - its footer declares exactly the schema's columns, by exact name, in
//     the schema's order, none of them nested;
//   - DuckDB reads each column as the schema type's SQL type (VARCHAR,
//     BIGINT, DOUBLE, BOOLEAN, DATE, TIMESTAMP), which is how the clean
//     room's engine checks a loaded dataset;
//   - every non-null value of a normalised column is its own
//     normalisation: for a column with e164 among its normalisations, the
//     value matches ^\+[1-9][0-9]{6,14}$ (such a value is unchanged by
//     trim, lower and e164, and every output of a chain that includes
//     e164 matches it; parquetE164 checks these columns); for trim and
//     lower alone, normalising it gives it back (a DuckDB scan checks
//     these).
//
// Conversion of such a file would write the same rows with the same
// values and types, so sealing it as it is changes nothing a reader of
// the dataset sees. Columns that are not normalised are not decoded: a
// damaged page in one is the clean room's to refuse when it loads the
// dataset, as it would refuse any damaged file. A file that is
// unreadable, or merely different, is reported as not conforming (ok
// false, err nil), and conversion then refuses or converts it as it
// always did. rows is the file's row count when ok.
func (in *Input) Conforms(ctx context.Context) (rows int64, ok bool, err error) {
	vc, ok, err := in.conformsMeta(ctx)
	if err != nil || !ok {
		return 0, false, err
	}
	return in.conformsValues(ctx, vc)
}

// valueCheck is what conformsValues runs: a DuckDB query that counts the
// rows and, for each column normalised by trim or lower alone, the values
// that are not their own normalisation; and the columns whose values must
// be in E.164 form.
type valueCheck struct {
	query    string
	e164     []int  // leaf column indexes
	optional []bool // by leaf column: whether it may hold nulls
}

// conformsMeta checks the path, the footer's columns and their types, and
// returns the check of the values.
func (in *Input) conformsMeta(ctx context.Context) (vc valueCheck, ok bool, err error) {
	if in.format != Parquet || in.empty || strings.ContainsAny(in.path, "*?[]{}") {
		return vc, false, nil
	}
	sc := in.sc
	rows, err := in.s.conn.QueryContext(ctx, "SELECT name, coalesce(num_children, 0), coalesce(repetition_type, '') FROM parquet_schema("+quote(in.path)+")")
	if err != nil {
		return vc, false, ctxErr(ctx)
	}
	var names []string
	nested := false
	for rows.Next() {
		var name, repetition string
		var children int64
		if err := rows.Scan(&name, &children, &repetition); err != nil {
			rows.Close()
			return vc, false, err
		}
		if len(names) > 0 || children == 0 { // the first entry is the root
			nested = nested || children != 0 || repetition == "REPEATED"
			names = append(names, name)
			vc.optional = append(vc.optional, repetition != "REQUIRED")
		} else {
			names = append(names, "")
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return vc, false, ctxErr(ctx)
	}
	rows.Close()
	if nested || len(names) != len(sc.Columns)+1 {
		return vc, false, nil
	}
	for i, c := range sc.Columns {
		if names[i+1] != c.Name {
			return vc, false, nil
		}
	}
	src := "read_parquet(" + quote(in.path) + ")"
	cols, err := in.s.describe(ctx, src)
	if err != nil {
		return vc, false, ctxErr(ctx)
	}
	if len(cols) != len(sc.Columns) {
		return vc, false, nil
	}
	var l layers
	exprs := []string{"count(*)"}
	for i, c := range sc.Columns {
		if cols[i].name != c.Name || cols[i].typ != c.Type.SQL() {
			return vc, false, nil
		}
		switch {
		case len(c.Normalize) == 0:
		case slices.Contains(c.Normalize, table.E164):
			vc.e164 = append(vc.e164, i)
		default:
			x := ident(c.Name)
			exprs = append(exprs, fmt.Sprintf("count(*) FILTER (WHERE %s IS NOT NULL AND %s IS DISTINCT FROM %s)", x, l.value(sc, c), x))
		}
	}
	vc.query = "SELECT " + strings.Join(exprs, ", ") + " FROM " + l.from(src)
	return vc, true, nil
}

// conformsValues runs the check conformsMeta built: every value of an
// E.164 column must be in E.164 form, and every count of other values that
// are not their own normalisation must be zero.
func (in *Input) conformsValues(ctx context.Context, vc valueCheck) (rows int64, ok bool, err error) {
	if len(vc.e164) > 0 {
		chunks, ok, err := in.columnChunks(ctx, vc)
		if !ok || err != nil {
			return 0, false, err
		}
		if ok, err := parquetE164(ctx, in.path, chunks); !ok || err != nil {
			return 0, false, err
		}
	}
	r, err := in.s.conn.QueryContext(ctx, vc.query)
	if err != nil {
		return 0, false, ctxErr(ctx)
	}
	defer r.Close()
	cols, err := r.Columns()
	if err != nil {
		return 0, false, err
	}
	vals := make([]any, len(cols))
	dst := make([]any, len(cols))
	for i := range vals {
		dst[i] = &vals[i]
	}
	if !r.Next() {
		return 0, false, ctxErr(ctx)
	}
	if err := r.Scan(dst...); err != nil {
		return 0, false, ctxErr(ctx)
	}
	if err := r.Err(); err != nil {
		return 0, false, ctxErr(ctx)
	}
	for _, v := range vals[1:] {
		if n, isCount := v.(int64); isCount && n != 0 {
			return 0, false, nil
		}
	}
	n, _ := vals[0].(int64)
	return n, true, nil
}

// columnChunks returns where the chunks of the E.164 columns lie, from
// the footer: those of every row group, starting where DuckDB starts
// reading them (the dictionary page if the footer gives one).
func (in *Input) columnChunks(ctx context.Context, vc valueCheck) ([]columnChunk, bool, error) {
	ids := make([]string, len(vc.e164))
	for i, c := range vc.e164 {
		ids[i] = strconv.Itoa(c)
	}
	rows, err := in.s.conn.QueryContext(ctx, "SELECT column_id, compression, coalesce(dictionary_page_offset, -1), data_page_offset, total_compressed_size FROM parquet_metadata("+quote(in.path)+") WHERE column_id IN ("+strings.Join(ids, ", ")+")")
	if err != nil {
		return nil, false, ctxErr(ctx)
	}
	defer rows.Close()
	var chunks []columnChunk
	for rows.Next() {
		var c columnChunk
		var id, dict, data int64
		if err := rows.Scan(&id, &c.codec, &dict, &data, &c.size); err != nil || id < 0 || id >= int64(len(vc.optional)) {
			return nil, false, ctxErr(ctx)
		}
		c.offset, c.optional = data, vc.optional[id]
		if dict >= 4 {
			c.offset = dict
		}
		chunks = append(chunks, c)
	}
	if err := rows.Err(); err != nil {
		return nil, false, ctxErr(ctx)
	}
	return chunks, true, nil
}

// ctxErr returns the context's error, if any: a failed check is otherwise
// a "no".
func ctxErr(ctx context.Context) error { return ctx.Err() }
