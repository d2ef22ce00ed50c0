package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/cmd/kura/internal/cli"
	"github.com/kura-cc/kura/cmd/kura/internal/demo"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/internal/testpki"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/server"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/timelock"
	"github.com/kura-cc/kura/timelock/beacon"
	"github.com/kura-cc/kura/token"
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

// consoleChecks builds the console's in-browser programs, as go generate
// ./console does (kura.wasm.gz, vault.wasm.gz and wasm_exec.js), into a
// directory.
func consoleChecks(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, pkg := range map[string]string{"kura.wasm": "github.com/kura-cc/kura/console/wasm", "vault.wasm": "github.com/kura-cc/kura/console/wasm/vault"} {
		wasm := filepath.Join(t.TempDir(), name)
		build := exec.Command("go", "build", "-trimpath", "-o", wasm, pkg)
		build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build the console's %s: %v\n%s", name, err, out)
		}
		raw, err := os.ReadFile(wasm)
		if err != nil {
			t.Fatal(err)
		}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
		if _, err := zw.Write(raw); err != nil || zw.Close() != nil {
			t.Fatalf("gzip %s", name)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".gz"), gz.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
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

// recorder is a reverse proxy to a kura server that keeps every request
// the browser sends through it, body included.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

// recorded is one request through the recorder.
type recorded struct {
	method, path string
	header       http.Header
	body         []byte
}

func (rc *recorder) handler(to string) http.Handler {
	target, _ := url.Parse(to)
	proxy := httputil.NewSingleHostReverseProxy(target)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, recorded{method: r.Method, path: r.URL.RequestURI(), header: r.Header.Clone(), body: body})
		rc.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		proxy.ServeHTTP(w, r)
	})
}

// secretForms returns the ways an identity file's private keys could be
// written: each key raw, in base64, base64url and hex, and the file.
func secretForms(t *testing.T, identityFile []byte) [][]byte {
	t.Helper()
	var j struct {
		SigningSeed []byte `json:"signing_seed"`
		Receiving   []byte `json:"receiving_private_key"`
	}
	if err := json.Unmarshal(identityFile, &j); err != nil || len(j.SigningSeed) != 32 || len(j.Receiving) == 0 {
		t.Fatalf("identity file: %v", err)
	}
	forms := [][]byte{identityFile}
	for _, k := range [][]byte{j.SigningSeed, j.Receiving} {
		forms = append(forms, k, []byte(base64.StdEncoding.EncodeToString(k)), []byte(base64.RawURLEncoding.EncodeToString(k)), []byte(hex.EncodeToString(k)))
	}
	return forms
}

// startBrowser starts headless Chromium and returns a tab's context;
// flags are added to its command line.
func startBrowser(t *testing.T, ctx context.Context, browser string, flags ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.WindowSize(1280, 1100))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to sandbox as root (CI)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(opts, flags...)...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	return bctx
}

// screenshot returns an action that saves the whole page as dir/name.png.
func screenshot(dir string) func(name string) chromedp.Action[chromedp.Void] {
	return func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tab *chromedp.Target) (chromedp.Void, error) {
			png, err := chromedp.FullScreenshot(100)(ctx, tab)
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
		}
	}
}

// waitJS waits until the expression is true in the page.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	poll := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second))
	return func(ctx context.Context, tab *chromedp.Target) (chromedp.Void, error) {
		if _, err := poll(ctx, tab); err != nil {
			return chromedp.Void{}, fmt.Errorf("waiting for %s: %w", expr, err)
		}
		return chromedp.Void{}, nil
	}
}

// waitText waits until the element's text contains want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return waitJS(fmt.Sprintf(`(document.querySelector(%q)?.textContent || '').includes(%q)`, sel, want))
}

