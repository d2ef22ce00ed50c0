package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kura-cc/kura/keybroker"
)

// startKura runs this test binary as the kura command (testscript.Main
// dispatches on the program name) and returns the server's base URL.
func startKura(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "kura")
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if url, ok := strings.CutPrefix(lines.Text(), "kura listening on "); ok {
			go func() {
				for lines.Scan() {
				}
			}()
			return cmd, url
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("kura did not start: %v", lines.Err())
	return nil, ""
}

// TestKeyBrokerCrashSafety kills `kura kbs serve` with SIGKILL in the middle
// of a burst of writes, restarts it on the same state, and checks that every
// acknowledged write is there.
func TestKeyBrokerCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	ctx := context.Background()
	data := t.TempDir()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	keys := filepath.Join(data, "admins")
	if err := os.WriteFile(keys, []byte(keybroker.AuthorizedKeyLine(pub, "owner", "crash")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"kbs", "serve", "--addr", "127.0.0.1:0", "--data", data, "--admin-keys", keys, "--offline", "--log-level", "warn"}

	srv, url := startKura(t, args...)
	admin := &keybroker.AdminClient{BaseURL: url, Key: priv}
	var (
		mu    sync.Mutex
		acked = map[string]int64{}
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				path := fmt.Sprintf("crash/key/w%d-%d", w, i)
				v, err := admin.Put(ctx, path, []byte(path), nil, "")
				if err != nil {
					return // the server is gone
				}
				mu.Lock()
				acked[path] = v
				mu.Unlock()
			}
		}()
	}
	killWhen(t, srv, 200, func() int { mu.Lock(); defer mu.Unlock(); return len(acked) })
	close(stop)
	wg.Wait()

	srv2, url2 := startKura(t, args...)
	defer func() { srv2.Process.Signal(syscall.SIGTERM); srv2.Wait() }()
	admin.BaseURL = url2
	metas, err := admin.List(ctx, "crash/")
	if err != nil {
		t.Fatalf("store did not reopen cleanly: %v", err)
	}
	have := map[string]int64{}
	for _, m := range metas {
		have[m.Path] = m.Version
	}
	for path, v := range acked {
		if have[path] != v {
			t.Errorf("acknowledged write %s v%d lost after SIGKILL (have v%d)", path, v, have[path])
		}
	}
	t.Logf("%d writes acknowledged before SIGKILL, %d present after restart", len(acked), len(have))
}

// killWhen waits until count reaches n acknowledged operations, then kills
// srv with SIGKILL, mid-load, and reaps it.
func killWhen(t *testing.T, srv *exec.Cmd, n int, count func() int) {
	t.Helper()
	for count() < n {
		time.Sleep(5 * time.Millisecond)
	}
	if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.Wait()
}
