// Package brokerlog copies a key broker's release decisions into the
// transparency log as key_release entries (docs/spec/auditlog.md §7). It is
// the bridge between the two: the log knows nothing of key brokers, and the
// broker knows only its keybroker.AuditSink.
//
// Follower is what kura serve uses: the broker's store is the durable
// record (a decision is acknowledged once stored) and the follower appends
// each stored record shortly after, resuming from a cursor file after a
// restart, so logging never holds up a release. Sink appends synchronously,
// before the broker answers, for deployments that want that trade. A
// decision on a clean-room run's request names the run (collaboration,
// run, manifest, analysis), so a collaboration's entries include every
// key released, or refused, to its runs.
//
// # Security model
//
// Entries carry digests and reasons, never secrets: the record's text
// fields are cleaned (valid UTF-8, no control characters) and cut to
// auditlog.MaxFieldSize, so whatever a client sent, the decision is logged
// and cannot forge the shape of another entry. Every stored release
// decision reaches the log at least once (the owner API's refusals, which
// share the broker's trail, never do); a crash between an append and the
// cursor write logs one twice, with the same broker_seq, which readers
// count once.
package brokerlog
