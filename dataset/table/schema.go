// Package table is a kura dataset's schema: its columns, their types,
// identity and join flags and normalisations (docs/spec/dataset.md §5), and
// the errors of checking data against it. It needs no database: manifests,
// the command line and anything built for the browser use it; package
// dataset/convert checks and converts files against a schema with DuckDB.
package table

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kura-cc/kura/internal/fault"
)

// ErrTable is the family of this package's sentinels: every one below
// wraps it and carries its kind of failure (internal/fault).
var ErrTable = errors.New("table failed")

// Sentinel errors.
var (
	// ErrInvalidSchema: the schema file is malformed or inconsistent.
	ErrInvalidSchema = fault.New(ErrTable, fault.Invalid, "invalid schema")
	// ErrSchemaMismatch is the family of input errors below.
	ErrSchemaMismatch = fault.New(ErrTable, fault.Invalid, "input does not match the schema")
	// ErrMissingColumn: a schema column is not in the input.
	ErrMissingColumn = fmt.Errorf("%w: missing column", ErrSchemaMismatch)
	// ErrExtraColumn: an input column is not in the schema.
	ErrExtraColumn = fmt.Errorf("%w: column not in the schema", ErrSchemaMismatch)
	// ErrTypeMismatch: a value does not convert to its column's type.
	ErrTypeMismatch = fmt.Errorf("%w: wrong type", ErrSchemaMismatch)
	// ErrInvalidValue: a value cannot be normalised (e.g. not a phone number).
	ErrInvalidValue = fmt.Errorf("%w: invalid value", ErrSchemaMismatch)
	// ErrUnreadable: the input is not a well-formed file of its format,
	// e.g. a CSV whose dialect cannot be detected because its lines end
	// differently.
	ErrUnreadable = fault.New(ErrTable, fault.Invalid, "input cannot be read")
	// ErrUnsupportedFormat: the input format is not csv, parquet or jsonl.
	ErrUnsupportedFormat = fault.New(ErrTable, fault.Unsupported, "unsupported input format")
)

// ColumnError locates an input error; it wraps one of the sentinels.
type ColumnError struct {
	Column string
	Row    int64 // 1-based data row, 0 when not about one row
	Err    error
}

// Error describes the column, the row when known, and the problem.
func (e *ColumnError) Error() string {
	if e.Row > 0 {
		return fmt.Sprintf("column %q, row %d: %v", e.Column, e.Row, e.Err)
	}
	return fmt.Sprintf("column %q: %v", e.Column, e.Err)
}

// Unwrap returns the sentinel-wrapping cause.
func (e *ColumnError) Unwrap() error { return e.Err }

// Type is a column type.
type Type string

// Column types.
const (
	String    Type = "string"
	Int64     Type = "int64"
	Double    Type = "double"
	Bool      Type = "bool"
	Date      Type = "date"
	Timestamp Type = "timestamp"
)

var duckTypes = map[Type]string{String: "VARCHAR", Int64: "BIGINT", Double: "DOUBLE", Bool: "BOOLEAN", Date: "DATE", Timestamp: "TIMESTAMP"}

// SQL returns the type's SQL (DuckDB) name, "" for an unknown type.
func (t Type) SQL() string { return duckTypes[t] }

// Normalization is a normalisation step for string columns.
type Normalization string

// Normalisations, applied in the order listed in a column.
const (
	Trim  Normalization = "trim"  // strip leading and trailing white space
	Lower Normalization = "lower" // lower-case
	E164  Normalization = "e164"  // phone number in E.164 form
)

// Column describes one column.
type Column struct {
	Name      string          `yaml:"name" json:"name"`
	Type      Type            `yaml:"type" json:"type"`
	Identity  bool            `yaml:"identity,omitempty" json:"identity,omitempty"`
	Join      bool            `yaml:"join,omitempty" json:"join,omitempty"`
	Normalize []Normalization `yaml:"normalize,omitempty" json:"normalize,omitempty"`
}

// Schema is a dataset schema.
type Schema struct {
	// DefaultCountryCode is the calling code (e.g. "81") e164 prefixes to
	// numbers written without an international prefix.
	DefaultCountryCode string   `yaml:"default_country_code,omitempty" json:"default_country_code,omitempty"`
	Columns            []Column `yaml:"columns" json:"columns"`
}

// ParseSchema parses a schema file, YAML or JSON. Unknown keys are errors.
func ParseSchema(data []byte) (*Schema, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Schema
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSchema, err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

var countryCode = regexp.MustCompile(`^[1-9][0-9]{0,2}$`)

// Validate checks the schema's consistency.
func (s *Schema) Validate() error {
	if len(s.Columns) == 0 {
		return fmt.Errorf("%w: no columns", ErrInvalidSchema)
	}
	if s.DefaultCountryCode != "" && !countryCode.MatchString(s.DefaultCountryCode) {
		return fmt.Errorf("%w: default_country_code %q: want 1 to 3 digits, like \"81\"", ErrInvalidSchema, s.DefaultCountryCode)
	}
	seen := map[string]bool{}
	for i, c := range s.Columns {
		if c.Name == "" {
			return fmt.Errorf("%w: column %d has no name", ErrInvalidSchema, i+1)
		}
		// DuckDB matches identifiers case-insensitively.
		if seen[strings.ToLower(c.Name)] {
			return fmt.Errorf("%w: column %q appears twice", ErrInvalidSchema, c.Name)
		}
		seen[strings.ToLower(c.Name)] = true
		if _, ok := duckTypes[c.Type]; !ok {
			return fmt.Errorf("%w: column %q: type %q: want string, int64, double, bool, date or timestamp", ErrInvalidSchema, c.Name, c.Type)
		}
		done := map[Normalization]bool{}
		for _, n := range c.Normalize {
			switch n {
			case Trim, Lower, E164:
			default:
				return fmt.Errorf("%w: column %q: normalisation %q: want trim, lower or e164", ErrInvalidSchema, c.Name, n)
			}
			if c.Type != String {
				return fmt.Errorf("%w: column %q: normalisation applies to string columns only", ErrInvalidSchema, c.Name)
			}
			if done[n] {
				return fmt.Errorf("%w: column %q: %s listed twice", ErrInvalidSchema, c.Name, n)
			}
			done[n] = true
		}
	}
	return nil
}

// JSON returns the schema as compact JSON, as embedded in sealed headers.
func (s *Schema) JSON() []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // plain structs always marshal
	}
	return b
}
