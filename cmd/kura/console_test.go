package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/kura-cc/kura/cmd/kura/internal/cli"
	"github.com/kura-cc/kura/cmd/kura/internal/demo"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/server"
)

// chromium returns the path of a Chromium to drive; CI must have one
// (.ci/run installs Debian's).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium is required in CI (.ci/run installs it)")
	}
	t.Skip("no Chromium")
	return ""
}

// consoleChecks builds the console's in-browser checks, as go generate
// ./console does, into a directory.
func consoleChecks(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "kura.wasm"), "github.com/kura-cc/kura/console/wasm")
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the console's checks: %v\n%s", err, out)
	}
	js, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wasm_exec.js"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// request is one request the browser sent.
type request struct {
	method, url string
	body        bool
}

// TestConsoleInChromium: `kura serve --dev`'s web console, in headless
// Chromium, fetches the demo story's collaboration from the coordinator,
// verifies it with kura's own checks compiled to WebAssembly and shows
// each party's approval as collab.Status reports it, before and after the
// parties approve, in English and in Japanese, with the runs the
// coordinator queued. Screenshots of each state are kept as test
// artefacts. The browser sends the server only GETs without a body.
func TestConsoleInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the console's WebAssembly and runs Chromium")
	}
	browser := chromium(t)
	checks := consoleChecks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := demo.NewCleanRoom(ctx, demo.CleanRoomConfig{Dir: t.TempDir(), Rows: 200, Version: cli.Version, Logger: slog.New(slog.DiscardHandler),
		Server: func(cfg *server.Config) { cfg.ConsoleChecks = os.DirFS(checks) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := c.Servers[demo.Airline]
	coord := &coordinator.Client{BaseURL: srv.URL, Identity: c.Parties[demo.Airline]}
	push := func() {
		t.Helper()
		file, err := c.Collab.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := coord.Push(ctx, file); err != nil {
			t.Fatal(err)
		}
	}
	push()

	// The console's own answers carry its security headers.
	resp, err := http.Get(srv.URL + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode != 200 || !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("GET /console/: %s, CSP %q", resp.Status, csp)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.WindowSize(1280, 1000))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to sandbox as root (CI)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	// Every request the page sends, recorded from its first.
	ectx, stopEvents := context.WithCancel(bctx)
	requests := chromedp.Events(ectx, network.RequestWillBeSent)
	var sent []request
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		for ev, err := range requests {
			if err != nil {
				return
			}
			sent = append(sent, request{method: ev.Request.Method, url: ev.Request.URL, body: ev.Request.HasPostData})
		}
	}()
	artefacts := t.ArtifactDir()
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tab *chromedp.Target) (chromedp.Void, error) {
			png, err := chromedp.FullScreenshot(100)(ctx, tab)
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(artefacts, name+".png"), png, 0o644)
		}
	}
	// waitText waits until the element's text contains want.
	waitText := func(sel, want string) chromedp.Action[chromedp.Void] {
		poll := chromedp.Poll[bool](fmt.Sprintf(`(document.querySelector(%q)?.textContent || '').includes(%q)`, sel, want), chromedp.WithPollingTimeout(30*time.Second))
		return func(ctx context.Context, tab *chromedp.Target) (chromedp.Void, error) {
			if _, err := poll(ctx, tab); err != nil {
				return chromedp.Void{}, fmt.Errorf("waiting for %q in %s: %w", want, sel, err)
			}
			return chromedp.Void{}, nil
		}
	}
	// parties checks the parties table against collab.Status, in the
	// page's language's words for each state.
	parties := func(words map[collab.State]string) chromedp.Action[chromedp.Void] {
		rowsOf := chromedp.Evaluate[[][]string](`[...document.querySelectorAll('#parties tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))`)
		return func(ctx context.Context, tab *chromedp.Target) (chromedp.Void, error) {
			rows, err := rowsOf(ctx, tab)
			if err != nil {
				return chromedp.Void{}, err
			}
			status := c.Collab.Status()
			if len(rows) != len(status) {
				return chromedp.Void{}, fmt.Errorf("the page lists %d parties, collab.Status %d: %q", len(rows), len(status), rows)
			}
			for i, p := range status {
				if len(rows[i]) != 4 || rows[i][0] != p.Party || rows[i][2] != words[p.State] {
					return chromedp.Void{}, fmt.Errorf("row %d is %q; collab.Status says %s is %s", i, rows[i], p.Party, p.State)
				}
			}
			return chromedp.Void{}, nil
		}
	}
	en := map[collab.State]string{collab.Approved: "approved", collab.Missing: "not approved"}
	ja := map[collab.State]string{collab.Approved: "承認済み", collab.Missing: "未承認"}
	page := srv.URL + "/console/#/collaborations/" + c.Collab.ID

	// Unapproved: verified, but no key may be released.
	if err := chromedp.Do(bctx, chromedp.Navigate(page),
		waitText("#checks", "In-browser checks ready"),
		waitText("#collab-verdict", "Verified in this browser"),
		waitText("#collab-verdict", "Not every required party has approved"),
		parties(en), waitText("#runs tbody", "No runs yet."), shot("collaboration-unapproved-en")); err != nil {
		t.Fatalf("unapproved: %v", err)
	}

	// Both approve and a run is queued: the page says keys may be released
	// and lists the run.
	if err := c.Approve(demo.Airline, demo.Carrier); err != nil {
		t.Fatal(err)
	}
	push()
	run, err := coord.SubmitRun(ctx, c.Collab.ID, "stay_by_prefecture")
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Reload(),
		waitText("#collab-verdict", "key brokers may release keys"), parties(en),
		waitText("#runs tbody", run.ID), waitText("#runs tbody", "stay_by_prefecture"), waitText("#runs tbody", "queued"),
		shot("collaboration-approved-en")); err != nil {
		t.Fatalf("approved: %v", err)
	}

	// Japanese, by keyboard: the same facts in the other language.
	if err := chromedp.Do(bctx, chromedp.Focus(`button[data-lang="ja"]`), chromedp.KeyEvent("\r"),
		waitText("#collab-verdict", "このブラウザで検証済み"),
		waitText("#collab-verdict", "鍵ブローカーはこのバージョンに鍵を発行できます"),
		waitText("#parties caption", "参加者と現在のバージョンの承認状況"),
		parties(ja), waitText("#runs tbody", "待機中"), shot("collaboration-approved-ja")); err != nil {
		t.Fatalf("Japanese: %v", err)
	}
	if lang, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.documentElement.lang`)); err != nil || lang != "ja" {
		t.Fatalf("<html lang> is %q (%v)", lang, err)
	}

	stopEvents()
	<-recorded
	if len(sent) == 0 {
		t.Fatal("no request was recorded")
	}
	for _, r := range sent {
		if r.method != http.MethodGet || r.body || !strings.HasPrefix(r.url, srv.URL+"/") {
			t.Errorf("the browser sent %s %s (body %v): the console only reads, from its own server", r.method, r.url, r.body)
		}
	}
}
