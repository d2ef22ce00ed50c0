package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// zeros yields zero bytes forever.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// peakRSS returns a process's peak resident set (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// TestIntakeMemory: 32 concurrent anonymous 64 MiB uploads to each of the
// log's intake endpoints (half with a declared length, half chunked) leave
// `kura serve` under 200 MB of resident memory, answering every upload and
// then /healthz. Bodies are bounded per route and by one upload budget
// before they are read.
func TestIntakeMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process and uploads 8 GiB over loopback")
	}
	data := t.TempDir()
	srv, url := startKura(t, "serve", "--dev", "--tls-self-signed=false", "--roles", "log", "--addr", "127.0.0.1:0",
		"--data", data, "--offline", "--rate-limit", "1000000", "--log-level", "error")
	defer stop(t, srv)
	before := peakRSS(t, srv.Process.Pid)
	hc := &http.Client{Timeout: 2 * time.Minute}
	statuses := map[string]map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, route := range []string{"/v1/cleanroom/runs", "/v1/cleanroom/results", "/v1/cleanroom/receipts", "/v1/timelock/registrations"} {
		statuses[route] = map[int]int{}
		for i := range 32 {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, url+route, io.LimitReader(zeros{}, 64<<20))
				req.ContentLength = 64 << 20
				if i%2 == 1 {
					req.ContentLength = -1 // chunked: no declared length
				}
				status := 0 // the server may close the connection while the body is sent
				if resp, err := hc.Do(req); err == nil {
					status = resp.StatusCode
					resp.Body.Close()
				}
				mu.Lock()
				statuses[route][status]++
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	after := peakRSS(t, srv.Process.Pid)
	t.Logf("peak RSS %d MB before the uploads, %d MB after; answers by route and status: %v", before>>20, after>>20, statuses)
	if after > 200<<20 {
		t.Errorf("peak RSS %d MB, want under 200 MB", after>>20)
	}
	for route, by := range statuses {
		if by[0] == 32 {
			t.Errorf("%s: no upload was answered", route)
		}
		for status := range by {
			if status == http.StatusOK || status >= 500 && status != http.StatusServiceUnavailable {
				t.Errorf("%s: answered %d to garbage", route, status)
			}
		}
	}
	if code, body := get(t, http.DefaultClient, url+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz after the uploads: %d %s", code, body)
	}
}
