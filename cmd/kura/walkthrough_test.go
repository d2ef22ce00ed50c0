package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestWalkthrough runs the newcomer walkthrough, docs/walkthrough.sh, so
// that CI keeps it true: an operator's kura serve with TLS and a config
// file, two owners sealing, uploading and registering data, a collaboration
// created, approved, pushed and pulled, a worker serving the queue, the
// analyst's run fetched, opened and its receipt verified, and the log
// audited, each party in its own directory. The kura the script runs is
// this test binary under the name kura, which TestMain dispatches to the
// CLI, so the simulated worker's measurement is this binary's too.
func TestWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("runs docs/walkthrough.sh: a server, a worker and some forty kura commands")
	}
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("docs/walkthrough.sh needs %s", tool)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "kura")
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}

	timeout := 3 * time.Minute
	if d, ok := t.Deadline(); ok && time.Until(d)-10*time.Second < timeout {
		timeout = time.Until(d) - 10*time.Second
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("..", "..", "docs", "walkthrough.sh"))
	cmd.Env = append(os.Environ(), "KURA="+bin, "TMPDIR="+t.TempDir())
	// On timeout, SIGTERM lets the script's trap stop the server and the
	// worker it started; WaitDelay bounds the wait should it not.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("docs/walkthrough.sh did not finish within %v:\n%s", timeout, out)
	}
	if err != nil {
		t.Fatalf("docs/walkthrough.sh: %v\n%s\n(to keep its files, run it by hand: go build -o /tmp/kura ./cmd/kura && KURA=/tmp/kura KEEP=1 bash docs/walkthrough.sh)", err, out)
	}
	t.Logf("docs/walkthrough.sh:\n%s", out)
}
