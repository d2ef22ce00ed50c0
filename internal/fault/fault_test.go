package fault

import (
	"errors"
	"fmt"
	"testing"
)

var (
	errRoot      = errors.New("thing failed")
	errMalformed = NewCode(errRoot, Malformed, "malformed-thing", "malformed thing")
	errDenied    = New(errRoot, Denied, "thing denied")
	errAuth      = New(errRoot, Tampered, "thing authentication failed")
	errWrongKey  = New(errAuth, WrongKey, "thing authentication failed: wrong key")
)

// TestWrappedKeepsKind: wrapping with context keeps the sentinel, its kind,
// its family and its code; the text is the sentinel's own.
func TestWrappedKeepsKind(t *testing.T) {
	for _, err := range []error{errMalformed, fmt.Errorf("parse: %w", errMalformed), fmt.Errorf("a: %w", fmt.Errorf("b: %w", errMalformed)), errors.Join(errors.New("x"), errMalformed)} {
		if KindOf(err) != Malformed || CodeOf(err) != "malformed-thing" || Sentinel(err) != errMalformed {
			t.Errorf("%q: kind %v code %q sentinel %v", err, KindOf(err), CodeOf(err), Sentinel(err))
		}
		for _, target := range []error{errMalformed, errRoot, Malformed} {
			if !errors.Is(err, target) {
				t.Errorf("errors.Is(%q, %q) = false", err, target)
			}
		}
		if errors.Is(err, Denied) || errors.Is(err, errDenied) {
			t.Errorf("%q matches another kind or sentinel", err)
		}
	}
	if errMalformed.Error() != "malformed thing" {
		t.Errorf("text %q", errMalformed)
	}
}

// TestOutermostDecides: the first classified error errors.As meets decides
// the kind and the code, and a nested family keeps the inner sentinel's own
// kind.
func TestOutermostDecides(t *testing.T) {
	cases := []struct {
		err  error
		kind Kind
		code string
	}{
		{fmt.Errorf("%w: %w", errDenied, errMalformed), Denied, ""},
		{fmt.Errorf("%w: %w", errMalformed, errDenied), Malformed, "malformed-thing"},
		{fmt.Errorf("refused: %w", fmt.Errorf("%w: %w", errDenied, errMalformed)), Denied, ""},
		{errWrongKey, WrongKey, ""},
		{fmt.Errorf("%w: %w", Conflict, errMalformed), Conflict, ""},
		{fmt.Errorf("store: %w", Unavailable), Unavailable, ""},
		{errors.New("plain"), Internal, ""},
		{nil, Internal, ""},
	}
	for _, c := range cases {
		if KindOf(c.err) != c.kind || CodeOf(c.err) != c.code {
			t.Errorf("%v: kind %v code %q, want %v %q", c.err, KindOf(c.err), CodeOf(c.err), c.kind, c.code)
		}
	}
	if !errors.Is(errWrongKey, errAuth) || !errors.Is(errWrongKey, Tampered) || !errors.Is(errWrongKey, errRoot) {
		t.Error("a nested family does not match its ancestors")
	}
	if Sentinel(errors.New("plain")) != nil {
		t.Error("Sentinel of an unclassified error is not nil")
	}
}

// TestKinds: every kind has a distinct name, and Kinds lists them all.
func TestKinds(t *testing.T) {
	seen := map[string]bool{}
	for i, k := range Kinds() {
		if int(k) != i || k.String() == "" || seen[k.String()] || k.Error() != k.String() {
			t.Errorf("kind %d: %q", i, k)
		}
		seen[k.String()] = true
	}
	if Kinds()[0] != Internal || Kind(0) != Internal {
		t.Error("Internal is not the zero kind")
	}
	if got := Kind(200).String(); got != "kind(200)" {
		t.Errorf("unknown kind: %q", got)
	}
}
