// Package linediff compares two texts line by line, for people to read:
// the web console shows what a manifest version changed.
package linediff

import "fmt"

// Line is a line of a diff.
type Line struct {
	// Op is " " for a line both texts have, "+" for one only the new
	// text has, "-" for one only the old text has, and "…" for unchanged
	// lines left out.
	Op   string `json:"op"`
	Text string `json:"text"`
}

// MaxLines bounds the lines Diff compares: it builds a table of
// len(a)×len(b) cells.
const MaxLines = 4000

// Diff returns the lines of b against a, by a longest common subsequence:
// every line each has only, and context unchanged lines on either side of
// each change; the unchanged lines between are one "…" line. Texts longer
// than MaxLines are not compared: the answer is one "…" line saying so.
func Diff(a, b []string, context int) []Line {
	if len(a) > MaxLines || len(b) > MaxLines {
		return []Line{{Op: "…", Text: fmt.Sprintf("%d lines against %d: too long to compare", len(a), len(b))}}
	}
	// lcs[i][j] is the length of the longest common subsequence of a[i:]
	// and b[j:].
	lcs := make([][]int32, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int32, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var all []Line
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			all = append(all, Line{" ", a[i]})
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			all = append(all, Line{"-", a[i]})
			i++
		default:
			all = append(all, Line{"+", b[j]})
			j++
		}
	}
	keep := make([]bool, len(all))
	for k, l := range all {
		if l.Op != " " {
			for c := max(0, k-context); c <= min(len(all)-1, k+context); c++ {
				keep[c] = true
			}
		}
	}
	out := []Line{}
	for k, l := range all {
		switch {
		case keep[k]:
			out = append(out, l)
		case len(out) == 0 || out[len(out)-1].Op != "…":
			out = append(out, Line{Op: "…"})
		}
	}
	return out
}
