// Package aggregator is kura's secret-shared aggregation service: the HTTP
// API of the two Prio3 aggregators (package mpc/prio) that many
// contributors send reports to and one collector collects from, and the
// contributor's and collector's clients. `kura serve --roles aggregator`
// runs a [Service]; `kura mpc` is the CLI. The wire format is in
// docs/spec/prio.md.
//
// # Flow
//
// A task (a [Task], from a task file) names the measurement type, the two
// aggregators — the leader and the helper, run by different organisations
// — by URL and party card, the collector's party card, and min_batch_size.
//
//	contributor → leader   POST /v1/prio/tasks/{task}/reports    public share, leader share, helper share sealed to the helper
//	leader      → helper   POST /v1/prio/tasks/{task}/aggregate  signed by the leader: a job of up to BatchSize reports
//	                                                             and the leader's prep share of each; the helper prepares
//	                                                             each report, combines the prep shares, aggregates, and
//	                                                             answers each report's prep message (or why it refused it)
//	collector   → each     POST /v1/prio/tasks/{task}/collect    signed by the collector: the aggregate share sealed to the
//	                                                             collector, and the report count
//
// The leader initialises each report when it arrives and sends reports to
// the helper once BatchSize are queued, and the rest when the collector
// asks. The helper combines the prep shares (Prio3 prepares in one round),
// as in DAP's ping-pong topology, so a job is one request. A task is one
// batch: it is collected once, after which both aggregators refuse its
// reports and jobs; start a new task for the next period.
//
// # Task files
//
// A task file is JSON:
//
//	{
//	  "version": 1,
//	  "task_id": "<64 hex>",
//	  "vdaf": {"type": "sum", "bits": 16},       // count | sum (bits) | histogram (length) | sumvec (bits, length)
//	  "leader_url": "https://leader.example",
//	  "helper_url": "https://helper.example",
//	  "leader": {party card}, "helper": {party card}, "collector": {party card},
//	  "min_batch_size": 100,
//	  "role": "leader",                          // an aggregator's file only
//	  "verify_key": "<64 hex>"                   // an aggregator's file only: secret
//	}
//
// An aggregator's own file holds the verify key the two aggregators share,
// so [LoadTask] refuses it when group or others can read or write it
// (internal/keyfile). A public task file, for contributors and the
// collector, has neither role nor verify_key.
//
// # Security model
//
// Guaranteed, if the two aggregators do not collude:
//   - Neither aggregator alone learns any contributor's measurement: the
//     leader sees the helper's share only sealed to the helper (HPKE to the
//     helper's card, bound to the task, the nonce and the public share, so
//     the leader cannot replay it under another nonce), and each
//     aggregator's share alone is uniformly random (package prio).
//   - The collector learns only the aggregate of the batch, and only once
//     the batch holds at least min_batch_size reports that verified; each
//     aggregator answers one collection per task, to the task's collector
//     only (its signature, internal/httpsig), sealed to the collector's
//     card. Another party, or the collector of another task, is refused.
//   - Only the task's leader may send the helper aggregation jobs (its
//     signature). A report nonce is accepted once per aggregator; the
//     nonces and the collected flag are kept in State (the server's store),
//     so they survive restarts.
//   - A report whose proof does not verify, or whose helper share was
//     tampered with, is not aggregated by either aggregator, and the rest
//     of the batch is.
//
// Not guaranteed:
//   - Aggregators that collude (or one organisation running both) recover
//     every measurement. A collector colluding with one aggregator learns
//     no more than the aggregate.
//   - A malicious aggregator can drop reports, or corrupt its share and so
//     the aggregate (Prio3 verifies clients, not aggregators); the
//     collector notices only a disagreement in the report counts.
//   - min_batch_size counts reports, not people: Sybil contributors (or the
//     leader itself, which can make reports) can pad a batch with reports
//     of known values to reach it, and isolate one honest report. Bound
//     who may submit (authenticate contributors in front of the leader) or
//     add differential-privacy noise if that matters.
//   - A valid but false measurement is aggregated; the type's range bounds
//     how far one report moves the aggregate.
//   - The aggregate shares live in memory: a restart of either aggregator
//     loses the batch (the collector then sees the counts disagree, or a
//     batch too small) — the nonces and the collected flag do not, so a
//     restart cannot make a report count twice or a batch be collected
//     twice. The leader's queue of reports not yet sent to the helper is
//     lost too. Restarting means starting a new task.
//   - A job the helper answered but whose answer the leader lost is not
//     sent again (its nonces are used): the counts then disagree and the
//     collection fails with [ErrMismatch].
//   - Contributors are not authenticated; the server's per-address rate
//     limit is the only bound on how many reports one sends.
package aggregator
