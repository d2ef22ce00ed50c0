package bench

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// childArgs is the start of a TestXxxProcess that is not a test but a
// child process of another test: it skips t, saying why, unless env is
// "1" in the environment, and returns the arguments after "--".
func childArgs(t *testing.T, env, why string) []string {
	t.Helper()
	if os.Getenv(env) != "1" {
		t.Skip(why)
	}
	return flag.Args()
}

// serveChild is a TestXxxServerProcess: with env "1" in the environment
// it parses the arguments after "--" and runs serve, the server process,
// with this process's stdin, stdout and stderr until SIGINT or SIGTERM or
// until stdin closes, and fails t with an error of either.
func serveChild[C any](t *testing.T, env, why string, parse func(args []string) (C, error), serve func(context.Context, C, io.Reader, io.Writer, io.Writer) error) {
	t.Helper()
	cfg, err := parse(childArgs(t, env, why))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, os.Stdin, os.Stdout, os.Stderr); err != nil {
		t.Fatal(err)
	}
}

// childCommand skips t in -short mode, saying why, and returns the argv
// that runs this test binary as the child process test, a TestXxxProcess:
// the arguments appended to it are the child's.
func childCommand(t *testing.T, test, why string) []string {
	t.Helper()
	if testing.Short() {
		t.Skip(why)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{self, "-test.run=^" + test + "$", "--"}
}

// checkFigures decodes out, a JSON report of n figures from one
// alternated pair, and checks the figures with checkPairs.
func checkFigures(t *testing.T, out []byte, n int) {
	t.Helper()
	var figs []Figure
	if err := json.Unmarshal(out, &figs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(figs) != n {
		t.Fatalf("figures: %s", out)
	}
	checkPairs(t, figs)
}

// checkPairs fails t unless every figure has one positive value a side,
// as one alternated pair gives.
func checkPairs(t *testing.T, figs []Figure) {
	t.Helper()
	for _, f := range figs {
		if len(f.Kura) != 1 || len(f.Base) != 1 || f.Kura[0] <= 0 || f.Base[0] <= 0 {
			t.Errorf("figure %q: %v / %v", f.Name, f.Kura, f.Base)
		}
	}
}

// checkProfile fails t unless path is a non-empty file: the server
// process's CPU profile.
func checkProfile(t *testing.T, path string) {
	t.Helper()
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Errorf("server profile: %v", err)
	}
}
