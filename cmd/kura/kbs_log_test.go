package main

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestKBSServeLog: `kura kbs serve --log` gives an owner-run broker its own
// transparency log: /log/ is served, a release is in it (the workload gets
// its inclusion proof, and `kura audit ls` finds it), and `kura kbs audit`
// prints the same decision from the broker's trail. Without --log there is
// no /log/, and the log's flags alone are refused.
func TestKBSServeLog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	dir := t.TempDir()
	keyFile, admins := adminSetup(t, dir)
	data := filepath.Join(dir, "state")
	args := []string{"kbs", "serve", "--dev", "--offline", "--addr", "127.0.0.1:0", "--admin-keys", admins, "--log-level", "warn"}
	srv, url := startKura(t, append(args, "--data", data, "--log")...)
	defer stop(t, srv)
	if code, body := get(t, http.DefaultClient, url+"/log/checkpoint"); code != http.StatusOK || !strings.HasPrefix(body, "kura.local/log\n") {
		t.Fatalf("GET /log/checkpoint: %d %s", code, body)
	}
	if err := os.WriteFile(filepath.Join(dir, "value"), []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	kura(t, dir, "secret", "put", "bench/key/one", "--value-file", "value", "--url", url, "--admin-key", keyFile)
	// The release's inclusion proof comes with it, checked against the
	// broker's log key before the value is output.
	logKey := filepath.Join(data, "log-key.pub")
	if out := kura(t, dir, "kbs", "get-resource", "bench/key/one", "--url", url, "--tee", "sim", "--log-key", logKey); out != "s3cret" {
		t.Fatalf("get-resource --log-key: %q", out)
	}
	out := kura(t, dir, "audit", "ls", "--log", url+"/log/", "--key", logKey, "--kind", "key_release")
	if !strings.Contains(out, "key_release\tdecision=released resource=bench/key/one reason=policy allowed") {
		t.Errorf("audit ls of the broker's log:\n%s", out)
	}
	out = kura(t, dir, "kbs", "audit", "--url", url, "--admin-key", keyFile)
	if !strings.Contains(out, "1\t") || !strings.Contains(out, "\treleased\tresource=bench/key/one tee=sim") {
		t.Errorf("kbs audit:\n%s", out)
	}

	// Without --log: no log, and log settings alone are a usage error.
	bare, bareURL := startKura(t, append(args, "--data", filepath.Join(dir, "bare"))...)
	defer stop(t, bare)
	if code, _ := get(t, http.DefaultClient, bareURL+"/log/checkpoint"); code != http.StatusNotFound {
		t.Errorf("kbs serve without --log: GET /log/checkpoint = %d, want 404", code)
	}
	cmd := exec.Command(filepath.Join(dir, "kura"), append(args, "--data", filepath.Join(dir, "other"), "--log-origin", "owner.example/log")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	var ee *exec.ExitError
	if err := cmd.Run(); !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "add --log") {
		t.Errorf("kbs serve --log-origin without --log: %v\n%s", err, stderr.String())
	}
}
