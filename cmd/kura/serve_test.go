package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/cmd/kura/internal/bench"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/store"
)

// devClient trusts only the self-signed certificate `kura serve --dev`
// keeps in its data directory.
func devClient(t *testing.T, data string) *http.Client {
	t.Helper()
	pemData, err := os.ReadFile(filepath.Join(data, "tls", "dev-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatal("no certificate in dev-cert.pem")
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
}

func get(t *testing.T, hc *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stop ends a server started by startKura. (The test binary's kura runs
// without kura's signal handling, so it dies of SIGTERM rather than
// draining; web's tests cover the drain.)
func stop(t *testing.T, srv *exec.Cmd) {
	t.Helper()
	srv.Process.Signal(syscall.SIGTERM)
	srv.Wait()
}

func readAdminKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: %T", path, k)
	}
	return priv, nil
}

// TestServeDevTLS: `kura serve --dev` serves HTTPS with a self-signed
// certificate that clients pin, reused on restart; /healthz, /readyz and
// /metrics answer; --roles runs a subset.
func TestServeDevTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	data := t.TempDir()
	args := []string{"serve", "--dev", "--offline", "--addr", "127.0.0.1:0", "--data", data, "--log-level", "warn"}
	srv, url := startKura(t, args...)
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("dev server URL %s, want https", url)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("a client that does not trust the self-signed certificate connected")
	}
	hc := devClient(t, data)
	if code, body := get(t, hc, url+"/readyz"); code != 200 || !strings.Contains(body, `"ready"`) {
		t.Errorf("readyz: %d %s", code, body)
	}
	if code, body := get(t, hc, url+"/healthz"); code != 200 || !strings.Contains(body, `"kbs"`) {
		t.Errorf("healthz: %d %s", code, body)
	}
	code, body := get(t, hc, url+"/metrics")
	for _, want := range []string{`kura_http_requests_total{code="2xx",route="GET /readyz"} 1`, `kura_http_request_duration_seconds_bucket{route="GET /healthz"`, "kura_http_requests_in_flight 1"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("metrics lack %s: %d\n%s", want, code, body)
		}
	}
	cert1, _ := os.ReadFile(filepath.Join(data, "tls", "dev-cert.pem"))
	stop(t, srv)

	srv2, url2 := startKura(t, append(args, "--roles", "verifier")...)
	defer stop(t, srv2)
	cert2, _ := os.ReadFile(filepath.Join(data, "tls", "dev-cert.pem"))
	if string(cert1) != string(cert2) {
		t.Error("the self-signed certificate changed on restart")
	}
	if code, _ := get(t, hc, url2+"/v1/attestation/nonce"); code != http.StatusMethodNotAllowed {
		t.Errorf("verifier role: GET nonce = %d, want 405", code)
	}
	resp, err := hc.Post(url2+"/kbs/v0/auth", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("--roles verifier still serves the key broker: %d", resp.StatusCode)
	}
}

// adminSetup writes an owner key and the authorized-keys file naming it,
// as the owner of the repositories the tests use.
func adminSetup(t *testing.T, dir string) (keyFile, authorized string) {
	t.Helper()
	line := kura(t, dir, "kbs", "admin-key", "-o", "owner.pem", "--name", "bench", "--repos", "bench,app,crash")
	authorized = filepath.Join(dir, "admins")
	if err := os.WriteFile(authorized, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "owner.pem"), authorized
}

// TestBenchServe runs `kura bench serve` briefly against `kura serve --dev`
// so that the bench cannot rot. It checks that operations succeed, not how
// fast they are.
func TestBenchServe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	dir := t.TempDir()
	keyFile, admins := adminSetup(t, dir)
	data := filepath.Join(dir, "state")
	srv, url := startKura(t, "serve", "--dev", "--offline", "--addr", "127.0.0.1:0", "--data", data,
		"--admin-keys", admins, "--kbs-rate-limit", "1000000", "--rate-limit", "1000000", "--log-level", "warn")
	defer stop(t, srv)
	out := kura(t, dir, "bench", "serve", "--url", url, "--ca", filepath.Join(data, "tls", "dev-cert.pem"),
		"--admin-key", keyFile, "--clients", "20", "--duration", "2s", "--json",
		"--mix", "verify=1,release=1,resource=1,audit=1")
	var rep bench.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	ops := map[string]bench.Row{}
	for _, r := range rep.Ops {
		ops[r.Name] = r
	}
	for _, op := range []string{"verify", "release", "resource", "audit"} {
		if ops[op].OK == 0 || ops[op].Failed != 0 {
			t.Errorf("%s: %+v", op, ops[op])
		}
	}
	if len(rep.Errors) != 0 || len(rep.Unavailable) != 0 {
		t.Errorf("errors %v, unavailable %v", rep.Errors, rep.Unavailable)
	}
	if len(rep.Routes) < 5 {
		t.Errorf("routes: %+v", rep.Routes)
	}
}

// ackedRelease is a key release the server acknowledged to a workload.
type ackedRelease struct {
	Resource    string
	TokenSHA256 string
}

