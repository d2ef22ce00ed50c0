package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/cmd/kura/internal/demo"
	"github.com/kura-cc/kura/party"
)

// The secrets of the AI tests: a prompt and an answer that must never
// cross the wire between proxy and gateway in clear.
const (
	aiPrompt = "what is the patient's diagnosis? PROMPT-7f3a"
	aiAnswer = "the diagnosis is confidential ANSWER-c91e"
)

// fakeModel is an OpenAI-compatible model server: chat completions, plain
// and streamed, and embeddings. It records the prompts it saw.
func fakeModel(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream   bool `json:"stream"`
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 || req.Messages[0].Content != aiPrompt {
			http.Error(w, "the model did not get the prompt", http.StatusBadRequest)
			return
		}
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"object":"chat.completion","choices":[{"message":{"role":"assistant","content":%q}}]}`, aiAnswer)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, tok := range strings.Fields(aiAnswer) {
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":%q}}]}\n\n", tok+" ")
			w.(http.Flusher).Flush()
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	})
	mux.HandleFunc("POST /v1/embeddings", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"list","data":[{"embedding":[0.25,-0.5]}]}`)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// runInBackground runs a kura command that serves, until the test ends,
// and returns the address it announced ("kura listening on SCHEME://ADDR").
func runInBackground(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, args, Env{Stdout: pw, Stderr: &stderr})
		pw.Close()
	}()
	t.Cleanup(func() { cancel(); <-done })
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if _, addr, ok := strings.Cut(sc.Text(), "kura listening on "); ok {
			go io.Copy(io.Discard, pr)
			return addr
		}
	}
	t.Fatalf("kura %s never listened\n%s", strings.Join(args, " "), stderr.String())
	return ""
}

// aiWorld is a kura server (verifier and transparency log), a model
// server, a build approver and a gateway in front of the model, attested
// with the INSECURE sim TEE.
type aiWorld struct {
	server, gateway, measurement, logKey, approver, jwks string
	dir, metrics                                         string
}

