package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/inference"
	"github.com/kura-cc/kura/inference/proxy"
	"github.com/kura-cc/kura/inference/trust"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/verifier"
)

// AIConfig configures AI.
type AIConfig struct {
	// Requests is the number of small chat completions timed each way.
	Requests int
	// Tokens is the length of each streamed answer, and Streams how many
	// are timed each way.
	Tokens, Streams int
	// Rate paces the model server's stream in tokens/s (0: as fast as it
	// can write, which measures the pipeline's capacity).
	Rate float64
	JSON bool
}

// AIReport is what AI measured.
type AIReport struct {
	Requests      int     `json:"requests"`
	DirectP50Ms   float64 `json:"direct_p50_ms"`
	DirectP99Ms   float64 `json:"direct_p99_ms"`
	ProxiedP50Ms  float64 `json:"proxied_p50_ms"`
	ProxiedP99Ms  float64 `json:"proxied_p99_ms"`
	OverheadP50Ms float64 `json:"overhead_p50_ms"`
	OverheadP99Ms float64 `json:"overhead_p99_ms"`
	Tokens        int     `json:"tokens_per_stream"`
	Streams       int     `json:"streams"`
	Rate          float64 `json:"paced_tokens_per_s,omitempty"`
	DirectTPS     float64 `json:"direct_tokens_per_s"`
	ProxiedTPS    float64 `json:"proxied_tokens_per_s"`
	Throughput    float64 `json:"throughput_ratio"`
}

// AI measures what confidential inference costs on this machine: the same
// OpenAI-compatible requests sent to a local model server directly and
// through kura ai proxy → kura ai gateway (sealed, with the gateway
// verified once under a policy, as the proxy does), alternating, in one
// process over loopback. It reports the added latency of a small chat
// completion (p50, p99) and the streaming throughput ratio.
func AI(ctx context.Context, cfg AIConfig, w io.Writer) error {
	if cfg.Requests <= 0 || cfg.Tokens <= 0 || cfg.Streams <= 0 || cfg.Rate < 0 {
		return fmt.Errorf("%w: --requests, --tokens and --streams must be positive, --rate not negative", ErrUsage)
	}
	e, err := startAIEnv(ctx, cfg)
	if err != nil {
		return err
	}
	defer e.close()
	direct, proxied := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	chat := func(c *http.Client, base string, stream bool) (int, error) {
		body := `{"model":"bench","messages":[{"role":"user","content":"count to ten"}]}`
		if stream {
			body = `{"model":"bench","stream":true,"messages":[{"role":"user","content":"count"}]}`
		}
		resp, err := c.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("%s: %s", base, resp.Status)
		}
		if !stream {
			_, err := io.Copy(io.Discard, resp.Body)
			return 0, err
		}
		n := 0
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: {") {
				n++
			}
		}
		return n, sc.Err()
	}
	// Warm both paths: connections, the proxy's verification.
	for range 20 {
		if _, err := chat(direct, e.model, false); err != nil {
			return err
		}
		if _, err := chat(proxied, e.proxy, false); err != nil {
			return err
		}
	}
	var d, p []time.Duration
	for range cfg.Requests {
		for _, path := range []struct {
			c    *http.Client
			base string
			out  *[]time.Duration
		}{{direct, e.model, &d}, {proxied, e.proxy, &p}} {
			start := time.Now()
			if _, err := chat(path.c, path.base, false); err != nil {
				return err
			}
			*path.out = append(*path.out, time.Since(start))
		}
	}
	r := AIReport{Requests: cfg.Requests, Tokens: cfg.Tokens, Streams: cfg.Streams, Rate: cfg.Rate}
	r.DirectP50Ms, r.DirectP99Ms = ms(quantile(d, 0.5)), ms(quantile(d, 0.99))
	r.ProxiedP50Ms, r.ProxiedP99Ms = ms(quantile(p, 0.5)), ms(quantile(p, 0.99))
	r.OverheadP50Ms, r.OverheadP99Ms = r.ProxiedP50Ms-r.DirectP50Ms, r.ProxiedP99Ms-r.DirectP99Ms
	var dt, pt time.Duration
	var dn, pn int
	for range cfg.Streams {
		for _, path := range []struct {
			c    *http.Client
			base string
			t    *time.Duration
			n    *int
		}{{direct, e.model, &dt, &dn}, {proxied, e.proxy, &pt, &pn}} {
			start := time.Now()
			n, err := chat(path.c, path.base, true)
			if err != nil {
				return err
			}
			if n != cfg.Tokens {
				return fmt.Errorf("a stream from %s had %d tokens, want %d", path.base, n, cfg.Tokens)
			}
			*path.t += time.Since(start)
			*path.n += n
		}
	}
	r.DirectTPS, r.ProxiedTPS = float64(dn)/dt.Seconds(), float64(pn)/pt.Seconds()
	r.Throughput = r.ProxiedTPS / r.DirectTPS
	if cfg.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "small chat completion (%d each way)\tp50\tp99\n", r.Requests)
	fmt.Fprintf(tw, "  direct to the model server\t%.3f ms\t%.3f ms\n", r.DirectP50Ms, r.DirectP99Ms)
	fmt.Fprintf(tw, "  through proxy and gateway, sealed\t%.3f ms\t%.3f ms\n", r.ProxiedP50Ms, r.ProxiedP99Ms)
	fmt.Fprintf(tw, "  added\t%.3f ms\t%.3f ms\n", r.OverheadP50Ms, r.OverheadP99Ms)
	pace := "unpaced: the pipeline's capacity"
	if cfg.Rate > 0 {
		pace = fmt.Sprintf("the model paced at %.0f tokens/s", cfg.Rate)
	}
	fmt.Fprintf(tw, "streams (%d × %d tokens, %s)\ttokens/s\t\n", r.Streams, r.Tokens, pace)
	fmt.Fprintf(tw, "  direct\t%.0f\t\n", r.DirectTPS)
	fmt.Fprintf(tw, "  through proxy and gateway\t%.0f\t(%.1f%%)\n", r.ProxiedTPS, 100*r.Throughput)
	return tw.Flush()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// quantile returns the q-quantile of ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// aiEnv is a model server, a verifier, a gateway and a proxy on loopback.