// restartCheck checks, after a crash and restart, that acknowledged
// releases left their trace. The audit trail is checked here; the
// transparency log adds its own check.
type restartCheck struct {
	name  string
	check func(ctx context.Context, url string, hc *http.Client, admin *keybroker.AdminClient, acked []ackedRelease) error
}

// storeAuditCheck: every acknowledged release is a "released" record in the
// key broker's audit trail.
func storeAuditCheck() restartCheck {
	return restartCheck{"key broker audit trail", func(ctx context.Context, _ string, _ *http.Client, admin *keybroker.AdminClient, acked []ackedRelease) error {
		have := map[ackedRelease]bool{}
		for after := int64(0); ; {
			recs, err := admin.Audit(ctx, after, 10000)
			if err != nil {
				return fmt.Errorf("read audit trail: %w", err)
			}
			if len(recs) == 0 {
				break
			}
			for _, r := range recs {
				if r.Decision == store.DecisionReleased {
					have[ackedRelease{r.Resource, r.TokenDigest}] = true
				}
			}
			after = recs[len(recs)-1].Seq
		}
		missing := 0
		for _, a := range acked {
			if !have[a] {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d acknowledged releases missing", missing, len(acked))
		}
		return nil
	}}
}

// logCheck: the transparency log verifies in full (every entry re-hashed to
// the signed root) and every acknowledged release is a key_release entry in
// it: the restarted server caught the log up with the audit trail. Entries
// are durable when appended but a checkpoint covering them is published
// within a few checkpoint intervals, so the check looks again for a while.
func logCheck(data string) restartCheck {
	return restartCheck{"transparency log", func(ctx context.Context, url string, hc *http.Client, admin *keybroker.AdminClient, acked []ackedRelease) error {
		var err error
		for range 50 {
			if err = logHasReleases(ctx, data, url, hc, acked); err == nil || !strings.Contains(err.Error(), "missing from the log") {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
		return err
	}}
}

func logHasReleases(ctx context.Context, data, url string, hc *http.Client, acked []ackedRelease) error {
	vkey, err := os.ReadFile(filepath.Join(data, "log-key.pub"))
	if err != nil {
		return err
	}
	v, err := auditlog.ParseVerifierKey(strings.TrimSpace(string(vkey)))
	if err != nil {
		return err
	}
	r, err := auditlog.NewReader(url+"/log/", v, hc)
	if err != nil {
		return err
	}
	_, cp, err := r.Checkpoint(ctx)
	if err != nil {
		return err
	}
	have := map[ackedRelease]bool{}
	if err := r.Audit(ctx, cp, func(_ uint64, raw []byte) error {
		e, err := auditlog.ParseEntry(raw)
		if err != nil {
			return err
		}
		if e.Kind == auditlog.KindKeyRelease && e.Decision == auditlog.DecisionReleased {
			have[ackedRelease{e.Resource, e.TokenDigest}] = true
		}
		return nil
	}); err != nil {
		return fmt.Errorf("full audit: %w", err)
	}
	missing := 0
	for _, a := range acked {
		if !have[a] {
			missing++
		}
	}
	if missing > 0 {
		return fmt.Errorf("%d of %d acknowledged releases missing from the log (size %d)", missing, len(acked), cp.Size)
	}
	return nil
}

// TestServeReleaseCrash kills `kura serve --dev` with SIGKILL in the middle
// of a key-release load, restarts it on the same data directory, and checks
// that every release a workload received is recorded.
func TestServeReleaseCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	ctx := context.Background()
	dir := t.TempDir()
	keyFile, admins := adminSetup(t, dir)
	data := filepath.Join(dir, "state")
	args := []string{"serve", "--dev", "--offline", "--addr", "127.0.0.1:0", "--data", data,
		"--admin-keys", admins, "--kbs-rate-limit", "1000000", "--rate-limit", "1000000", "--log-level", "warn"}
	srv, url := startKura(t, args...)
	hc := devClient(t, data)
	key, err := readAdminKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	admin := &keybroker.AdminClient{BaseURL: url, Key: key, HTTP: hc}
	const resource = "crash/key/release"
	if _, err := admin.Put(ctx, resource, []byte("the data key"), nil, ""); err != nil {
		t.Fatal(err)
	}
	att, err := sim.NewAttester(sim.AttesterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acked []ackedRelease
		wg    sync.WaitGroup
	)
	done := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				s, err := (&keybroker.Client{BaseURL: url, HTTP: hc}).Attest(ctx, att, nil)
				if err != nil {
					return // the server is gone
				}
				value, err := s.Resource(ctx, resource)
				if err != nil {
					return
				}
				if string(value) != "the data key" {
					t.Errorf("released %q", value)
					return
				}
				sum := sha256.Sum256([]byte(s.Token))
				mu.Lock()
				acked = append(acked, ackedRelease{resource, hex.EncodeToString(sum[:])})
				mu.Unlock()
			}
		})
	}
	killWhen(t, srv, 100, func() int { mu.Lock(); defer mu.Unlock(); return len(acked) })
	close(done)
	wg.Wait()

	srv2, url2 := startKura(t, args...)
	defer stop(t, srv2)
	admin.BaseURL = url2
	for _, c := range []restartCheck{storeAuditCheck(), logCheck(data)} {
		if err := c.check(ctx, url2, hc, admin, acked); err != nil {
			t.Errorf("%s after SIGKILL: %v", c.name, err)
		}
	}
	t.Logf("%d releases acknowledged before SIGKILL", len(acked))
}