func newAIWorld(t *testing.T) *aiWorld {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	srv, err := demo.StartServer(ctx, filepath.Join(dir, "server"), "owner", "test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	logKey, err := os.ReadFile(filepath.Join(dir, "server", "log-key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := party.Generate("gateway-builders", party.KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	idDir := filepath.Join(dir, "builders")
	if err := id.Save(idDir); err != nil {
		t.Fatal(err)
	}
	m, err := sim.ExecutableMeasurement()
	if err != nil {
		t.Fatal(err)
	}
	w := &aiWorld{server: srv.URL, measurement: hex.EncodeToString(m), logKey: strings.TrimSpace(string(logKey)),
		approver: id.Card().Fingerprint, jwks: srv.JWKSURL(), dir: dir}
	build := filepath.Join(dir, "build.json")
	if code, out := run(ctx, "ai", "approve-build", "--tee", "sim", "--measurement", w.measurement, "--version", "1.0.0",
		"--source", "https://example.com/gateway@1", "--identity", idDir, "--url", srv.URL, "-o", build, "--json"); code != ExitOK || !strings.Contains(out, `"log_index"`) {
		t.Fatalf("ai approve-build: exit %d\n%s", code, out)
	}
	model := fakeModel(t)
	w.metrics = freeAddr(t)
	w.gateway = runInBackground(t, "ai", "gateway", "--upstream", model.URL, "--verifier", srv.URL, "--tee", "sim", "--dev",
		"--build", build, "--addr", "127.0.0.1:0", "--metrics-addr", w.metrics)
	return w
}

// freeAddr returns a loopback address nothing listens on (for a flag
// that takes an address and does not announce it).
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// policy writes a proxy policy; extra is appended YAML.
func (w *aiWorld) policy(t *testing.T, name, extra string) string {
	t.Helper()
	p := fmt.Sprintf("verifiers: [%s]\ngateway:\n  measurements: [{tee: sim, value: %s}]\n  allow_insecure: true\nbuild_log:\n  key: %q\n  approvers: [%s]\n%s",
		w.jwks, w.measurement, w.logKey, w.approver, extra)
	path := filepath.Join(w.dir, name)
	if err := os.WriteFile(path, []byte(p), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAIProxyGateway: an OpenAI client talks to the proxy; the proxy
// verifies the gateway (sim TEE, logged build) and seals every request; a
// capture of every byte between proxy and gateway holds neither the
// prompt nor the answer; streams stay streams.
func TestAIProxyGateway(t *testing.T) {
	w := newAIWorld(t)
	relay, err := demo.StartRelay(context.Background(), strings.TrimPrefix(w.gateway, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	relayAddr := relay.Addr()
	proxy := runInBackground(t, "ai", "proxy", "--to", "http://"+relayAddr, "--policy", w.policy(t, "policy.yaml", ""), "--addr", "127.0.0.1:0")

	post := func(path, body string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Post(proxy+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp, string(data)
	}
	chat := fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":%q}]}`, aiPrompt)
	resp, body := post("/v1/chat/completions", chat)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, aiAnswer) || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("chat: %s %q", resp.Status, body)
	}
	resp, body = post("/v1/chat/completions", strings.Replace(chat, `"model":"m"`, `"model":"m","stream":true`, 1))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || strings.Count(body, "data: ") != len(strings.Fields(aiAnswer))+1 || !strings.Contains(body, "ANSWER-c91e") {
		t.Fatalf("stream: %s %q", resp.Status, body)
	}
	resp, body = post("/v1/embeddings", `{"model":"m","input":"`+aiPrompt+`"}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "0.25") {
		t.Fatalf("embeddings: %s %q", resp.Status, body)
	}

	sresp, err := http.Get(proxy + "/v1/kura/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Verified bool `json:"verified"`
		Status   struct {
			TEE   string `json:"tee"`
			Build struct {
				Version string `json:"version"`
			} `json:"build"`
			Insecure bool `json:"insecure"`
		} `json:"status"`
	}
	json.NewDecoder(sresp.Body).Decode(&st)
	sresp.Body.Close()
	if !st.Verified || st.Status.TEE != "sim" || !st.Status.Insecure || st.Status.Build.Version != "1.0.0" {
		t.Errorf("status = %+v", st)
	}

	// The gateway's metrics count and time requests by route and status
	// class, and hold nothing of any request.
	mresp, err := http.Get("http://" + w.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !bytes.Contains(metrics, []byte(`kura_ai_gateway_requests_total{code="2xx",route="/"} 3`)) || !bytes.Contains(metrics, []byte(`kura_ai_gateway_request_duration_seconds_count{route="/"} 3`)) {
		t.Errorf("metrics do not count the three sealed requests:\n%s", metrics)
	}
	for _, leak := range []string{"chat/completions", "embeddings", "PROMPT", "ANSWER"} {
		if bytes.Contains(metrics, []byte(leak)) {
			t.Errorf("the metrics name %q", leak)
		}
	}

	wire := relay.Bytes()
	if len(wire) < 1000 {
		t.Fatalf("the relay saw only %d bytes", len(wire))
	}
	for _, secret := range []string{"PROMPT-7f3a", "ANSWER-c91e", "diagnosis", "text/event-stream", "[0.25,-0.5]"} {
		if bytes.Contains(wire, []byte(secret)) {
			t.Errorf("%q crossed the wire between proxy and gateway in clear", secret)
		}
	}
}

// TestAIProxyRefuses: a proxy whose policy the gateway does not meet
// refuses to start, naming why, and sends the gateway no request.
func TestAIProxyRefuses(t *testing.T) {
	w := newAIWorld(t)
	ctx := context.Background()
	for name, tc := range map[string]struct{ extra, why string }{
		"gpu required":   {"gpu: {required: true}\n", "no gpu0"},
		"other approver": {"", "does not trust"},
	} {
		pol := w.policy(t, name+".yaml", tc.extra)
		if name == "other approver" {
			data, _ := os.ReadFile(pol)
			os.WriteFile(pol, bytes.Replace(data, []byte(w.approver), []byte(strings.Repeat("ab", 32)), 1), 0o644)
		}
		code, out := run(ctx, "ai", "proxy", "--to", w.gateway, "--policy", pol, "--addr", "127.0.0.1:0")
		if code != ExitBadEvidence || !strings.Contains(out, tc.why) {
			t.Errorf("%s: exit %d, want %d naming %q\n%s", name, code, ExitBadEvidence, tc.why, out)
		}
	}
	// A policy that does not allow the INSECURE sim TEE.
	pol := w.policy(t, "strict.yaml", "")
	data, _ := os.ReadFile(pol)
	os.WriteFile(pol, bytes.Replace(data, []byte("allow_insecure: true"), []byte("allow_insecure: false"), 1), 0o644)
	if code, out := run(ctx, "ai", "proxy", "--to", w.gateway, "--policy", pol, "--addr", "127.0.0.1:0"); code != ExitBadEvidence || !strings.Contains(out, "INSECURE") {
		t.Errorf("sim not allowed: exit %d\n%s", code, out)
	}
}

// TestAIProxyTLS: over https the proxy trusts the gateway's certificate
// because its attestation binds the key, not because of any CA; a relay
// that terminates TLS with another key is refused, though it forwards the
// real gateway's keys and attestation.
func TestAIProxyTLS(t *testing.T) {
	w := newAIWorld(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, filepath.Join(dir, "a"))
	model := fakeModel(t)
	gw := runInBackground(t, "ai", "gateway", "--upstream", model.URL, "--verifier", w.server, "--tee", "sim", "--dev",
		"--build", filepath.Join(w.dir, "build.json"), "--addr", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
	if !strings.HasPrefix(gw, "https://") {
		t.Fatalf("gateway at %s, want https", gw)
	}
	pol := w.policy(t, "tls.yaml", "")
	proxy := runInBackground(t, "ai", "proxy", "--to", gw, "--policy", pol, "--addr", "127.0.0.1:0")
	resp, err := http.Post(proxy+"/v1/chat/completions", "application/json", strings.NewReader(fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":%q}]}`, aiPrompt)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), aiAnswer) {
		t.Fatalf("over TLS: %s %q", resp.Status, body)
	}

	// A TLS-terminating relay with another key in front of the gateway.
	otherCert, otherKey := selfSigned(t, filepath.Join(dir, "b"))
	pair, err := tls.LoadX509KeyPair(otherCert, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := tls.Dial("tcp", strings.TrimPrefix(gw, "https://"), &tls.Config{InsecureSkipVerify: true})
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c)
				io.Copy(c, u)
			}()
		}
	}()
	code, out := run(context.Background(), "ai", "proxy", "--to", "https://"+l.Addr().String(), "--policy", pol, "--addr", "127.0.0.1:0")
	if code != ExitBadEvidence || !strings.Contains(out, "TLS key") {
		t.Errorf("TLS-terminating relay: exit %d, want %d naming the TLS key\n%s", code, ExitBadEvidence, out)
	}
}
