package convert

import (
	"fmt"
	"strings"

	"github.com/kura-cc/kura/dataset/table"
)

// layers builds the conversion query's normalisations as nested
// projections: each layer selects every column of the one below and names
// intermediate values, so that a value a normalisation uses several times
// (e164's stripped number, its rewritten form) is computed once per row.
// DuckDB does not share a common subexpression inside CASE, and its
// regular expressions dominate the cost of converting phone numbers.
type layers struct {
	layers [][]string // "expr AS name" per layer, innermost first
	n      int
}

// let names expr, which may refer to names of layers below depth, in
// layer depth; it returns the name and the depth at which it can be used.
func (l *layers) let(expr string, depth int) (string, int) {
	for len(l.layers) <= depth {
		l.layers = append(l.layers, nil)
	}
	l.n++
	name := fmt.Sprintf("__kura_v%d", l.n)
	l.layers[depth] = append(l.layers[depth], expr+" AS "+name)
	return name, depth + 1
}

// from returns src wrapped in the layers.
func (l *layers) from(src string) string {
	q := src
	for _, ly := range l.layers {
		q = "(SELECT *, " + strings.Join(ly, ", ") + " FROM " + q + ")"
	}
	return q
}

// value returns the SQL expression converting column c of the source to
// its schema type and normalising it, NULL where the value is invalid. It
// may name values of the layers, so use it over l.from(source).
func (l *layers) value(sc *table.Schema, c table.Column) string {
	x := ident(c.Name)
	if c.Type != table.String {
		return fmt.Sprintf("TRY_CAST(%s AS %s)", x, c.Type.SQL())
	}
	x = fmt.Sprintf("CAST(%s AS VARCHAR)", x)
	depth := 0
	for _, n := range c.Normalize {
		switch n {
		case table.Trim:
			x = fmt.Sprintf(`regexp_replace(%s, '^[\s\p{Z}]+|[\s\p{Z}]+$', '', 'g')`, x)
		case table.Lower:
			x = fmt.Sprintf("lower(%s)", x)
		case table.E164:
			x, depth = l.e164(x, sc.DefaultCountryCode, depth)
		}
	}
	return x
}

// e164 normalises phone number x to E.164, or NULL when it cannot: it
// strips spaces and punctuation, turns 00 into + and a national number into
// an international one with the schema's default country code, and keeps
// the result if it matches e164Pattern. The stripped and the rewritten
// number are each computed once; a number of digits and '+' alone has
// nothing to strip, so it skips the regular-expression replacement.
func (l *layers) e164(x, cc string, depth int) (string, int) {
	x, depth = l.let(x, depth)
	s, depth := l.let(fmt.Sprintf(`(CASE WHEN regexp_full_match(%s, '[+0-9]*') THEN %s ELSE regexp_replace(%s, '[\s\p{Z}\-\.\(\)/]', '', 'g') END)`, x, x, x), depth)
	national := "NULL"
	if cc != "" {
		national = fmt.Sprintf("'+%s' || (CASE WHEN starts_with(%s, '0') THEN substr(%s, 2) ELSE %s END)", cc, s, s, s)
	}
	r, depth := l.let(fmt.Sprintf("(CASE WHEN starts_with(%s, '+') THEN '+' || substr(%s, 2) WHEN starts_with(%s, '00') THEN '+' || substr(%s, 3) ELSE %s END)", s, s, s, s, national), depth)
	return fmt.Sprintf(`(CASE WHEN regexp_full_match(%s, '%s') THEN %s END)`, r, e164Pattern, r), depth
}
