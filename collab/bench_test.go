package collab

import (
	"encoding/json"
	"testing"
)

func BenchmarkParseManifest(b *testing.B) {
	m, _ := load(b)
	data, _ := json.Marshal(m)
	for b.Loop() {
		if _, err := ParseManifest(data); err != nil {
			b.Fatal(err)
		}
	}
}
