package result

import (
	"os"
	"os/exec"
	"testing"
)

// TestBuildsForWasm: what a party checks offline — collaborations,
// approvals, cards, result bundles, receipts and log proofs — builds for
// WebAssembly, so that a browser can run the same checks as kura result
// open. No database engine or POSIX-only storage may creep into it.
func TestBuildsForWasm(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles for js/wasm")
	}
	cmd := exec.Command("go", "build", "-o", os.DevNull, "github.com/kura-cc/kura/result", "github.com/kura-cc/kura/collab", "github.com/kura-cc/kura/party")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=js GOARCH=wasm go build: %v\n%s", err, out)
	}
}
