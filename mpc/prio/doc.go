// Package prio is the core of kura's secret-shared aggregation: many
// contributors (stores, phones, …) each submit one measurement; two
// non-colluding aggregators, run by different organisations, each see only
// a share of it; a collector learns only the aggregate. It is a small,
// typed API over circl's implementation of Prio3
// (github.com/cloudflare/circl/vdaf/prio3, draft-irtf-cfrg-vdaf-14), with
// the roles of the DAP protocol (draft-ietf-ppm-dap) but no transport yet.
//
// # Roles and flow
//
// A [Task] fixes the measurement type ([TypeCount], [TypeSum] with a bit
// length, [TypeHistogram] with a length, [TypeSumVec]), a random 32-byte
// task id, and the 32-byte verify key that only the two aggregators hold.
// The Prio3 application context is "kura-prio-v1 " || task id, so shares
// of one task are useless in another.
//
//	client:       r := Shard(task.Public(), Sum(v), NewNonce())   // r.Share(0) → aggregator 0, r.Share(1) → aggregator 1
//	aggregator i: pend, ps_i := agg_i.PrepInit(reportShare_i)      // ps_i → aggregator 0
//	aggregator 0: msg := agg_0.PrepSharesToPrep(ps_0, ps_1)        // refuses an invalid report; msg → both
//	aggregator i: agg_i.PrepNext(pend, msg)                        // adds the output share
//	aggregator i: as_i := agg_i.AggregateShare()                   // → collector
//	collector:    Unshard(task.Public(), as_0, as_1, n)            // the aggregate
//
// [Prepare] runs the middle three steps between two in-process aggregators.
// Prio3 prepares in one round: each aggregator's prep share is its share of
// the FLP verifier (plus, for histogram and sumvec, its joint randomness
// part); their sum decides validity.
//
// # Message formats
//
// Every message opens with u8 version = 1, u8 kind, [32]byte task id;
// integers are big-endian; each variable field is u32 length || bytes,
// at most [MaxShareSize]. Decoders refuse anything shorter, longer, or
// with another version, kind or aggregator id; see the MarshalBinary
// methods of [ReportShare], [PrepShare], [PrepMessage] and
// [AggregateShare] for the layouts. The fields named "circl's encoding"
// carry circl's Prio3 encodings unchanged, which the aggregator and
// collector decode with the task's exact lengths, refusing non-canonical
// field elements.
//
// # Security model
//
// Clients send each input share over a confidential, authenticated channel
// to its aggregator (not provided here). Then:
//
//   - Each aggregator alone learns nothing about a single measurement: its
//     input share is uniformly random (the helper's is a 32-byte seed), and
//     the prep shares it sees are shares of a verifier that reveals only
//     whether the measurement is valid. It does learn the task, the report
//     nonces, the report count, and which reports were refused.
//   - The collector learns only the aggregate of the reports that verified,
//     and their number.
//   - If the two aggregators collude (or one organisation runs both), they
//     can add their shares and recover every measurement in the clear.
//     Non-collusion is the whole premise; kura must put the two aggregators
//     in different hands. A collector colluding with one aggregator learns
//     that aggregator's share of the aggregate, which is no more than the
//     aggregate.
//   - A malicious client cannot make the aggregate invalid: a measurement
//     outside its type's range (a sum over the bit length, a histogram
//     with two ones, a count of 2), or a tampered share, fails preparation
//     ([ErrInvalidReport]) except with negligible probability, and is not
//     aggregated. It can still submit a valid but false value (the largest
//     allowed sum, a bucket it did not observe); the range bounds how much
//     one report can move the aggregate, nothing more. It can also submit
//     many reports: limiting reports per client is the caller's job.
//   - Each aggregator refuses a report nonce it has seen ([ErrReplay]), so
//     a report cannot be counted twice. The replay set grows with the task
//     and lives in memory; a deployment must bound tasks in time or persist
//     it. The nonce is marked at [Aggregator.PrepInit], so a tampered copy
//     that arrives first burns the nonce of the genuine report.
//   - Aggregators are trusted for correctness: Prio3 does not stop an
//     aggregator from corrupting its share and so the aggregate, or from
//     dropping reports. The aggregator that combines prep shares decides
//     validity for both.
//   - The aggregate is exact. Minimum batch sizes, thresholds and
//     differential-privacy noise are the caller's to apply to the aggregate
//     before release (or, for noise, by each aggregator on its share);
//     [Unshard] with numReports = 1 reveals that one measurement.
//
// The verify key must stay secret from clients: a client that knows it can
// predict the query randomness and forge a proof for an invalid
// measurement. [Task.Public] drops it, and [VerifyKey] logs as REDACTED.
package prio
