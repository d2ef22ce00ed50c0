package analysis

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

// Result is the output of one analysis after the output policy: the rows
// that passed, how many were suppressed, the thresholds applied, and the
// SQL that ran. Its canonical encoding (Encode) is what the worker
// encrypts to the receivers and signs the digest of.
type Result struct {
	// AnalysisID is the manifest's id of the analysis.
	AnalysisID string `json:"analysis"`
	// Columns are the output columns, in order.
	Columns []Column `json:"columns"`
	// Rows are the output rows that passed the thresholds, sorted by their
	// JSON encoding. Values are JSON-safe: nil, bool, string (dates as
	// YYYY-MM-DD, timestamps as RFC 3339 in UTC, non-finite doubles as
	// "NaN", "Infinity", "-Infinity"), json.Number (integers, decimals
	// and 128-bit integers, exact), float64, or lists of those.
	Rows [][]any `json:"rows"`
	// SuppressedRows counts the rows withheld because some dataset had
	// fewer distinct identities behind them than required.
	SuppressedRows int `json:"suppressed_rows"`
	// Thresholds are the minimum distinct identities required of each
	// dataset in the query.
	Thresholds []Threshold `json:"thresholds"`
	// SQL is the statement that ran, hidden threshold columns included;
	// Params are its bound parameters.
	SQL    string `json:"sql"`
	Params []any  `json:"params,omitempty"`
	// Privacy, for an analysis released with differential privacy, says
	// how (docs/spec/analysis.md §7); absent otherwise.
	Privacy *PrivacyRelease `json:"privacy,omitempty"`
}

// Column is an output column: its name and DuckDB type (BIGINT, DOUBLE,
// VARCHAR, HUGEINT, DATE, ...).
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Threshold is the rule applied to one dataset (one table instance) of the
// query: every output row had at least MinDistinctIdentities distinct
// values of each of IdentityColumns (or that many rows when the dataset
// declares no identity column).
type Threshold struct {
	Dataset               string   `json:"dataset"`
	Alias                 string   `json:"alias,omitempty"` // custom SQL: the table's alias
	IdentityColumns       []string `json:"identity_columns"`
	MinDistinctIdentities int      `json:"min_distinct_identities"`
}

// Encode returns the canonical encoding of the result: compact JSON with
// the fields in the order declared above and rows sorted by their own
// JSON encoding (bytewise). Two runs that computed the same output encode
// to the same bytes.
func (r *Result) Encode() ([]byte, error) {
	c := *r
	var err error
	if c.Rows, err = sortRows(r.Rows); err != nil {
		return nil, err
	}
	if c.Rows == nil {
		c.Rows = [][]any{}
	}
	if c.Columns == nil {
		c.Columns = []Column{}
	}
	if c.Thresholds == nil {
		c.Thresholds = []Threshold{}
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("analysis: encode result: %w", err)
	}
	return b, nil
}

// Digest returns the lowercase hex SHA-256 of Encode's output, or "" when
// the result does not encode (never for a Result returned by Run).
func (r *Result) Digest() string {
	b, err := r.Encode()
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// sortRows returns the rows sorted by their JSON encoding, bytewise.
func sortRows(rows [][]any) ([][]any, error) {
	enc := make([][]byte, len(rows))
	for i, row := range rows {
		b, err := json.Marshal(row)
		if err != nil {
			return nil, fmt.Errorf("analysis: encode row %d: %w", i, err)
		}
		enc[i] = b
	}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return bytes.Compare(enc[a], enc[b]) })
	out := make([][]any, len(rows))
	for i, j := range idx {
		out[i] = rows[j]
	}
	return out, nil
}

// jsonValue converts a value scanned from DuckDB into a JSON-safe one;
// dbType is the column's DuckDB type name.
func jsonValue(v any, dbType string) (any, error) {
	switch x := v.(type) {
	case nil, bool, string, json.Number:
		return x, nil
	case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
		return json.Number(fmt.Sprint(x)), nil
	case float32:
		return jsonFloat(float64(x)), nil
	case float64:
		return jsonFloat(x), nil
	case *big.Int:
		return json.Number(x.String()), nil
	case duckdb.Decimal:
		return json.Number(x.String()), nil
	case time.Time:
		if dbType == "DATE" {
			return x.UTC().Format(time.DateOnly), nil
		}
		return x.UTC().Format(time.RFC3339Nano), nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			var err error
			if out[i], err = jsonValue(e, ""); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: output values of type %s (%T) are not supported: cast them to VARCHAR or a number", ErrUnsupportedSQL, dbType, v)
}

func jsonFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}
