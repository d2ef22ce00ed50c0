// Package privacy is kura's differential-privacy core: exact samplers for
// the discrete Laplace and discrete Gaussian mechanisms, exact privacy
// parameters, and a budget accountant that refuses a release once a
// dataset's ε is spent.
//
// A clean room releases a statistic f(D) of a dataset D as f(D) + Z, where
// Z is drawn by a Mechanism: Laplace (ε-DP, scale Δ/ε) or Gaussian (ρ-zCDP,
// σ² = Δ²/(2ρ)), Δ being the sensitivity of f, the most f changes when one
// person's records are added or removed. The caller reserves ε from a
// Budget first, adds the noise with AddNoise, then commits:
//
//	lap, err := privacy.NewLaplace(1, eps) // a count: sensitivity 1
//	...
//	res, err := budget.Reserve(ctx, lap.Epsilon())
//	if err != nil {
//		return err // errors.Is(err, privacy.ErrBudgetExhausted): refuse
//	}
//	noisy, err := privacy.AddNoise(count, lap, nil) // crypto/rand
//	if cerr := res.Commit(ctx); cerr != nil {
//		return cerr // do not release noisy unless the spend is recorded
//	}
//
// The samplers are Algorithms 1–3 of Canonne, Kamath and Steinke, "The
// Discrete Gaussian for Differential Privacy" (NeurIPS 2020): Bernoulli
// trials of probability exp(-γ) for rational γ, built from uniform integers
// and exact comparisons; a geometric from those; the discrete Laplace from
// the geometric; the discrete Gaussian from the discrete Laplace by
// rejection. They read a uniform random source, crypto/rand unless a caller
// passes another (tests pass a seeded one).
//
// # Real-valued statistics
//
// Noise is an integer added to an integer. To release a real-valued
// statistic, fix a resolution r, clip each contribution to a range, and
// compute on the integer grid: a sum of amounts clipped to [0, 1000.00] at r
// = 0.01 is a sum of integers in [0, 100000] (cents), whose sensitivity is
// 100000; release the noisy integer sum and divide by 100 only for display.
// The resolution and the clipping range are part of what is published with
// the result. A mean is a noisy sum over a noisy count (each charged), or a
// sum over a public count.
//
// # Security model
//
// What is guaranteed: each value released through a Laplace mechanism with
// parameter ε, for a query whose sensitivity is the stated Δ, is ε-DP: for
// any two datasets that differ in one person, any output is at most e^ε as
// likely under one as under the other. The guarantee rests on the
// sensitivity being right (contributions bounded, by clipping, before the
// query runs) and on the random source being uniform and secret. Releases
// compose additively: k releases at ε₁…εₖ are (ε₁+…+εₖ)-DP, and the Budget
// enforces a total on that sum, atomically, across every process sharing
// its Store. A Gaussian release is ρ-zCDP, which composes additively in ρ;
// the Budget does not account it.
//
// What is not guaranteed: group privacy (k people who act together, or one
// person with k records, get kε, not ε); protection against side channels
// (sampling time depends on the noise drawn, and an observer who times a
// release learns about the noise); and a budget stronger than its Store (a
// store that forgets or rolls back writes gives ε back; a process that
// crashes holding a reservation keeps it reserved, which errs towards
// spending). ε itself is a policy choice this package does not make, beyond
// refusing ε above 100.
//
// Why no floating point: a mechanism computed in floats (a Laplace sample
// as scale·log(u) of a uniform double) has gaps and a non-uniform spread of
// low-order bits that depend on the true value, so that from an output one
// can tell which of two neighbouring datasets produced it, breaking the
// guarantee entirely (Mironov, "On Significance of the Least Significant
// Bits for Differential Privacy", CCS 2012). Here every parameter is an
// exact rational (Epsilon and Rho parse decimals like "0.5" exactly),
// every probability is a ratio of integers, the noise is an integer and the
// sum is an integer: the output has exactly the distribution the proofs
// assume. Float64 exists for display only.
package privacy
