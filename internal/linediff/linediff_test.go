package linediff

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestDiff: a changed line shows as - then +, with context, and the rest
// is left out.
func TestDiff(t *testing.T) {
	a := strings.Split("a\nb\nc\nd\ne\nf\ng\nh", "\n")
	b := strings.Split("a\nb\nc\nd\nE\nf\ng\nh\ni", "\n")
	got := Diff(a, b, 1)
	want := []Line{{"…", ""}, {" ", "d"}, {"-", "e"}, {"+", "E"}, {" ", "f"}, {"…", ""}, {" ", "h"}, {"+", "i"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	if got := Diff(a, a, 3); !reflect.DeepEqual(got, []Line{{"…", ""}}) {
		t.Fatalf("same text: %q", got)
	}
	if got := Diff(make([]string, MaxLines+1), nil, 3); len(got) != 1 || got[0].Op != "…" {
		t.Fatalf("too long: %q", got)
	}
}

// FuzzDiff: with all context kept, the old text is the diff's " " and "-"
// lines and the new text its " " and "+" lines, and no line is both
// removed and added in place of itself.
func FuzzDiff(f *testing.F) {
	f.Add("a\nb\nc", "a\nc\nd")
	f.Add("", "x")
	f.Add("x\nx\ny", "y\nx\nx")
	f.Fuzz(func(t *testing.T, x, y string) {
		a, b := strings.Split(x, "\n"), strings.Split(y, "\n")
		if len(a) > 200 || len(b) > 200 {
			return
		}
		d := Diff(a, b, len(a)+len(b))
		var old, cur []string
		for _, l := range d {
			switch l.Op {
			case " ":
				old, cur = append(old, l.Text), append(cur, l.Text)
			case "-":
				old = append(old, l.Text)
			case "+":
				cur = append(cur, l.Text)
			default:
				if !slices.Equal(a, b) {
					t.Fatalf("%q left out lines of a diff with every line kept", l)
				}
			}
		}
		if !slices.Equal(a, b) && (!slices.Equal(old, a) || !slices.Equal(cur, b)) {
			t.Fatalf("diff %q does not give back %q and %q", d, a, b)
		}
	})
}
