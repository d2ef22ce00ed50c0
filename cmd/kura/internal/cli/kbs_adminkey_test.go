package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-cc/kura/keybroker"
)

// TestKBSAdminKey: 'kura kbs admin-key' prints a line that binds the key to
// the repositories of --repos (by default the one named like the key), or
// marks it --operator, and that a broker loads; a key that could own
// nothing is refused before it is created.
func TestKBSAdminKey(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) (int, string) {
		var out, errOut strings.Builder
		code := Run(context.Background(), append([]string{"kbs", "admin-key"}, args...), Env{Stdout: &out, Stderr: &errOut, Getenv: os.Getenv})
		return code, out.String() + errOut.String()
	}
	var lines []string
	for _, c := range []struct {
		args []string
		tail string
	}{
		{[]string{"--name", "airline", "--repos", "airline,airline-archive"}, " airline repos=airline,airline-archive"},
		{[]string{"--name", "carrier"}, " carrier"},
		{[]string{"--name", "ops", "--operator"}, " ops operator"},
	} {
		code, out := run(append(c.args, "-o", filepath.Join(dir, c.args[1]+".pem"))...)
		if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), c.tail) {
			t.Errorf("admin-key %v: exit %d\n%s", c.args, code, out)
		}
		lines = append(lines, out)
	}
	admins := filepath.Join(dir, "admins")
	if err := os.WriteFile(admins, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := keybroker.LoadAdmins(admins, nil); err != nil {
		t.Errorf("the printed lines do not load: %v", err)
	}
	for _, bad := range [][]string{
		{"--name", "ops", "--operator", "--repos", "x"},
		{"--name", "alice@example.com"},
		{"--name", "x", "--repos", "a/b"},
	} {
		key := filepath.Join(dir, "bad.pem")
		if code, out := run(append(bad, "-o", key)...); code != ExitUsage {
			t.Errorf("admin-key %v: exit %d, want %d\n%s", bad, code, ExitUsage, out)
		}
		if _, err := os.Stat(key); err == nil {
			t.Errorf("admin-key %v created a key", bad)
		}
	}
}