// a11yCheck is a script that returns the page's accessibility problems:
// visible text whose contrast with its background is under WCAG AA's
// 4.5:1 (3:1 for large text), and controls without an accessible name.
const a11yCheck = `(() => {
  const problems = [];
  const rgb = (c) => { const m = c.match(/[\d.]+/g).map(Number); return { r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1 }; };
  const lum = ({ r, g, b }) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (e) => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.a > 0) return c;
    }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
  for (const e of document.querySelectorAll('body *')) {
    if (!e.checkVisibility() || ![...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const st = getComputedStyle(e);
    const fg = lum(rgb(st.color)), bg = lum(background(e));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const large = parseFloat(st.fontSize) >= 24 || (parseFloat(st.fontSize) >= 18.66 && Number(st.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) problems.push('contrast ' + ratio.toFixed(2) + ': ' + e.tagName + ' ' + e.textContent.trim().slice(0, 40));
  }
  for (const e of document.querySelectorAll('input, button, select, textarea')) {
    if (!e.checkVisibility()) continue;
    const named = e.getAttribute('aria-label') || (e.id && document.querySelector('label[for="' + e.id + '"]')) || (e.tagName === 'BUTTON' && e.textContent.trim());
    if (!named) problems.push('no accessible name: ' + e.outerHTML.slice(0, 80));
  }
  return problems;
})()`

// accessible fails when a11yCheck finds a problem on the page.
func accessible() chromedp.Action[chromedp.Void] {
	check := chromedp.Evaluate[[]string](a11yCheck)
	return func(ctx context.Context, tab *chromedp.Target) (chromedp.Void, error) {
		problems, err := check(ctx, tab)
		if err != nil {
			return chromedp.Void{}, err
		}
		if len(problems) > 0 {
			return chromedp.Void{}, fmt.Errorf("accessibility: %q", problems)
		}
		return chromedp.Void{}, nil
	}
}

