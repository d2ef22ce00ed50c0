package collab

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoDatabase: manifests, approvals and verification need no database
// engine (DuckDB is cgo), so that they build anywhere — for the browser's
// WebAssembly too.
func TestNoDatabase(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/kura-cc/kura/collab", "github.com/kura-cc/kura/party").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for dep := range strings.Lines(string(out)) {
		if strings.Contains(dep, "duckdb") {
			t.Errorf("collab or party depends on %s", strings.TrimSpace(dep))
		}
	}
}
