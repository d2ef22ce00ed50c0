package table

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseSchema(t *testing.T) {
	bad := map[string]string{
		"unknown key":        "columns: [{name: a, type: string, secret: true}]",
		"unknown top key":    "colums: [{name: a, type: string}]",
		"no columns":         "columns: []",
		"bad type":           "columns: [{name: a, type: varchar}]",
		"duplicate":          "columns: [{name: a, type: string}, {name: A, type: int64}]",
		"normalize non-text": "columns: [{name: a, type: int64, normalize: [trim]}]",
		"bad normalize":      "columns: [{name: a, type: string, normalize: [upper]}]",
		"bad country code":   "default_country_code: '+81'\ncolumns: [{name: a, type: string}]",
		"no name":            "columns: [{type: string}]",
	}
	for name, s := range bad {
		if _, err := ParseSchema([]byte(s)); !errors.Is(err, ErrInvalidSchema) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// JSON is accepted, and JSON() round-trips.
	sc, err := ParseSchema([]byte(`columns: [{name: email, type: string, identity: true, join: true, normalize: [trim, lower]}, {name: n, type: int64}]`))
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseSchema(sc.JSON())
	if err != nil || !reflect.DeepEqual(sc, again) {
		t.Fatalf("JSON round trip: %v", err)
	}
}