// TestGetResourceLogProof: with --log-key a workload gets its release's
// inclusion proof in the broker's answer and checks it offline before
// output; another log's key is refused (exit 9) and nothing is output.
func TestGetResourceLogProof(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	dir := t.TempDir()
	keyFile, admins := adminSetup(t, dir)
	data := filepath.Join(dir, "state")
	srv, url := startKura(t, "serve", "--dev", "--offline", "--roles", "kbs,log", "--tls-self-signed=false", "--addr", "127.0.0.1:0", "--data", data,
		"--admin-keys", admins, "--log-level", "warn")
	defer stop(t, srv)
	if err := os.WriteFile(filepath.Join(dir, "value"), []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	kura(t, dir, "secret", "put", "app/key/one", "--value-file", "value", "--url", url, "--admin-key", keyFile)

	run := func(url, logKey string) (string, string, error) {
		cmd := exec.Command(filepath.Join(dir, "kura"), "kbs", "get-resource", "app/key/one", "--url", url, "--tee", "sim", "--log-key", logKey)
		cmd.Dir = dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	out, msg, err := run(url, filepath.Join(data, "log-key.pub"))
	if err != nil || out != "s3cret" || !strings.Contains(msg, "release logged:") || !strings.Contains(msg, "broker_seq") {
		t.Fatalf("get-resource --log-key: %v\nstdout %q\nstderr %s", err, out, msg)
	}

	kura(t, dir, "audit", "keygen", "-o", "other-log-key", "--origin", "other.example/log")
	out, msg, err = run(url, filepath.Join(dir, "other-log-key.pub"))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 9 || out != "" {
		t.Errorf("another log's key: %v, stdout %q\n%s", err, out, msg)
	}

	// A broker without a log sends no proof: refused the same way.
	bare, bareURL := startKura(t, "serve", "--dev", "--offline", "--roles", "kbs", "--tls-self-signed=false", "--addr", "127.0.0.1:0",
		"--data", filepath.Join(dir, "bare"), "--admin-keys", admins, "--log-level", "warn")
	defer stop(t, bare)
	kura(t, dir, "secret", "put", "app/key/one", "--value-file", "value", "--url", bareURL, "--admin-key", keyFile)
	out, msg, err = run(bareURL, filepath.Join(data, "log-key.pub"))
	if !errors.As(err, &ee) || ee.ExitCode() != 9 || out != "" || !strings.Contains(msg, "no inclusion proof") {
		t.Errorf("broker without a log: %v, stdout %q\n%s", err, out, msg)
	}
}

// TestWitnessServe: `kura serve`'s log has each checkpoint cosigned by a
// `kura audit witness serve` process, and `kura audit verify` requires that
// cosignature; a witness key the log never used fails (exit 9).
func TestWitnessServe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	dir := t.TempDir()
	kura(t, dir, "audit", "keygen", "-o", "log-key", "--origin", "kura.test/log")
	kura(t, dir, "audit", "keygen", "-o", "witness-key", "--origin", "witness.test/w1")
	kura(t, dir, "audit", "keygen", "-o", "stranger-key", "--origin", "witness.test/w2")
	w, wurl := startKura(t, "audit", "witness", "serve", "--key", filepath.Join(dir, "witness-key"),
		"--log", filepath.Join(dir, "log-key.pub"), "--state", filepath.Join(dir, "witness-state"), "--addr", "127.0.0.1:0")
	defer stop(t, w)
	data := filepath.Join(dir, "state")
	srv, url := startKura(t, "serve", "--dev", "--offline", "--roles", "log", "--tls-self-signed=false", "--addr", "127.0.0.1:0",
		"--data", data, "--log-key", filepath.Join(dir, "log-key"), "--log-origin", "kura.test/log",
		"--log-witness", wurl+"="+filepath.Join(dir, "witness-key.pub"), "--log-level", "warn")
	defer stop(t, srv)

	verify := func(witnessKey string) error {
		cmd := exec.Command(filepath.Join(dir, "kura"), "audit", "verify", "--log", url+"/log/", "--key", filepath.Join(dir, "log-key.pub"),
			"--witness-key", witnessKey, "--full", "--no-state")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
		if !strings.Contains(string(out), "1 valid cosignatures") {
			return fmt.Errorf("no cosignature reported:\n%s", out)
		}
		return nil
	}
	// The log role logs the verifier inputs at start: wait for a witnessed checkpoint.
	var err error
	for range 50 {
		if err = verify(filepath.Join(dir, "witness-key.pub")); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("audit verify with the witness: %v", err)
	}
	err = verify(filepath.Join(dir, "stranger-key.pub"))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 9 {
		t.Errorf("audit verify with a stranger's witness key: %v", err)
	}
}
