package analysis

import "errors"

// Sentinel errors. Errors returned by this package wrap one of them (or an
// error of package table for a dataset that does not match its schema);
// test with errors.Is.
var (
	// ErrUnsupportedSQL means custom SQL is not in the accepted shape
	// (docs/spec/analysis.md §3): not a single SELECT, a table function, a
	// subquery, a table other than the datasets read, an aggregate other
	// than count, sum, avg, min and max, a query that does not aggregate.
	ErrUnsupportedSQL = errors.New("analysis: unsupported SQL")
	// ErrIdentityOutput means an analysis would output, group by, filter on
	// or compute with an identity or join column, which may only appear in
	// a join condition and as the argument of count.
	ErrIdentityOutput = errors.New("analysis: identity or join column used outside a join or count")
	// ErrPolicyViolation means an analysis uses a column or an aggregate
	// function that an owner's output policy does not allow.
	ErrPolicyViolation = errors.New("analysis: output policy violation")
	// ErrInvalidAnalysis means the analysis is missing or malformed: an
	// unknown id, dataset or column, a filter value of the wrong type.
	ErrInvalidAnalysis = errors.New("analysis: invalid analysis")
	// ErrNotLoaded means the analysis reads a dataset that was not loaded.
	ErrNotLoaded = errors.New("analysis: dataset not loaded")
	// ErrLocked means a dataset was loaded after the engine was locked
	// down (by its first Run).
	ErrLocked = errors.New("analysis: engine is locked down")
	// ErrQueryFailed means DuckDB failed to run the analysis (out of
	// memory, a conversion error, a cancelled context). The message keeps
	// DuckDB's error class but not, for errors raised while reading data,
	// its text, which may quote data values.
	ErrQueryFailed = errors.New("analysis: query failed")
	// ErrClosed means the engine was used after Close.
	ErrClosed = errors.New("analysis: engine closed")
)
