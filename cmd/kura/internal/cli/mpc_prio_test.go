package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kura-cc/kura/server"
)

// lateHandler serves a handler installed after the server started.
type lateHandler struct {
	mu sync.Mutex
	h  http.Handler
}

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	h := l.h
	l.mu.Unlock()
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h.ServeHTTP(w, r)
}

// TestMPCPrio: kura mpc task new, submit and collect end to end against a
// leader and a helper, each a kura server with only the aggregator role:
// the collector gets the exact sum, once, and only past min_batch_size.
func TestMPCPrio(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers")
	}
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	for _, name := range []string{"leader", "helper", "collector"} {
		mustRun(t, "party", "init", name+" org", "-o", p(name))
	}
	var hs [2]*lateHandler
	var urls [2]string
	for i := range hs {
		hs[i] = &lateHandler{}
		srv := httptest.NewServer(hs[i])
		t.Cleanup(srv.Close)
		urls[i] = srv.URL
	}
	code, out := run(context.Background(), "mpc", "task", "new", "--type", "sum", "--bits", "8", "--min-batch", "20",
		"--leader", urls[0], "--helper", urls[1], "--leader-card", p("leader/card.json"), "--helper-card", p("helper/card.json"),
		"--collector-card", p("collector/card.json"), "-o", p("task"))
	if code != ExitOK {
		t.Fatalf("mpc task new: exit %d\n%s", code, out)
	}
	for name, want := range map[string]os.FileMode{"leader.json": 0o600, "helper.json": 0o600, "task.json": 0o644} {
		fi, err := os.Stat(p("task/" + name))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want mode %o", name, fi.Mode(), err, want)
		}
	}
	for i, role := range []string{"leader", "helper"} {
		s, err := server.New(context.Background(), server.Config{DataDir: p(role + "-data"), Roles: []server.Role{server.RoleAggregator},
			Logger: slog.New(slog.DiscardHandler), Aggregator: server.Aggregator{TaskFiles: []string{p("task/" + role + ".json")}, IdentityDir: p(role)}})
		if err != nil {
			t.Fatalf("%s server: %v", role, err)
		}
		t.Cleanup(func() { s.Close(context.Background()) })
		hs[i].mu.Lock()
		hs[i].h = s.Handler()
		hs[i].mu.Unlock()
	}
	task := p("task/task.json")
	mustRun(t, "mpc", "submit", task, "--value", "5", "--count", "15")
	if code, out := run(context.Background(), "mpc", "collect", task, "--identity", p("collector")); code != ExitPolicy || !strings.Contains(out, "15 reports aggregated; its min_batch_size is 20") {
		t.Errorf("collect below min_batch_size: exit %d, want %d\n%s", code, ExitPolicy, out)
	}
	mustRun(t, "mpc", "submit", task, "--value", "200", "--count", "5")
	if code, out := run(context.Background(), "mpc", "submit", task, "--value", "256"); code != ExitUsage {
		t.Errorf("value over 8 bits: exit %d, want %d\n%s", code, ExitUsage, out)
	}
	if code, out := run(context.Background(), "mpc", "collect", task, "--identity", p("helper")); code != ExitUsage || !strings.Contains(out, "the task's collector is collector org") {
		t.Errorf("collect as the helper: exit %d\n%s", code, out)
	}
	code, out = run(context.Background(), "mpc", "collect", task, "--identity", p("collector"), "--json")
	var res struct {
		Reports   uint64   `json:"reports"`
		Aggregate []uint64 `json:"aggregate"`
	}
	if code != ExitOK || json.Unmarshal([]byte(out), &res) != nil || res.Reports != 20 || len(res.Aggregate) != 1 || res.Aggregate[0] != 15*5+5*200 {
		t.Fatalf("collect: exit %d\n%s", code, out)
	}
	if code, out := run(context.Background(), "mpc", "collect", task, "--identity", p("collector")); code != ExitFailure || !strings.Contains(out, "already collected") {
		t.Errorf("second collection: exit %d\n%s", code, out)
	}
	// The aggregator's task file must not be readable by others.
	os.Chmod(p("task/leader.json"), 0o644)
	if code, out := run(context.Background(), "serve", "--roles", "aggregator", "--data", p("x"), "--addr", "127.0.0.1:0",
		"--aggregator-task", p("task/leader.json"), "--aggregator-identity", p("leader")); code != ExitWrongKey {
		t.Errorf("serve with a 0644 task file: exit %d, want %d\n%s", code, ExitWrongKey, out)
	}
}
