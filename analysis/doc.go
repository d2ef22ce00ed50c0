// Package analysis is the clean-room analysis engine the kura worker runs
// inside the TEE (docs/spec/analysis.md): it loads decrypted datasets into
// an in-memory DuckDB database, runs one approved analysis of a
// collaboration manifest, and enforces the combined output policy of the
// datasets' owners before anything leaves.
//
// # Security model
//
// The plaintext never touches a disk: each dataset's Parquet bytes live in
// an anonymous memory file (MemFile, memfd_create) that DuckDB reads
// through /proc/self/fd; the database is in memory and spilling to disk is
// disabled, so a query that needs more than the memory limit fails rather
// than writing temporary files. Before the first analysis runs, the engine
// locks DuckDB down: no file system or network access except the datasets'
// own memory files, no extension loading, and a locked configuration, so
// that even SQL that slipped past the checks cannot read, write, ATTACH,
// COPY or INSTALL anything.
//
// Declared (aggregate) analyses are compiled to SQL with quoted
// identifiers and bound filter values. Custom SQL is parsed by DuckDB into
// its syntax tree (json_serialize_sql) and accepted only in a restricted
// shape: one SELECT over the datasets, joined on their join columns, that
// aggregates, in which identity and join columns appear only in join
// conditions and as the argument of count. Check runs these checks without
// data, so that a manifest is refused before it is signed and before any key
// is released (docs/spec/manifest.md §2.4). Either way the engine adds
// hidden count(DISTINCT identity) columns for every dataset in the query
// and suppresses each output row behind fewer distinct identities of any
// dataset than the strictest owner's minimum.
//
// An aggregate analysis under privacy (docs/spec/analysis.md §7) is
// released with differential privacy instead: each unit (an identity of
// the from dataset) keeps one row, chosen by a keyed hash in the SQL; sums
// are clipped; each count and sum gets discrete Laplace noise at its share
// of ε (package privacy); and a group is output only if a noisy count
// reaches the minimum. ReleaseExact applies the same release to exact
// counts and clamped sums computed by the cryptographic backend.
//
// The output (Result) has a canonical JSON encoding whose SHA-256 the
// worker signs.
package analysis
