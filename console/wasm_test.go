package console

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/party"
)

// harness loads the WebAssembly build in Node.js, as a browser would load
// it, calls one of its functions with a file's text and prints the answer.
const harness = `
globalThis.crypto ??= require('crypto').webcrypto; // Node.js before 19
require(process.argv[2]);
const fs = require('fs');
const go = new Go();
WebAssembly.instantiate(fs.readFileSync(process.argv[3]), go.importObject).then((r) => {
  go.run(r.instance);
  console.log(globalThis.kura[process.argv[4]](fs.readFileSync(process.argv[5], 'utf8')));
  process.exit(0);
});
`

// TestWasmVerifiesCollaboration: the console's WebAssembly build, run by a
// JavaScript engine, verifies a collaboration file and reports each
// party's approval exactly as the Go code does natively, and reports a
// tampered approval as the error it is.
func TestWasmVerifiesCollaboration(t *testing.T) {
	if testing.Short() {
		t.Skip("builds for js/wasm and runs Node.js")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is required in CI (.ci/run installs nodejs)")
		}
		t.Skip("no node")
	}
	dir := t.TempDir()
	wasm := filepath.Join(dir, "kura.wasm")
	build := exec.Command("go", "build", "-o", wasm, "github.com/kura-cc/kura/console/wasm")
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "harness.js"), []byte(harness), 0o600)
	run := func(fn string, file []byte) map[string]any {
		t.Helper()
		path := filepath.Join(dir, "input.json")
		os.WriteFile(path, file, 0o600)
		out, err := exec.Command(node, filepath.Join(dir, "harness.js"), filepath.Join(runtime.GOROOT(), "lib", "wasm", "wasm_exec.js"), wasm, fn, path).CombinedOutput()
		if err != nil {
			t.Fatalf("node: %v\n%s", err, out)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(strings.TrimSpace(string(out))), &v); err != nil {
			t.Fatalf("answer %q: %v", out, err)
		}
		return v
	}

	m, err := collab.LoadManifest("../collab/testdata/example/manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example's cards are fixtures without their identities: approve
	// as a party whose card this test replaces, in a manifest of its own.
	id, err := party.Generate("airline", party.KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	m.Parties[0].Card = id.Card()
	m.Datasets[0].Descriptor.Owner = "airline"
	c, err := collab.New(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Approve(id, time.Now()); err != nil {
		t.Fatal(err)
	}
	file, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got := run("verifyCollaboration", file)
	want, _ := json.Marshal(map[string]any{"id": c.ID, "versions": 1, "manifest_hash": c.Current().Hash(), "parties": c.Status(), "manifest": c.Current()})
	gotResult, _ := json.Marshal(got["result"])
	if got["ok"] != true || !jsonEqual(t, gotResult, want) {
		t.Fatalf("in WebAssembly:\n%s\nnatively:\n%s", gotResult, want)
	}
	// One flipped bit of the approval's signature.
	c.Approvals[0].Signature[0] ^= 1
	tampered, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got := run("verifyCollaboration", tampered); got["ok"] != false || !strings.Contains(got["error"].(string), "approval") {
		t.Fatalf("tampered approval: %v", got)
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
