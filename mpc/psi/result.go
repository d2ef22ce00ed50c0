package psi

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Result is what A learns at the end of a session.
type Result struct {
	mode Mode
	size int
	// In ModeRows: match[row] indexes rowsOf for a matched input row, -1
	// otherwise.
	match  []int32
	rowsOf [][]int
	// In ModeGroups: the intersection size of each group, and the
	// indexes into the response's Elements of its matches.
	groups  []int
	matches [][]int
	// requestMatches are, per group, the positions in the response's
	// Reblinded of the group's matches.
	requestMatches [][]int
}

// Size returns the number of distinct identifiers in the intersection.
func (r *Result) Size() int { return r.size }

// Groups returns, in ModeGroups, the number of identifiers of each of A's
// groups (in the order given to NewGroupSender) that B holds; nil in other
// modes.
func (r *Result) Groups() []int { return slices.Clone(r.groups) }

// Matches returns, in ModeGroups, for each of A's groups the indexes into
// the Response's Elements (and so its payloads) of B's identifiers that
// are in the group, in no particular order: what A needs to add up B's
// encrypted payloads per group. It tells A nothing the protocol did not
// (B's elements are shuffled and blinded); nil in other modes.
func (r *Result) Matches() [][]int { return r.matches }

// RequestMatches returns, in ModeGroups, for each of A's groups the
// positions in the Response's Reblinded (and so in the payloads
// Receiver.RespondWithPayloads returned) of the group's matches. B shuffled
// Reblinded within each group, so they do not say which of A's identifiers
// matched; nil in other modes.
func (r *Result) RequestMatches() [][]int { return r.requestMatches }

// Rows returns, in ModeRows, A's input rows whose identifier is in the
// intersection, ascending; nil in ModeCardinality.
func (r *Result) Rows() []int {
	if r.mode != ModeRows {
		return nil
	}
	var rows []int
	for row, m := range r.match {
		if m >= 0 {
			rows = append(rows, row)
		}
	}
	return rows
}

// Group is one released group of an Aggregate.
type Group struct {
	// Key is the A-side dimension value.
	Key string
	// IDs is the number of distinct intersecting identifiers with a row in
	// the group; it is at least the threshold.
	IDs int
	// Rows is the number of A's intersecting rows in the group.
	Rows int
	// Sum is the sum of values over those rows (zero without values).
	Sum int64
}

// Aggregate groups A's intersecting rows by keys[row] and returns, ordered
// by key, the count and the sum of values[row] (values may be nil) of every
// group with at least threshold distinct intersecting identifiers. Groups
// below the threshold are dropped before anything is returned: they appear
// neither as a group nor in any count. threshold must be at least 1;
// Aggregate needs ModeRows.
func (r *Result) Aggregate(keys []string, values []int64, threshold int) ([]Group, error) {
	if r.mode != ModeRows {
		return nil, fmt.Errorf("%w: aggregation needs ModeRows", ErrMode)
	}
	if threshold < 1 {
		return nil, fmt.Errorf("%w: threshold %d, want at least 1", ErrConfig, threshold)
	}
	if len(keys) != len(r.match) || (values != nil && len(values) != len(r.match)) {
		return nil, fmt.Errorf("%w: %d keys and %d values for %d rows", ErrConfig, len(keys), len(values), len(r.match))
	}
	type acc struct {
		ids  map[int32]struct{}
		rows int
		sum  int64
	}
	groups := make(map[string]*acc)
	for row, m := range r.match {
		if m < 0 {
			continue
		}
		g := groups[keys[row]]
		if g == nil {
			g = &acc{ids: make(map[int32]struct{})}
			groups[keys[row]] = g
		}
		g.ids[m] = struct{}{}
		g.rows++
		if values != nil {
			v := values[row]
			if (v > 0 && g.sum > math.MaxInt64-v) || (v < 0 && g.sum < math.MinInt64-v) {
				return nil, fmt.Errorf("%w: group %q", ErrOverflow, keys[row])
			}
			g.sum += v
		}
	}
	var out []Group
	for k, g := range groups {
		if len(g.ids) < threshold {
			continue
		}
		out = append(out, Group{Key: k, IDs: len(g.ids), Rows: g.rows, Sum: g.sum})
	}
	slices.SortFunc(out, func(a, b Group) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}