// partiesAs checks the page's parties table against collab.Status of the
// file the coordinator stores, in the page's words for each state.
func partiesAs(coord *coordinator.Client, id string, words map[collab.State]string) chromedp.Action[chromedp.Void] {
	rowsOf := chromedp.Evaluate[[][]string](`[...document.querySelectorAll('#parties tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))`)
	return func(ctx context.Context, tab *chromedp.Target) (chromedp.Void, error) {
		rows, err := rowsOf(ctx, tab)
		if err != nil {
			return chromedp.Void{}, err
		}
		stored, err := coord.Get(ctx, id)
		if err != nil {
			return chromedp.Void{}, err
		}
		col, err := collab.ParseCollaboration(stored)
		if err != nil {
			return chromedp.Void{}, err
		}
		status := col.Status()
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

// TestConsoleInChromium: `kura serve --dev`'s web console, in headless
// Chromium, fetches the demo story's collaboration from the coordinator
// and verifies it with kura's own checks compiled to WebAssembly; each
// party opens its identity file in the page and approves there, and the
// page shows each party's approval as collab.Status reports it on the
// stored file, in English and in Japanese. A worker then runs an analysis:
// the page opens its result as the airline, verified and decrypted in the
// browser, to the same table as kura result open prints, with a chart,
// and verifies the run's deletion receipt against it. A party of another
// collaboration is offered no approval and cannot open the result; the
// simulated TEE is refused until the page's development box is ticked.
// The page browses the transparency log: refused under another log's key,
// and under its own each entry as a Go reader proves it.
// Screenshots of each state are kept as test artefacts; on each, the text
// contrast and the controls' names are checked (WCAG AA), and language
// and approval are chosen by keyboard. Every request the browser sends
// goes through a recording proxy: only the approvals' PUTs and the vault's
// registration carry a body, and no request carries any form of a party's
// private keys, the result's plaintext or the vault's document.
func TestConsoleInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the console's WebAssembly and runs Chromium")
	}
	browser := chromium(t)
	checks := consoleChecks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := demo.NewCleanRoom(ctx, demo.CleanRoomConfig{Dir: t.TempDir(), Rows: 3000, Version: cli.Version, Logger: slog.New(slog.DiscardHandler),
		Server: func(cfg *server.Config) { cfg.ConsoleChecks = os.DirFS(checks) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := c.Servers[demo.Airline]
	coord := &coordinator.Client{BaseURL: srv.URL, Identity: c.Parties[demo.Airline]}
	file, err := c.Collab.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := coord.Push(ctx, file); err != nil {
		t.Fatal(err)
	}
	var rec recorder
	front := httptest.NewServer(rec.handler(srv.URL))
	defer front.Close()

	// Each party's identity file, as kura party init saves it, and every
	// form of its keys.
	identities := map[string]string{}
	var secrets [][]byte
	stranger, err := party.Generate("mallory", party.KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]*party.Identity{demo.Airline: c.Parties[demo.Airline], demo.Carrier: c.Parties[demo.Carrier], "mallory": stranger} {
		dir := t.TempDir()
		if err := id.Save(dir); err != nil {
			t.Fatal(err)
		}
		identities[name] = filepath.Join(dir, party.IdentityFile)
		data, err := os.ReadFile(identities[name])
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, secretForms(t, data)...)
	}

	// The console's own answers carry its security headers.
	resp, err := http.Get(front.URL + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode != 200 || !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("GET /console/: %s, CSP %q", resp.Status, csp)
	}

	bctx := startBrowser(t, ctx, browser)
	shot := screenshot(t.ArtifactDir())
	parties := func(words map[collab.State]string) chromedp.Action[chromedp.Void] {
		return partiesAs(coord, c.Collab.ID, words)
	}
	en := map[collab.State]string{collab.Approved: "approved", collab.Missing: "not approved"}
	ja := map[collab.State]string{collab.Approved: "承認済み", collab.Missing: "未承認"}
	page := front.URL + "/console/#/collaborations/" + c.Collab.ID
	// signIn opens a party's identity file in the page.
	signIn := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.SetUploadFiles(`#identity-file`, []string{identities[name]})
	}

	// Unapproved: verified, but no key may be released; the terms are the
	// manifest's.
	m1 := c.Collab.Current()
	terms := []chromedp.Action[chromedp.Void]{waitText("#verifiers", demo.ListedVerifier)}
	for _, d := range m1.Datasets {
		terms = append(terms, waitText("#datasets tbody", d.ID), waitText("#datasets tbody", fmt.Sprint(d.OutputPolicy.MinDistinctIdentities)))
	}
	for _, a := range m1.Analyses {
		terms = append(terms, waitText("#analyses tbody", a.ID))
		if a.SQL != "" {
			terms = append(terms, waitJS(fmt.Sprintf(`[...document.querySelectorAll('#analyses pre')].some((p) => p.textContent === %q)`, a.SQL)))
		}
	}
	for _, x := range m1.Worker.ReferenceValues.Measurements {
		terms = append(terms, waitText("#worker tbody", x.Value))
	}
	steps := append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(page),
		waitText("#checks", "In-browser checks ready"),
		waitText("#collab-verdict", "Verified in this browser"),
		waitText("#collab-verdict", "Not every required party has approved")}, terms...)
	if err := chromedp.Do(bctx, append(steps, parties(en), waitText("#runs tbody", "No runs yet."), waitText("#signed-in", "read only"),
		accessible(), shot("collaboration-unapproved-en"))...); err != nil {
		t.Fatalf("unapproved: %v", err)
	}
	// A party of no role here is offered nothing to approve.
	if err := chromedp.Do(bctx, signIn("mallory"), waitText("#signed-in", "Signed in as mallory"),
		waitJS(`document.querySelector('#approve').hidden`)); err != nil {
		t.Fatalf("stranger: %v", err)
	}
	// Each party approves in the page.
	for _, name := range []string{demo.Airline, demo.Carrier} {
		if err := chromedp.Do(bctx, signIn(name), waitText("#signed-in", "Signed in as "+name),
			waitText("#approve", "Approve version 1 as "+name), chromedp.Focus("#approve"), chromedp.KeyEvent("\r"), // by keyboard
			waitText("#collab-verdict", name+" approved version 1"), parties(en)); err != nil {
			t.Fatalf("%s approves: %v", name, err)
		}
	}
	if err := chromedp.Do(bctx, waitText("#collab-verdict", "key brokers may release keys"),
		waitJS(`document.querySelector('#approve').hidden`), shot("collaboration-approved-en")); err != nil {
		t.Fatalf("approved: %v", err)
	}

	// A worker runs an analysis; kura result open shows its result as CSV.
	startWorker(t, srv.URL)
	submitted, err := coord.SubmitRun(ctx, c.Collab.ID, "stay_by_prefecture")
	if err != nil {
		t.Fatal(err)
	}
	run := waitFor(t, coord, submitted.ID)
	if run.State != store.RunCompleted || run.Result == "" {
		t.Fatalf("run: %+v", run)
	}
	kept, err := fetchKept(t, srv.URL, "results", run.Result)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "result.json")
	if data, err := kept.Marshal(); err != nil || os.WriteFile(bundle, data, 0o600) != nil {
		t.Fatalf("write the result: %v", err)
	}
	var csvOut, cliErr bytes.Buffer
	if code := cli.Run(ctx, []string{"result", "open", bundle, "--identity", filepath.Dir(identities[demo.Airline]), "--format", "csv", "--dev"},
		cli.Env{Stdin: strings.NewReader(""), Stdout: &csvOut, Stderr: &cliErr, Getenv: func(string) string { return "" }}); code != 0 {
		t.Fatalf("kura result open: exit %d: %s", code, cliErr.String())
	}
	want, err := csv.NewReader(&csvOut).ReadAll()
	if err != nil || len(want) < 2 {
		t.Fatalf("kura result open --format csv: %q %v", want, err)
	}
	// resultTable checks the page's table against kura result open's.
	resultTable := func() chromedp.Action[chromedp.Void] {
		tableOf := chromedp.Evaluate[[][]string](`[...document.querySelectorAll('#result-table tr')].map((r) => [...r.cells].map((c) => c.textContent))`)
		return func(ctx context.Context, tab *chromedp.Target) (chromedp.Void, error) {
			got, err := tableOf(ctx, tab)
			if err != nil {
				return chromedp.Void{}, err
			}
			if !reflect.DeepEqual(got, want) {
				return chromedp.Void{}, fmt.Errorf("the page's table is %q; kura result open prints %q", got, want)
			}
			return chromedp.Void{}, nil
		}
	}
	// The result's plaintext, and each of its decimal values, must never
	// reach the server.
	vb, err := result.VerifyBundle(ctx, kept, result.Trust{Party: ed25519.PublicKey(c.Parties[demo.Airline].Card().SigningKey), DevMode: true,
		FetchJWKS: func(ctx context.Context, u string) (jwk.Set, error) {
			return token.FetchJWKS(ctx, http.DefaultClient, u)
		}})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := vb.Open(c.Parties[demo.Airline])
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, plain)
	for _, row := range want[1:] {
		for _, cell := range row {
			if strings.Contains(cell, ".") && len(cell) >= 6 {
				secrets = append(secrets, []byte(cell))
			}
		}
	}
	// receiptTable checks the page's receipt against the kept receipt's
	// datasets, as kura receipt verify reads them.
	keptReceipt, err := fetchKept(t, srv.URL, "receipts", run.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	var rc result.Receipt
	if err := json.Unmarshal(keptReceipt.Envelope.Payload, &rc); err != nil || len(rc.Destroyed) != 2 {
		t.Fatalf("kept receipt: %+v %v", rc, err)
	}
	receiptTable := func() chromedp.Action[chromedp.Void] {
		rowsOf := chromedp.Evaluate[[][]string](`[...document.querySelectorAll('#receipt-table tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))`)
		return func(ctx context.Context, tab *chromedp.Target) (chromedp.Void, error) {
			rows, err := rowsOf(ctx, tab)
			if err != nil {
				return chromedp.Void{}, err
			}
			if len(rows) != len(rc.Destroyed) {
				return chromedp.Void{}, fmt.Errorf("the page's receipt lists %q", rows)
			}
			for i, d := range rc.Destroyed {
				if rows[i][0] != d.Dataset || rows[i][2] != fmt.Sprint(d.PlaintextBytes) {
					return chromedp.Void{}, fmt.Errorf("receipt row %d is %q; the receipt says %+v", i, rows[i], d)
				}
			}
			return chromedp.Void{}, nil
		}
	}
	openButton := fmt.Sprintf(`button[data-run=%q]`, run.ID)
	if err := chromedp.Do(bctx, chromedp.Reload(),
		waitText("#runs tbody", run.ID), waitText("#runs tbody", "completed"), waitText("#signed-in", "read only"),
		// Read only: nothing to open a result with.
		chromedp.Click(openButton), waitText("#error", "Open your identity file first"),
		// A stranger: neither an approver of the verifier list nor a receiver.
		signIn("mallory"), waitText("#signed-in", "Signed in as mallory"),
		chromedp.Click(openButton), waitText("#error", "The result was not opened"),
		// The airline, refusing the simulated TEE as it should by default.
		signIn(demo.Airline), waitText("#signed-in", "Signed in as airline"),
		chromedp.Click(openButton), waitText("#error", "The result was not opened"), waitText("#error", "simulated"),
		// In development mode: verified, decrypted, the same table.
		chromedp.Click("#dev"), chromedp.Click(openButton),
		waitText("#result-title", run.ID), waitJS(`!document.querySelector('#result-insecure').hidden`),
		waitText("#result-checks", "approved"), resultTable(),
		waitText("#result-attested", c.Collab.Current().Worker.ReferenceValues.Measurements[0].Value), waitText("#result-attested", demo.ListedVerifier),
		waitJS(fmt.Sprintf(`document.querySelectorAll('#result-chart rect').length === %d`, len(want)-1)),
		waitText("#result-chart-caption", "travellers by home_prefecture"),
		waitText("#receipt-verdict", "Verified in this browser: the attested worker of this run states"),
		waitText("#receipt-verdict", "outcome: completed"), receiptTable(),
		accessible(), shot("result-en")); err != nil {
		t.Fatalf("result: %v", err)
	}

	// The log: refused under another log's key; under its own, the latest
	// entries, each as a Go reader proves it at that index.
	logKey := func(owner string) string {
		b, err := os.ReadFile(filepath.Join(c.Dir, owner+"-kbs", "log-key.pub"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	lv, err := auditlog.ParseVerifierKey(logKey(demo.Airline))
	if err != nil {
		t.Fatal(err)
	}
	reader, err := auditlog.NewReader(srv.URL+"/log/", lv, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[auditlog.Kind]string{auditlog.KindManifestVersion: "manifest version", auditlog.KindApproval: "approval",
		auditlog.KindKeyRelease: "key release", auditlog.KindRunStart: "run start", auditlog.KindResult: "result",
		auditlog.KindReceipt: "deletion receipt", auditlog.KindPolicyChange: "release policy change",
		auditlog.KindReferenceValuesChange: "reference values change"}
	logRows := func() chromedp.Action[chromedp.Void] {
		rowsOf := chromedp.Evaluate[[][]string](`[...document.querySelectorAll('#log-entries tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))`)
		return func(ctx context.Context, tab *chromedp.Target) (chromedp.Void, error) {
			rows, err := rowsOf(ctx, tab)
			if err != nil {
				return chromedp.Void{}, err
			}
			raw, cp, err := reader.Checkpoint(ctx)
			if err != nil {
				return chromedp.Void{}, err
			}
			seen := map[string]bool{}
			for _, row := range rows {
				var index uint64
				if _, err := fmt.Sscan(row[0], &index); err != nil {
					return chromedp.Void{}, err
				}
				p, err := reader.Prove(ctx, index, raw, cp)
				if err != nil {
					return chromedp.Void{}, err
				}
				e, err := auditlog.ParseEntry(p.Entry)
				if err != nil {
					return chromedp.Void{}, err
				}
				if w, ok := kinds[e.Kind]; ok && row[2] != w {
					return chromedp.Void{}, fmt.Errorf("log entry %d is %q on the page; the log says %s", index, row, e.Kind)
				}
				seen[row[2]] = true
			}
			for _, w := range []string{"approval", "key release", "result", "deletion receipt"} {
				if !seen[w] {
					return chromedp.Void{}, fmt.Errorf("no %s among the latest entries %q", w, rows)
				}
			}
			return chromedp.Void{}, nil
		}
	}
	if err := chromedp.Do(bctx,
		chromedp.SetValue("#log-key", logKey(demo.Carrier)), chromedp.Click("#log-form button"),
		waitText("#log-verdict", "The log does not verify with this key"),
		chromedp.SetValue("#log-key", logKey(demo.Airline)), chromedp.Click("#log-form button"),
		waitText("#log-verdict", "verified with your key"), logRows(), accessible(), shot("log-en"),
		// The result again: the airline's broker's release to the run, from
		// its log.
		chromedp.Click(openButton), waitText("#result-releases", "Key releases to this run in this server's log"),
		waitText("#result-releases", "airline/dataset-key/flights released at")); err != nil {
		t.Fatalf("log: %v", err)
	}

	// Japanese, by keyboard: the same facts in the other language.
	if err := chromedp.Do(bctx, chromedp.Focus(`button[data-lang="ja"]`), chromedp.KeyEvent("\r"),
		waitText("#result-table caption", "あなたの写し"), resultTable(),
		waitText("#result-chart-caption", "home_prefecture ごとの travellers"),
		waitText("#result-insecure", "安全ではありません"), waitText("#receipt-verdict", "このブラウザで検証済み"), receiptTable(),
		// Every check kura's Go code reported is shown in Japanese.
		waitJS(`[...document.querySelectorAll('#result-checks li, #receipt-checks li')].every((li) => /[\u3040-\u30ff\u4e00-\u9fff]/.test(li.textContent))`),
		shot("result-ja"),
		waitText("#collab-verdict", "このブラウザで検証済み"),
		waitText("#collab-verdict", "鍵ブローカーはこのバージョンに鍵を発行できます"),
		waitText("#parties caption", "参加者と現在のバージョンの承認状況"),
		parties(ja), waitText("#runs tbody", "完了"), waitText("#signed-in", "airline（鍵"),
		waitText("#log-verdict", "あなたの鍵で検証しました"), waitText("#log-entries tbody", "削除証明"),
		accessible(), shot("collaboration-approved-ja")); err != nil {
		t.Fatalf("Japanese: %v", err)
	}
	if lang, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.documentElement.lang`)); err != nil || lang != "ja" {
		t.Fatalf("<html lang> is %q (%v)", lang, err)
	}

	// A version 2 tightens the airline's output policy: the page shows
	// who must approve again and why, as VersionChanges says, and the
	// changed line.
	stored, err := coord.Get(ctx, c.Collab.ID)
	if err != nil {
		t.Fatal(err)
	}
	col, err := collab.ParseCollaboration(stored)
	if err != nil {
		t.Fatal(err)
	}
	m := *col.Current()
	m.Previous = m.Hash()
	m.Datasets = append([]collab.Dataset(nil), m.Datasets...)
	m.Dataset("flights").OutputPolicy.MinDistinctIdentities = 12
	if err := col.AddVersion(&m); err != nil {
		t.Fatal(err)
	}
	v2, err := col.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := coord.Push(ctx, v2); err != nil {
		t.Fatal(err)
	}
	changes, err := col.VersionChanges(2)
	if err != nil || len(changes) != 2 {
		t.Fatalf("VersionChanges(2): %+v %v", changes, err)
	}
	en[collab.Stale] = "must re-approve"
	steps = []chromedp.Action[chromedp.Void]{chromedp.Focus(`button[data-lang="en"]`), chromedp.KeyEvent("\r"), chromedp.Reload(),
		waitText("#collab-verdict", "Not every required party has approved"), parties(en),
		waitJS(`document.querySelectorAll('#versions > li').length === 2`),
		waitText("#versions > li:first-child", "Must approve again:"),
		waitText("#versions > li:first-child .diff", `-         "min_distinct_identities": 10`),
		waitText("#versions > li:first-child .diff", `+         "min_distinct_identities": 12`),
		waitText("#versions > li:last-child", "The first version")}
	for _, pc := range changes {
		steps = append(steps, waitText("#versions > li:first-child", fmt.Sprintf("%s (%s)", pc.Party, strings.Join(pc.Changes, "; "))))
	}
	steps = append(steps, chromedp.Click("#versions > li:first-child summary"), accessible(), shot("history-en"))
	if err := chromedp.Do(bctx, steps...); err != nil {
		t.Fatalf("version 2: %v", err)
	}

	// The vault: a document sealed in the page to a dev beacon's round a
	// few seconds ahead is refused before it and opens after; the sealed
	// file opens with timelock.Open too, and its registration is the
	// log's latest entry.
	b, err := beacon.New(beacon.Config{Period: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	bs := httptest.NewServer(b.Handler())
	defer bs.Close()
	docText := "kura vault test: the merger is announced on Friday " + run.ID
	docPath := filepath.Join(t.TempDir(), "announcement.txt")
	if err := os.WriteFile(docPath, []byte(docText), 0o600); err != nil {
		t.Fatal(err)
	}
	inFiveSeconds := chromedp.Evaluate[chromedp.Void](`document.querySelector('#vault-until').value =
		new Date(Date.now() + 5000 - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 19)`)
	if err := chromedp.Do(bctx, chromedp.SetUploadFiles("#vault-doc", []string{docPath}), inFiveSeconds,
		chromedp.SetValue("#vault-chain-url", bs.URL), chromedp.SetValue("#vault-chain-hash", b.ChainHash()), chromedp.Click("#vault-dev"),
		chromedp.Click(`#vault-seal button[type="submit"]`),
		waitText("#vault-sealed", "Sealed to round"), waitText("#vault-registered", "Registered in the transparency log at index"),
		waitText("#vault-countdown", "Opens in"),
		chromedp.Click("#vault-open-last"), waitText("#vault-opened", "Not yet: this file opens at"),
		accessible(), shot("vault-en"),
		waitText("#vault-countdown", "Its release time has passed"),
		chromedp.Click("#vault-open-last"), waitText("#vault-opened", "Opened (round"), waitText("#vault-text", docText),
		shot("vault-opened-en")); err != nil {
		t.Fatalf("vault: %v", err)
	}
	// The page's sealed file, as its download link gives it (the page's
	// CSP lets no script fetch the link itself).
	b64, err := chromedp.Run(bctx, chromedp.Evaluate[string](`(() => { let s = ''; for (const x of vault.bytes) s += String.fromCharCode(x); return btoa(s); })()`))
	if err != nil {
		t.Fatal(err)
	}
	sealedDoc, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	var opened bytes.Buffer
	if _, err := timelock.Open(ctx, &opened, bytes.NewReader(sealedDoc), timelock.OpenOptions{Chain: timelock.Chain{Hash: b.ChainHash(), URLs: []string{bs.URL}}, AllowInsecure: true}); err != nil || opened.String() != docText {
		t.Fatalf("timelock.Open of the page's sealed file: %q, %v", opened.String(), err)
	}
	sum := sha256.Sum256(sealedDoc)
	raw, cp, err := reader.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last, err := reader.Prove(ctx, cp.Size-1, raw, cp)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := auditlog.ParseEntry(last.Entry); err != nil || e.Kind != auditlog.KindTimelockRegistration || e.Subject != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Fatalf("the log's latest entry: %+v %v, want the registration of the sealed file", e, err)
	}
	secrets = append(secrets, []byte(docText))

	// What the browser sent.
	rec.mu.Lock()
	defer rec.mu.Unlock()
	puts := 0
	for _, r := range rec.reqs {
		path, err := url.QueryUnescape(r.path)
		if err != nil {
			path = r.path
		}
		for _, secret := range secrets {
			if bytes.Contains(r.body, secret) || strings.Contains(fmt.Sprint(r.header), string(secret)) || strings.Contains(path, string(secret)) {
				t.Fatalf("a %s to %s carries a private key, the result's plaintext or the vault's document", r.method, strings.SplitN(r.path, "?", 2)[0])
			}
		}
		switch {
		case r.method == http.MethodGet && len(r.body) == 0:
		case r.method == http.MethodPost && r.path == "/v1/timelock/registrations":
			if _, err := timelock.ParseRegistration(r.body); err != nil {
				t.Errorf("a registration's body is not a registration: %v", err)
			}
		case r.method == http.MethodPut && r.path == "/v1/collaborations/"+c.Collab.ID && strings.HasPrefix(r.header.Get("Authorization"), "Kura-Signature "):
			if _, err := collab.ParseCollaboration(r.body); err != nil {
				t.Errorf("a PUT's body is not a collaboration file: %v", err)
			}
			puts++
		default:
			t.Errorf("the browser sent %s %s (%d bytes)", r.method, r.path, len(r.body))
		}
	}
	if puts != 2 {
		t.Errorf("%d approvals pushed from the page, want 2", puts)
	}
}

// TestConsoleReplicasPrivateCA: the console as an operator deploys kura —
// two replicas over one PostgreSQL database, each serving HTTPS with a
// certificate of the operator's private CA, behind a load balancer that
// sends each request to the replica after the one that served the last
// request of its method (no sticky sessions), the browser trusting that
// certificate as a company's machines trust its CA. Each party approves
// in the page, the two approvals reaching different replicas, and the
// page and the other replica agree on what is stored.
func TestConsoleReplicasPrivateCA(t *testing.T) {
	if testing.Short() {
		t.Skip("starts replicas over PostgreSQL and runs Chromium")
	}
	browser := chromium(t)
	db := postgresSchema(t)
	checks := consoleChecks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The story's collaboration and parties; its own servers are not used.
	c, err := demo.NewCleanRoom(ctx, demo.CleanRoomConfig{Dir: t.TempDir(), Rows: 100, Version: cli.Version, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ca, cert := testpki.PrivateCA(t, "operator")
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	viaCA := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	shared, dir := t.TempDir(), t.TempDir()
	var replicas []string
	for _, name := range []string{"a", "b"} {
		s, err := server.New(ctx, server.Config{DataDir: filepath.Join(dir, name), DevMode: true, Store: db,
			KBS: server.KBS{KEKFile: filepath.Join(shared, "kek")}, TokenKeyFile: filepath.Join(shared, "verifier-key.pem"),
			ConsoleChecks: os.DirFS(checks), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewUnstartedServer(s.Handler())
		ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		ts.StartTLS()
		t.Cleanup(func() {
			ts.Close()
			s.Close(context.Background())
		})
		replicas = append(replicas, ts.Listener.Addr().String())
	}
	var mu sync.Mutex
	next := map[string]int{}        // method -> requests so far
	served := map[string][]string{} // replica -> "METHOD path"
	lb := httptest.NewUnstartedServer(&httputil.ReverseProxy{Transport: viaCA, Rewrite: func(r *httputil.ProxyRequest) {
		mu.Lock()
		host := replicas[next[r.In.Method]%len(replicas)]
		next[r.In.Method]++
		served[host] = append(served[host], r.In.Method+" "+r.In.URL.Path)
		mu.Unlock()
		r.SetURL(&url.URL{Scheme: "https", Host: host})
	}})
	lb.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	lb.StartTLS()
	defer lb.Close()

	airlineA := &coordinator.Client{BaseURL: "https://" + replicas[0], HTTP: &http.Client{Transport: viaCA}, Identity: c.Parties[demo.Airline]}
	readerB := &coordinator.Client{BaseURL: "https://" + replicas[1], HTTP: &http.Client{Transport: viaCA}}
	file, err := c.Collab.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := airlineA.Push(ctx, file); err != nil {
		t.Fatal(err)
	}
	identities := map[string]string{}
	for _, name := range []string{demo.Airline, demo.Carrier} {
		d := t.TempDir()
		if err := c.Parties[name].Save(d); err != nil {
			t.Fatal(err)
		}
		identities[name] = filepath.Join(d, party.IdentityFile)
	}

	spki := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	bctx := startBrowser(t, ctx, browser, chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])))
	shot := screenshot(t.ArtifactDir())
	en := map[collab.State]string{collab.Approved: "approved", collab.Missing: "not approved"}
	steps := []chromedp.Action[chromedp.Void]{chromedp.Navigate(lb.URL + "/console/#/collaborations/" + c.Collab.ID),
		waitText("#checks", "In-browser checks ready"), waitText("#collab-verdict", "Verified in this browser"),
		partiesAs(readerB, c.Collab.ID, en)}
	for _, name := range []string{demo.Airline, demo.Carrier} {
		steps = append(steps, chromedp.SetUploadFiles(`#identity-file`, []string{identities[name]}), waitText("#signed-in", "Signed in as "+name),
			chromedp.Click("#approve"), waitText("#collab-verdict", name+" approved version 1"), partiesAs(readerB, c.Collab.ID, en))
	}
	steps = append(steps, waitText("#collab-verdict", "key brokers may release keys"), shot("replicas-private-ca"))
	if err := chromedp.Do(bctx, steps...); err != nil {
		t.Fatalf("console behind two replicas: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, host := range replicas {
		puts := 0
		for _, r := range served[host] {
			if strings.HasPrefix(r, "PUT ") {
				puts++
			}
		}
		if puts != 1 {
			t.Errorf("replica %s took %d approvals, want 1: %v", host, puts, served)
		}
	}
}
