package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kura-cc/kura/cmd/kura/internal/cli"
	"github.com/kura-cc/kura/cmd/kura/internal/demo"
	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/server"
	"github.com/kura-cc/kura/store"
)

// worker is a `kura worker serve` process and the name it registered as.
type workerProc struct {
	cmd  *exec.Cmd
	name string
}

// startWorker starts `kura worker serve` against url and waits until it
// has registered.
func startWorker(t *testing.T, url string) *workerProc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kura")
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}
	logs, err := os.Create(filepath.Join(dir, "worker.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd := exec.Command(bin, "worker", "serve", "--url", url, "--tee", "sim", "--dev",
		"--poll", "100ms", "--renew", "300ms", "--log-format", "json")
	cmd.Dir, cmd.Stderr = t.TempDir(), logs
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "TMPDIR="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for range 300 {
		data, _ := os.ReadFile(logs.Name())
		for line := range strings.Lines(string(data)) {
			var rec struct{ Msg, Worker string }
			if json.Unmarshal([]byte(line), &rec) == nil && strings.HasPrefix(rec.Msg, "worker registered") {
				return &workerProc{cmd: cmd, name: rec.Worker}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	data, _ := os.ReadFile(logs.Name())
	t.Fatalf("the worker did not register:\n%s", data)
	return nil
}

// TestRunQueue: two `kura worker serve` processes register with the
// airline's coordinator by attestation and serve its queue. Ten runs submitted at once all complete exactly once, each
// with a result bundle and receipt the log kept; a worker SIGKILLed in the
// middle of a run leaves that run to be claimed again, and the retry
// completes on the other worker under the same run id.
func TestRunQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("starts key brokers and two worker processes")
	}
	ctx := context.Background()
	c, err := demo.NewCleanRoom(ctx, demo.CleanRoomConfig{Dir: t.TempDir(), Rows: 500, Version: cli.Version,
		Logger: slog.New(slog.DiscardHandler), Server: func(cfg *server.Config) { cfg.RunLease = 2 * time.Second }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Approve(demo.Airline, demo.Carrier); err != nil {
		t.Fatal(err)
	}
	file, err := c.Collab.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	url := c.Servers[demo.Airline].URL
	airline := &coordinator.Client{BaseURL: url, Identity: c.Parties[demo.Airline]}
	if _, err := airline.Push(ctx, file); err != nil {
		t.Fatal(err)
	}
	an := demo.Analyses()[0].ID

	w1 := startWorker(t, url)
	w2 := startWorker(t, url)
	ids := make([]string, 10)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			r, err := airline.SubmitRun(ctx, c.Collab.ID, an)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = r.ID
		})
	}
	wg.Wait()
	results := map[string]bool{}
	for _, id := range ids {
		r := waitFor(t, airline, id)
		if r.State != store.RunCompleted || r.Attempts != 1 || r.Result == "" || r.Receipt == "" {
			t.Errorf("run %s: %+v, want completed once with a result and a receipt", id, r)
		}
		if results[r.Result] {
			t.Errorf("run %s: result %s delivered twice", id, r.Result)
		}
		results[r.Result] = true
		f, err := fetchKept(t, url, "results", r.Result)
		if err != nil {
			t.Fatal(err)
		}
		if rc, err := result.CheckSigned(f); err != nil || rc.RunID != id {
			t.Errorf("kept result of run %s: run %v, %v", id, rc, err)
		}
	}

	// w1 is killed while it holds a run: the run is claimed again once the
	// lease lapses, and w2 completes it under the same id.
	killed := false
	for range 20 {
		r, err := airline.SubmitRun(ctx, c.Collab.ID, an)
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			s, err := airline.GetRun(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if s.State == store.RunRunning && s.Worker == w1.name {
				w1.cmd.Process.Kill()
				killed = true
				break
			}
			if s.State != store.RunQueued && s.State != store.RunRunning {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if killed {
			s := waitFor(t, airline, r.ID)
			if s.State != store.RunCompleted || s.Attempts != 2 || s.Worker != w2.name {
				t.Errorf("the killed worker's run: %+v, want completed by w2 on the second attempt", s)
			}
			break
		}
	}
	if !killed {
		t.Fatal("w1 never held a run to be killed in")
	}
}

func waitFor(t *testing.T, c *coordinator.Client, id string) *coordinator.RunStatus {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		r, err := c.GetRun(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State == store.RunCompleted || r.State == store.RunFailed {
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("run %s did not finish", id)
	return nil
}

func fetchKept(t *testing.T, url, kind, digest string) (*result.File, error) {
	t.Helper()
	code, body := get(t, http.DefaultClient, fmt.Sprintf("%s/v1/cleanroom/%s/%s", url, kind, digest))
	if code != 200 {
		return nil, fmt.Errorf("GET %s %s: %d %s", kind, digest, code, strings.TrimSpace(body))
	}
	return result.ParseFile([]byte(body))
}
