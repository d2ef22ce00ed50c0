package auditlog_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kura-cc/kura/auditlog"
)

// TestCrashChild is the child process of TestCrashSafety: it appends from
// 8 goroutines until killed, printing "acked INDEX RUN" for each
// acknowledged entry.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("KURA_AUDITLOG_CRASH_DIR")
	if dir == "" {
		t.Skip("child process of TestCrashSafety")
	}
	k, err := auditlog.LoadSignerKey(filepath.Join(dir, "log.key"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(context.Background(), auditlog.Config{Dir: filepath.Join(dir, "log"), Key: k})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i += 8 {
				e := entry(i)
				idx, err := l.Append(context.Background(), e)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					return
				}
				mu.Lock()
				fmt.Printf("acked %d %s\n", idx, e.Run)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestCrashSafety kills an appending process with SIGKILL, reopens the
// log, and checks that every acknowledged entry is there at its index and
// that the log passes a full audit.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	k := newKey(t, "kura.test/log")
	if err := k.WriteFile(filepath.Join(dir, "log.key")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), "KURA_AUDITLOG_CRASH_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]string{}
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 500 {
		var idx uint64
		var run string
		if n, _ := fmt.Sscanf(sc.Text(), "acked %d %s", &idx, &run); n == 2 {
			acked[idx] = run
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Entries acknowledged while the signal was on its way count too.
	for sc.Scan() {
		var idx uint64
		var run string
		if n, _ := fmt.Sscanf(sc.Text(), "acked %d %s", &idx, &run); n == 2 {
			acked[idx] = run
		}
	}
	cmd.Wait()
	if len(acked) == 0 {
		t.Fatal("child acknowledged nothing")
	}
	var last uint64
	for i := range acked {
		last = max(last, i)
	}

	l := openLog(t, filepath.Join(dir, "log"), k)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.Prove(ctx, last); err != nil {
		t.Fatalf("acknowledged entry %d not in the reopened log: %v", last, err)
	}
	for i, run := range acked {
		p, err := l.Prove(ctx, i)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		e, err := auditlog.ParseEntry(p.Entry)
		if err != nil || e.Run != run {
			t.Fatalf("entry %d: %v, run %q, acknowledged %q", i, err, e.Run, run)
		}
	}
	// The log still takes entries after the crash, and audits clean.
	if _, err := l.AppendAndProve(ctx, entry(1<<20)); err != nil {
		t.Fatal(err)
	}
	r, err := auditlog.NewReader(filepath.Join(dir, "log"), k.Verifier(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Verify(ctx, auditlog.VerifyOptions{Full: true})
	if err != nil {
		t.Fatalf("full audit after crash: %v", err)
	}
	t.Logf("%d entries acknowledged before SIGKILL (highest %d); log size %d after restart", len(acked), last, rep.Size)
}
