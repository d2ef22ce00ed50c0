package policyeval

import (
	"context"
	"testing"
)

func TestMemo(t *testing.T) {
	ctx := context.Background()
	q, err := Prepare(ctx, "data.p.out", "p.rego", "package p\nout := {\"double\": input.x * 2}")
	if err != nil {
		t.Fatal(err)
	}
	if !q.Pure() {
		t.Fatal("pure policy not memoised")
	}
	for _, x := range []int{1, 2, 1} {
		var out struct{ Double int }
		if err := q.Eval(ctx, map[string]any{"x": x}, &out); err != nil || out.Double != 2*x {
			t.Fatalf("x=%d: %+v %v", x, out, err)
		}
	}
	if len(q.memo) != 2 {
		t.Errorf("memo holds %d results, want 2", len(q.memo))
	}
	clock, err := Prepare(ctx, "data.p.out", "p.rego", "package p\nout := {\"t\": sprintf(\"%d\", [time.now_ns()])}")
	if err != nil {
		t.Fatal(err)
	}
	if clock.Pure() {
		t.Error("policy calling time.now_ns was treated as pure")
	}
	if _, err := Prepare(ctx, "data.p.out", "p.rego", "package p\nout := {"); err == nil {
		t.Error("syntax error accepted")
	}
	var out any
	empty, _ := Prepare(ctx, "data.p.out", "p.rego", "package p\nout := 1 if input.never")
	if err := empty.Eval(ctx, map[string]any{}, &out); err == nil {
		t.Error("undefined result accepted")
	}
}
