package analysis

import (
	"errors"

	"github.com/kura-cc/kura/internal/fault"
)

// ErrAnalysis is the family of this package's sentinels: every one below wraps
// it and carries its kind of failure (internal/fault).
var ErrAnalysis = errors.New("analysis failed")

// Sentinel errors. Errors returned by this package wrap one of them (or an
// error of package table for a dataset that does not match its schema);
// test with errors.Is.
var (
	// ErrUnsupportedSQL means custom SQL is not in the accepted shape
	// (docs/spec/analysis.md §3): not a single SELECT, a table function, a
	// subquery, a table other than the datasets read, an aggregate other
	// than count, sum, avg, min and max, a query that does not aggregate.
	ErrUnsupportedSQL = fault.New(ErrAnalysis, fault.Unsupported, "analysis: unsupported SQL")
	// ErrIdentityOutput means an analysis would output, group by, filter on
	// or compute with an identity or join column, which may only appear in
	// a join condition and as the argument of count.
	ErrIdentityOutput = fault.New(ErrAnalysis, fault.Denied, "analysis: identity or join column used outside a join or count")
	// ErrPolicyViolation means an analysis uses a column or an aggregate
	// function that an owner's output policy does not allow.
	ErrPolicyViolation = fault.New(ErrAnalysis, fault.Denied, "analysis: output policy violation")
	// ErrInvalidAnalysis means the analysis is missing or malformed: an
	// unknown id, dataset or column, a filter value of the wrong type.
	ErrInvalidAnalysis = fault.New(ErrAnalysis, fault.Invalid, "analysis: invalid analysis")
	// ErrUnsafeAnalysis means the static check (Check) refused an analysis
	// of a manifest before anyone signs it or any key moves. It wraps the
	// error the worker would return for the same analysis
	// (ErrUnsupportedSQL, ErrIdentityOutput, ErrPolicyViolation,
	// ErrInvalidAnalysis), whose text names the offending expression, and is
	// of kind Invalid whatever that error's kind: the manifest is what is
	// wrong (exit 8, 400 unsafe-analysis).
	ErrUnsafeAnalysis = fault.NewCode(ErrAnalysis, fault.Invalid, "unsafe-analysis", "analysis: refused by the static check")
	// ErrNotLoaded means the analysis reads a dataset that was not loaded.
	ErrNotLoaded = fault.New(ErrAnalysis, fault.Internal, "analysis: dataset not loaded")
	// ErrLocked means a dataset was loaded after the engine was locked
	// down (by its first Run).
	ErrLocked = fault.New(ErrAnalysis, fault.Internal, "analysis: engine is locked down")
	// ErrQueryFailed means DuckDB failed to run the analysis (out of
	// memory, a conversion error, a cancelled context). The message keeps
	// DuckDB's error class but not, for errors raised while reading data,
	// its text, which may quote data values.
	ErrQueryFailed = fault.New(ErrAnalysis, fault.Internal, "analysis: query failed")
	// ErrClosed means the engine was used after Close.
	ErrClosed = fault.New(ErrAnalysis, fault.Internal, "analysis: engine closed")
)
