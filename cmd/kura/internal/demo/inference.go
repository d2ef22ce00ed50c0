package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/auditlog/intake"
	"github.com/kura-cc/kura/inference"
	"github.com/kura-cc/kura/inference/proxy"
	"github.com/kura-cc/kura/inference/trust"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/verifier"
)

// inferencePrompt is the secret the demo's user asks the model.
const inferencePrompt = "Summarise patient 4411's scan results"

// confidentialInference runs the confidential-inference episode: a model
// server that streams, a gateway in front of it attested with the INSECURE
// sim TEE and its build approved in the transparency log, a proxy that
// verifies it before sending anything, a streamed answer, and a byte
// count of what crossed the wire — never the prompt or the answer.
func (d *demo) confidentialInference(ctx context.Context, dir string, log *slog.Logger) error {
	d.section("Confidential inference: an attested gateway, end-to-end encrypted streams (simulated TEE: INSECURE)")
	var servers []func()
	defer func() {
		for i := len(servers) - 1; i >= 0; i-- {
			servers[i]()
		}
	}()
	serve := func(h http.Handler) (string, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		sctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { web.Serve(sctx, l, h, log, time.Second); close(done) }()
		servers = append(servers, func() { stop(); <-done })
		return "http://" + l.Addr().String(), nil
	}
	answer := []string{"The", "scan", "shows", "no", "change", "since", "March."}
	model, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, tok := range answer {
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":%q}}]}\n\n", tok+" ")
			w.(http.Flusher).Flush()
			time.Sleep(40 * time.Millisecond)
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	if err != nil {
		return err
	}
	d.say("a model server streams its answers token by token on the TEE's loopback (an OpenAI-compatible API, as vLLM or llama.cpp serve)")

	srv, err := StartServer(ctx, filepath.Join(dir, "inference-server"), "operator", d.cfg.Version, log)
	if err != nil {
		return err
	}
	defer srv.Stop()
	logKey, err := os.ReadFile(filepath.Join(dir, "inference-server", "log-key.pub"))
	if err != nil {
		return err
	}
	a, err := sim.NewAttester(sim.AttesterConfig{})
	if err != nil {
		return err
	}
	m, err := a.Measurement()
	if err != nil {
		return err
	}
	builder, err := party.Generate("gateway-builders", party.KEMX25519)
	if err != nil {
		return err
	}
	b := &trust.Build{TEE: "sim", Measurement: hex.EncodeToString(m), Version: d.cfg.Version, Source: "https://github.com/kura-cc/kura", ApprovedAt: time.Now().UTC()}
	if err := b.Sign(builder); err != nil {
		return err
	}
	build, _ := b.Marshal()
	proof, err := (&intake.Client{BaseURL: srv.URL}).Submit(ctx, auditlog.KindInferenceBuild, build)
	if err != nil {
		return err
	}
	p, err := auditlog.ParseProof(proof)
	if err != nil {
		return err
	}
	d.say("the gateway's builders sign its build (measurement %.16s…) and the transparency log records the approval at index %d", b.Measurement, p.Index)

	keys, err := inference.NewKeySet(time.Hour)
	if err != nil {
		return err
	}
	pub, err := trust.NewPublisher(trust.PublisherConfig{Verifier: &verifier.Client{BaseURL: srv.URL}, Attester: a, Keys: keys.Configs, Build: build, BuildProof: proof, Logger: log})
	if err != nil {
		return err
	}
	if err := pub.Refresh(ctx); err != nil {
		return err
	}
	up, _ := url.Parse(model)
	gw, err := inference.NewGateway(inference.GatewayConfig{Upstream: up, Keys: keys, Attestation: pub, ServedKeys: pub.Keys, Logger: log})
	if err != nil {
		return err
	}
	gwURL, err := serve(gw)
	if err != nil {
		return err
	}
	d.say("the gateway attests its HPKE keys (X25519 and ML-KEM-768+X25519) with the simulated TEE and publishes the verifier's token with its build's approval")

	relay, err := StartRelay(ctx, strings.TrimPrefix(gwURL, "http://"))
	if err != nil {
		return err
	}
	defer relay.Close()
	policyText := fmt.Sprintf("verifiers: [%s]\ngateway: {allow_insecure: true}\nbuild_log: {key: %q, approvers: [%s]}\n", srv.JWKSURL(), strings.TrimSpace(string(logKey)), builder.Card().Fingerprint)
	policy, err := trust.ParsePolicy([]byte(policyText))
	if err != nil {
		return err
	}
	relayURL, _ := url.Parse("http://" + relay.Addr())
	px, err := proxy.New(ctx, proxy.Config{Gateway: relayURL, Policy: policy, Logger: log})
	if err != nil {
		return err
	}
	st, err := px.Check(ctx)
	if err != nil {
		return err
	}
	d.say("the user's proxy checks the gateway before sending anything: token from a trusted verifier, keys bound, build approved by the builders at log index %d — tee %s (INSECURE)", st.Build.LogIndex, st.TEE)
	pxURL, err := serve(px)
	if err != nil {
		return err
	}

	body := fmt.Sprintf(`{"model":"m","stream":true,"messages":[{"role":"user","content":%q}]}`, inferencePrompt)
	start := time.Now()
	resp, err := http.Post(pxURL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var got []string
	var first time.Duration
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var ev struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && json.Unmarshal([]byte(data), &ev) == nil && len(ev.Choices) > 0 {
			if first == 0 {
				first = time.Since(start)
			}
			got = append(got, strings.TrimSpace(ev.Choices[0].Delta.Content))
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if strings.Join(got, " ") != strings.Join(answer, " ") {
		return fmt.Errorf("demo: the streamed answer is %q", got)
	}
	d.say("an OpenAI client asks through the proxy %q and gets, streamed token by token (the first after %d ms, the last after %d ms): %q",
		inferencePrompt, first.Milliseconds(), time.Since(start).Milliseconds(), strings.Join(got, " "))
	wire := relay.Bytes()
	if bytes.Contains(wire, []byte("4411")) || bytes.Contains(wire, []byte("March")) {
		return errors.New("demo: the prompt or the answer crossed the wire in clear")
	}
	d.say("%d bytes crossed the wire between proxy and gateway; neither the prompt nor a token of the answer is among them", len(wire))

	strict := *policy
	strict.GPU.Required = true
	spx, err := proxy.New(ctx, proxy.Config{Gateway: relayURL, Policy: &strict, Logger: log})
	if err != nil {
		return err
	}
	if _, err := spx.Check(ctx); err == nil {
		return errors.New("demo: a policy requiring a GPU accepted a gateway without one")
	} else {
		d.say("a user whose policy requires a verified GPU refuses this gateway and sends it nothing: %v", err)
	}
	return nil
}

// Relay forwards TCP connections to an address and keeps every byte it
// forwards, both ways: what a network observer between two parties sees.
type Relay struct {
	l   net.Listener
	mu  sync.Mutex
	buf bytes.Buffer
}

// StartRelay listens on a loopback port and forwards each connection to
// addr until Close.
func StartRelay(ctx context.Context, addr string) (*Relay, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Relay{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var dialer net.Dialer
				u, err := dialer.DialContext(ctx, "tcp", addr)
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(io.MultiWriter(u, r), c)
				io.Copy(io.MultiWriter(c, r), u)
			}()
		}
	}()
	return r, nil
}

// Addr is the relay's address.
func (r *Relay) Addr() string { return r.l.Addr().String() }

// Close stops accepting connections.
func (r *Relay) Close() error { return r.l.Close() }

// Write records p.
func (r *Relay) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

// Bytes returns every byte forwarded so far.
func (r *Relay) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.buf.Bytes())
}
