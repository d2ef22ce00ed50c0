package party

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParseCard checks that ParseCard never panics, and that whatever it
// accepts marshals to a card it accepts again, unchanged.
func FuzzParseCard(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.json")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if _, err := ParseCard(b); err != nil {
			f.Fatalf("seed %s: %v", p, err)
		}
		f.Add(b)
	}
	if len(seeds) == 0 {
		f.Fatal("no seed cards in testdata/*.json")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCard(data)
		if err != nil {
			return
		}
		again, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ParseCard(again)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !reflect.DeepEqual(c.Fingerprint, c2.Fingerprint) || !c.CreatedAt.Equal(c2.CreatedAt) {
			t.Fatal("card changed in a round trip")
		}
	})
}
