package intake_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/auditlog/intake"
	"github.com/kura-cc/kura/blob/local"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/timelock"
)

var t0 = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

type runs map[string]int

func (r runs) RunFinished(outcome string) { r[outcome]++ }

type fixture struct {
	srv    *httptest.Server
	client *intake.Client
	key    *auditlog.SignerKey
	runs   runs
}

func newFixture(t *testing.T) *fixture { return newFixtureBudget(t, nil) }

func newFixtureBudget(t *testing.T, budget *web.BodyBudget) *fixture {
	return newFixtureWith(t, func(cfg *intake.Config) { cfg.Uploads = budget })
}

func newFixtureWith(t *testing.T, adjust func(*intake.Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := logDir(t)
	key, _, err := auditlog.GenerateKey(auditlog.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(ctx, auditlog.Config{Dir: filepath.Join(dir, "log"), Key: key, CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	archive, err := local.New(ctx, local.Config{Dir: filepath.Join(dir, "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{key: key, runs: runs{}}
	cfg := intake.Config{Log: l, Archive: archive, Runs: f.runs, Now: func() time.Time { return t0 }}
	adjust(&cfg)
	in, err := intake.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	in.Register(mux)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	f.client = &intake.Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}
	return f
}

// logDir returns a directory removed after the test. Tessera's background
// writers may still be ending just after the log closes, so removal is
// retried for a moment rather than failing the test as t.TempDir would.
func logDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "intake-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if err = os.RemoveAll(dir); err == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("remove %s: %v", dir, err)
	})
	return dir
}

// run returns a run context signed for by a fresh key, and that key.
func run(t *testing.T, collaboration string) ([]byte, *collab.RunContext, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	rc := &collab.RunContext{Version: collab.RunContextVersion, Collaboration: collaboration,
		ManifestHash: strings.Repeat("ab", 32), Analysis: "overlap", RunID: hex.EncodeToString(id), SigningKey: pub}
	data, err := rc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data, rc, priv
}

func marshal(t *testing.T, f *result.File, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	data, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func (f *fixture) proof(t *testing.T, raw []byte) *auditlog.Proof {
	t.Helper()
	p, err := auditlog.ParseProof(raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// verified checks a proof against the log key and returns its entry.
func (f *fixture) verified(t *testing.T, proof []byte) *auditlog.Entry {
	t.Helper()
	p, err := auditlog.ParseProof(proof)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.VerifyProof(p, f.key.Verifier()); err != nil {
		t.Fatal(err)
	}
	e, err := auditlog.ParseEntry(p.Entry)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestRunLifecycle: a run start, a result bundle and a receipt are logged
// with the run's identity and digests; the bundle and receipt are kept with
// their proofs and served by payload digest; the receipt counts the run.
func TestRunLifecycle(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	rcBytes, rc, key := run(t, "airline-carrier")

	startFile, err := result.SignRunStart(&result.RunStart{Run: rcBytes, StartedAt: t0}, key)
	start := marshal(t, startFile, err)
	p, err := f.client.Submit(ctx, auditlog.KindRunStart, start)
	if err != nil {
		t.Fatal(err)
	}
	if e := f.verified(t, p); e.Kind != auditlog.KindRunStart || e.Run != rc.RunID || e.Subject != "sha256:"+rc.ManifestHash || !e.Time.Equal(t0) {
		t.Errorf("run start logged as %+v", e)
	}

	bundleFile, err := result.SignBundle(&result.Bundle{Run: rcBytes, CreatedAt: t0}, key)
	bundle := marshal(t, bundleFile, err)
	receiptFile, err := result.SignReceipt(&result.Receipt{Run: rcBytes, DestroyedAt: t0, Outcome: "completed"}, key)
	receipt := marshal(t, receiptFile, err)
	for _, x := range []struct {
		kind  auditlog.Kind
		body  []byte
		file  *result.File
		route string
	}{{auditlog.KindResult, bundle, bundleFile, "results"}, {auditlog.KindReceipt, receipt, receiptFile, "receipts"}} {
		p, err := f.client.Submit(ctx, x.kind, x.body)
		if err != nil {
			t.Fatal(err)
		}
		digest := result.DigestHex(x.file.Envelope.Payload)
		if e := f.verified(t, p); e.Kind != x.kind || e.Collaboration != "airline-carrier" || e.Run != rc.RunID || e.Subject != "sha256:"+digest {
			t.Errorf("%s logged as %+v", x.kind, e)
		}
		status, kept := get(t, f.srv.URL+"/v1/cleanroom/"+x.route+"/"+digest)
		if status != http.StatusOK {
			t.Fatalf("GET kept %s: %d", x.route, status)
		}
		k, err := result.ParseFile(kept)
		if err != nil {
			t.Fatal(err)
		}
		keptProof, err := auditlog.ParseProof(k.LogProof)
		if err != nil {
			t.Fatalf("kept %s: embedded proof: %v", x.route, err)
		}
		if !bytes.Equal(k.Envelope.Payload, x.file.Envelope.Payload) || !bytes.Equal(keptProof.Entry, f.proof(t, p).Entry) {
			t.Errorf("kept %s differs from what was logged", x.route)
		}
	}
	if f.runs["completed"] != 1 || len(f.runs) != 1 {
		t.Errorf("runs counted %v, want one completed", f.runs)
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// TestRefusals: files the intake must not log — signed by a key that is
// not the run's (one party attributing a file to another's run), posted
// under another kind, tampered, truncated, oversized — and archive lookups
// it must not serve.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	rcBytes, _, key := run(t, "airline-carrier")
	_, _, otherKey := run(t, "airline-carrier")
	receiptFile, err := result.SignReceipt(&result.Receipt{Run: rcBytes, DestroyedAt: t0, Outcome: "completed"}, key)
	receipt := marshal(t, receiptFile, err)
	forgedFile, err := result.SignReceipt(&result.Receipt{Run: rcBytes, DestroyedAt: t0, Outcome: "completed"}, otherKey)
	forged := marshal(t, forgedFile, err)
	tamperedFile, err := result.ParseFile(receipt)
	if err != nil {
		t.Fatal(err)
	}
	tamperedFile.Envelope.Payload = bytes.Replace(tamperedFile.Envelope.Payload, []byte(`"completed"`), []byte(`"failed: x"`), 1)
	tampered := marshal(t, tamperedFile, nil)
	reg := &timelock.Registration{Version: timelock.RegistrationVersion, Format: timelock.FormatTlock,
		SealedSHA256: strings.Repeat("cd", 32), SealedSize: 10, ChainHash: strings.Repeat("ef", 32), Round: 7,
		ReleaseTime: t0.Add(time.Hour), SealedAt: t0}
	regJSON, err := reg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		route  string
		body   []byte
		status int
		detail string
	}{
		{"signed by another key", "/v1/cleanroom/receipts", forged, 400, "signature does not verify"},
		{"receipt as a result", "/v1/cleanroom/results", receipt, 400, "does not belong here"},
		{"receipt as a run start", "/v1/cleanroom/runs", receipt, 400, "does not belong here"},
		{"tampered payload", "/v1/cleanroom/receipts", tampered, 400, "signature does not verify"},
		{"truncated", "/v1/cleanroom/receipts", receipt[:len(receipt)/2], 400, "malformed"},
		{"a registration as a receipt", "/v1/cleanroom/receipts", regJSON, 400, "malformed"},
		{"a receipt as a registration", "/v1/timelock/registrations", receipt, 400, "registration"},
		{"oversized", "/v1/cleanroom/results", make([]byte, result.MaxSize+1), 413, "larger than"},
		{"oversized registration", "/v1/timelock/registrations", make([]byte, timelock.MaxRegistrationSize+1), 413, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(f.srv.URL+tc.route, "application/json", bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p struct{ Detail string }
			json.NewDecoder(resp.Body).Decode(&p)
			if resp.StatusCode != tc.status || !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("got %d %q, want %d with %q", resp.StatusCode, p.Detail, tc.status, tc.detail)
			}
		})
	}
	if len(f.runs) != 0 {
		t.Errorf("refused receipts counted runs: %v", f.runs)
	}
	for path, want := range map[string]int{
		"/v1/cleanroom/receipts/" + strings.Repeat("0", 64): 404,
		"/v1/cleanroom/results/" + strings.Repeat("A", 64):  400,
		"/v1/cleanroom/results/..%2f..%2flog%2fcheckpoint":  400,
		"/v1/cleanroom/receipts/" + strings.Repeat("0", 63): 400,
	} {
		if status, _ := get(t, f.srv.URL+path); status != want {
			t.Errorf("GET %s: %d, want %d", path, status, want)
		}
	}
	if _, err := f.client.Submit(ctx, auditlog.KindKeyRelease, receipt); err == nil {
		t.Error("the client posted a key_release entry")
	}
}

func registration() *timelock.Registration {
	return &timelock.Registration{Version: timelock.RegistrationVersion, Format: timelock.FormatTlock,
		SealedSHA256: strings.Repeat("cd", 32), SealedSize: 10, ChainHash: strings.Repeat("ef", 32), Round: 7,
		ReleaseTime: t0.Add(time.Hour), SealedAt: t0}
}

// TestTimelockRegistration: a registration signed by its sealer is logged
// with its file's digest, release time and sealer; one that names a sealer
// without the sealer's signature, or with another party's, is refused.
func TestTimelockRegistration(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	sealer, err := party.Generate("issuer", party.KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	other, err := party.Generate("impostor", party.KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	reg := registration()
	if err := reg.Sign(sealer); err != nil {
		t.Fatal(err)
	}
	data, err := reg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.client.Submit(ctx, auditlog.KindTimelockRegistration, data)
	if err != nil {
		t.Fatal(err)
	}
	e := f.verified(t, p)
	if e.Kind != auditlog.KindTimelockRegistration || e.Subject != "sha256:"+reg.SealedSHA256 || !e.NotBefore.Equal(reg.ReleaseTime) || e.Party != sealer.Card().Fingerprint {
		t.Errorf("registration logged as %+v", e)
	}

	unsigned := registration()
	unsigned.Sealer = sealer.Card().Fingerprint
	impersonated := registration()
	if err := impersonated.Sign(other); err != nil {
		t.Fatal(err)
	}
	card, _ := sealer.Card().Marshal()
	impersonated.Sealer, impersonated.SealerCard = sealer.Card().Fingerprint, card
	moved := registration()
	if err := moved.Sign(sealer); err != nil {
		t.Fatal(err)
	}
	moved.ReleaseTime = moved.ReleaseTime.Add(time.Hour)
	for name, r := range map[string]*timelock.Registration{"sealer without signature": unsigned, "another party's signature": impersonated, "release time changed after signing": moved} {
		data, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.client.Submit(ctx, auditlog.KindTimelockRegistration, data); err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("%s: %v, want 400", name, err)
		}
	}
}

// TestLoggedOnce: a replayed submission is answered with the first entry's
// proof and adds nothing to the log.
func TestLoggedOnce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	rcBytes, _, key := run(t, "airline-carrier")
	receiptFile, err := result.SignReceipt(&result.Receipt{Run: rcBytes, DestroyedAt: t0, Outcome: "completed"}, key)
	receipt := marshal(t, receiptFile, err)
	reg, err := registration().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		kind auditlog.Kind
		body []byte
	}{{auditlog.KindReceipt, receipt}, {auditlog.KindTimelockRegistration, reg}} {
		first, err := f.client.Submit(ctx, x.kind, x.body)
		if err != nil {
			t.Fatal(err)
		}
		again, err := f.client.Submit(ctx, x.kind, bytes.ReplaceAll(x.body, []byte("\n"), []byte("\n  "))) // the same payload, other whitespace
		if err != nil {
			t.Fatal(err)
		}
		if f.proof(t, first).Index != f.proof(t, again).Index {
			t.Errorf("%s replayed: logged at %d and %d", x.kind, f.proof(t, first).Index, f.proof(t, again).Index)
		}
	}
	if f.runs["completed"] != 1 {
		t.Errorf("a replayed receipt counted its run again: %v", f.runs)
	}
}

// TestUploadBounds: a body declared larger than its route takes is refused
// before it is read (413), and one the upload budget cannot hold now is
// answered 503 with Retry-After, also before it is read: the requests
// below send headers only, and are answered. (Declared sizes are at least
// 1 MiB: for a smaller body Go's server reads up to 256 KiB into the void
// to keep the connection, which holds no memory.)
func TestUploadBounds(t *testing.T) {
	f := newFixture(t)
	for route, limit := range map[string]int64{
		"/v1/cleanroom/runs":         intake.MaxRunStartSize,
		"/v1/cleanroom/receipts":     intake.MaxReceiptSize,
		"/v1/cleanroom/results":      result.MaxSize,
		"/v1/timelock/registrations": timelock.MaxRegistrationSize,
	} {
		size := max(limit+1, 1<<20)
		if status := headersOnly(t, f.srv.URL, route, size); status != "413" {
			t.Errorf("%s with %d bytes declared: %s, want 413", route, size, status)
		}
	}
	// A budget of 1 MiB cannot hold a 2 MiB receipt.
	small := newFixtureBudget(t, web.NewBodyBudget(1<<20))
	if status := headersOnly(t, small.srv.URL, "/v1/cleanroom/receipts", 2<<20); status != "503" {
		t.Errorf("over the budget: %s, want 503", status)
	}
}

// headersOnly sends a POST's headers declaring size bytes, and no body,
// and returns the status code the server answers with.
func headersOnly(t *testing.T, base, route string, size int64) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", route, size)
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: no answer without the body: %v", route, err)
	}
	fields := strings.Fields(line)
	if len(fields) < 2 {
		t.Fatalf("%s: answer %q", route, line)
	}
	return fields[1]
}