type aiEnv struct {
	model, proxy string
	stop         []func()
}

func (e *aiEnv) close() {
	for i := len(e.stop) - 1; i >= 0; i-- {
		e.stop[i]()
	}
}

// serve serves h on a loopback port until the env closes.
func (e *aiEnv) serve(ctx context.Context, h http.Handler) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { web.Serve(ctx, l, h, slog.New(slog.DiscardHandler), time.Second); close(done) }()
	e.stop = append(e.stop, func() { cancel(); <-done })
	return "http://" + l.Addr().String(), nil
}

func startAIEnv(ctx context.Context, cfg AIConfig) (_ *aiEnv, err error) {
	e := &aiEnv{}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.model, err = e.serve(ctx, benchModel(cfg)); err != nil {
		return nil, err
	}
	// A verifier in dev mode, for the gateway's INSECURE sim evidence.
	simV, err := sim.NewVerifier(sim.Config{})
	if err != nil {
		return nil, err
	}
	ap, err := appraisal.New(ctx, appraisal.Config{DevMode: true})
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	iss, err := token.NewIssuer(token.IssuerConfig{Key: key, Build: "kura bench ai (dev mode: INSECURE sim TEE accepted)"})
	if err != nil {
		return nil, err
	}
	svc, err := verifier.New(verifier.Config{TEEs: map[attestation.TEE]attestation.Verifier{attestation.Sim: simV}, Appraiser: ap, Issuer: iss})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	svc.Register(mux, nil)
	vurl, err := e.serve(ctx, mux)
	if err != nil {
		return nil, err
	}
	a, err := sim.NewAttester(sim.AttesterConfig{})
	if err != nil {
		return nil, err
	}
	m, err := a.Measurement()
	if err != nil {
		return nil, err
	}
	keys, err := inference.NewKeySet(time.Hour)
	if err != nil {
		return nil, err
	}
	pub, err := trust.NewPublisher(trust.PublisherConfig{Verifier: &verifier.Client{BaseURL: vurl}, Attester: a, Keys: keys.Configs})
	if err != nil {
		return nil, err
	}
	if err := pub.Refresh(ctx); err != nil {
		return nil, err
	}
	up, _ := url.Parse(e.model)
	gw, err := inference.NewGateway(inference.GatewayConfig{Upstream: up, Keys: keys, Attestation: pub, ServedKeys: pub.Keys})
	if err != nil {
		return nil, err
	}
	gurl, err := e.serve(ctx, gw)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kura-bench-ai-")
	if err != nil {
		return nil, err
	}
	e.stop = append(e.stop, func() { os.RemoveAll(dir) })
	jwks := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwks, iss.JWKS(), 0o600); err != nil {
		return nil, err
	}
	policy, err := trust.ParsePolicy([]byte(fmt.Sprintf("verifiers: [%q]\ngateway: {measurements: [{tee: sim, value: %s}], allow_insecure: true}\n", jwks, hex.EncodeToString(m))))
	if err != nil {
		return nil, err
	}
	gu, _ := url.Parse(gurl)
	px, err := proxy.New(ctx, proxy.Config{Gateway: gu, Policy: policy})
	if err != nil {
		return nil, err
	}
	if _, err := px.Check(ctx); err != nil {
		return nil, err
	}
	if e.proxy, err = e.serve(ctx, px); err != nil {
		return nil, err
	}
	return e, nil
}

// benchModel is an OpenAI-compatible model server: a small chat
// completion, or cfg.Tokens server-sent events, each flushed, paced at
// cfg.Rate.
func benchModel(cfg AIConfig) http.Handler {
	answer := []byte(`{"id":"b","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"one two three four five six seven eight nine ten"},"finish_reason":"stop"}]}`)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if !bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(answer)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		var every time.Duration
		if cfg.Rate > 0 {
			every = time.Duration(float64(time.Second) / cfg.Rate)
		}
		start := time.Now()
		for i := range cfg.Tokens {
			if every > 0 {
				time.Sleep(time.Until(start.Add(time.Duration(i) * every)))
			}
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%d \"}}]}\n\n", i)
			fl.Flush()
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	})
}
