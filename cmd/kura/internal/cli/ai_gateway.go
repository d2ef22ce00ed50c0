package cli

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/inference"
	inferencetrust "github.com/kura-cc/kura/inference/trust"
	"github.com/kura-cc/kura/internal/keyfile"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/verifier"
)

type aiGatewayFlags struct {
	upstream, addr, verifierURL, tee string
	devices                          []string
	build                            string
	upstreamTokenFile                string
	tlsCert, tlsKey                  string
	insecureHTTP, dev                bool
	rotate                           time.Duration
	maxRequest                       int64
	metricsAddr                      string
}

func newAIGatewayCmd(g *globals) *cobra.Command {
	f := &aiGatewayFlags{}
	cl := &clientFlags{g: g}
	cmd := &cobra.Command{
		Use:   "gateway --upstream URL --verifier URL",
		Short: "Serve an OpenAI-compatible model server to kura ai proxies, end-to-end encrypted, from inside a TEE",
		Long: `Run inside a TEE next to an OpenAI-compatible model server (--upstream, e.g. vLLM, llama.cpp
server or Ollama on the TEE's loopback) and answer only requests sealed to this gateway's HPKE keys
(docs/spec/inference.md): GET /.well-known/ohttp-gateway serves the key configurations,
GET /.well-known/kura/attestation the attestation document, and every other path is opened,
forwarded to the model server and its answer sealed back, streamed frame by frame.

At start, and again before each token expires and whenever the keys rotate (--rotate), the gateway
attests: it binds its key configurations (and, with TLS, its certificate's key) into evidence from
its TEE (--tee) and its devices (--device gpu0=nvidia for the GPU, a composite bundle), has the
verifier at --verifier appraise it, and publishes the token with the evidence and the build's
logged approval (--build FILE, its proof at FILE.proof.json: kura ai approve-build). It never logs
request or response content; its log lines carry method, path, status, sizes and durations.`,
		Example: `  kura ai gateway --upstream http://127.0.0.1:8000 --verifier https://kura.example:8443 \
    --device gpu0=nvidia --build build.json --tls-cert gw.pem --tls-key gw.key --addr :8443`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAIGateway(cmd, g, f, cl)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.upstream, "upstream", "", "the model server's base URL, e.g. http://127.0.0.1:8000 (required)")
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8443", "listen address")
	fs.StringVar(&f.verifierURL, "verifier", g.envDefault("KURA_VERIFIER", ""), "the attestation verifier (a kura server's URL) that appraises this gateway (KURA_VERIFIER; required)")
	fs.StringVar(&f.tee, "tee", "auto", "auto, snp, tdx, az-snp-vtpm, az-tdx-vtpm, tpm or sim (INSECURE, with --dev)")
	fs.StringArrayVar(&f.devices, "device", nil, "NAME=TEE: attest this device too, e.g. gpu0=nvidia (repeatable)")
	fs.StringVar(&f.build, "build", "", "the signed approval of this build (kura ai approve-build -o FILE), published with its proof FILE.proof.json")
	fs.StringVar(&f.upstreamTokenFile, "upstream-token-file", "", "file holding the model server's API key, sent to it as a bearer token (clients' own Authorization headers are never forwarded)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate (PEM); its key is bound into the attestation")
	fs.StringVar(&f.tlsKey, "tls-key", "", "TLS private key (PEM, not readable by others)")
	fs.BoolVar(&f.insecureHTTP, "insecure-http", false, "serve plain HTTP on a non-loopback address (a TLS-terminating proxy in front; the bodies stay sealed)")
	fs.BoolVar(&f.dev, "dev", false, "development: allow --tee sim, whose evidence proves nothing (INSECURE)")
	fs.DurationVar(&f.rotate, "rotate", time.Hour, "rotate the HPKE keys this often (each is accepted for up to twice as long)")
	fs.Int64Var(&f.maxRequest, "max-request-bytes", inference.DefaultMaxRequestBytes, "largest sealed request body accepted")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics (request counts and durations by route and status class, nothing of any content) at http://ADDR/metrics")
	cl.addCA(cmd, false)
	return cmd
}

func runAIGateway(cmd *cobra.Command, g *globals, f *aiGatewayFlags, cl *clientFlags) error {
	ctx := cmd.Context()
	switch {
	case f.upstream == "":
		return usagef("--upstream URL is required: the model server this gateway serves")
	case f.verifierURL == "":
		return usagef("--verifier URL is required: the verifier that appraises this gateway")
	case f.tee == "sim" && !f.dev:
		return fmt.Errorf("%w: INSECURE: --tee sim proves nothing; it needs --dev", attestation.ErrPolicyDenied)
	case (f.tlsCert == "") != (f.tlsKey == ""):
		return usagef("--tls-cert and --tls-key go together")
	}
	up, err := url.Parse(f.upstream)
	if err != nil || (up.Scheme != "http" && up.Scheme != "https") || up.Host == "" {
		return usagef("--upstream %q: want an http(s) URL", f.upstream)
	}
	log, err := g.logger()
	if err != nil {
		return err
	}
	hc, err := cl.resolve()
	if err != nil {
		return err
	}
	var tlsCfg *tls.Config
	gctx := inferencetrust.Context{}
	if f.tlsCert != "" {
		cert, err := loadTLSFlags(f.tlsCert, f.tlsKey)
		if err != nil {
			return err
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return fmt.Errorf("--tls-cert: %w", err)
		}
		sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
		gctx.TLSSPKI = hex.EncodeToString(sum[:])
		tlsCfg = serverTLSConfig(cert)
	}
	a, err := attester(ctx, f.tee, teeDevice{})
	if err != nil {
		return err
	}
	devices, closeDevices, err := deviceAttesters(ctx, f.devices, teeDevice{})
	if err != nil {
		return err
	}
	defer closeDevices()
	var build, proof []byte
	if f.build != "" {
		if build, err = readInput("--build", f.build); err != nil {
			return err
		}
		if proof, err = readInput("--build (its proof)", f.build+".proof.json"); err != nil {
			return err
		}
	}
	keys, err := inference.NewKeySet(f.rotate)
	if err != nil {
		return err
	}
	pub, err := inferencetrust.NewPublisher(inferencetrust.PublisherConfig{
		Verifier: &verifier.Client{BaseURL: f.verifierURL, HTTP: hc}, Attester: a, Devices: devices,
		Keys: keys.Configs, Context: gctx, Build: build, BuildProof: proof, Logger: log,
	})
	if err != nil {
		return err
	}
	if err := pub.Refresh(ctx); err != nil {
		return err
	}
	go pub.Run(ctx)
	upstreamClient := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if f.upstreamTokenFile != "" {
		tok, err := keyfile.ReadSecret(f.upstreamTokenFile)
		if err != nil {
			return fmt.Errorf("--upstream-token-file: %w", err)
		}
		upstreamClient.Transport = bearer{token: strings.TrimSpace(string(tok)), rt: http.DefaultTransport}
	}
	gw, err := inference.NewGateway(inference.GatewayConfig{Upstream: up, Keys: keys, Client: upstreamClient,
		MaxRequestBytes: f.maxRequest, Logger: log, Attestation: pub, ServedKeys: pub.Keys})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listen on --addr %s: %w", f.addr, err)
	}
	if ta, ok := l.Addr().(*net.TCPAddr); tlsCfg == nil && !f.insecureHTTP && (!ok || !ta.IP.IsLoopback()) {
		l.Close()
		return usagef("--addr %s is not a loopback address and no TLS is configured: give --tls-cert and --tls-key, listen on 127.0.0.1, or pass --insecure-http behind a TLS-terminating proxy", f.addr)
	}
	scheme := "http"
	if tlsCfg != nil {
		l, scheme = tls.NewListener(l, tlsCfg), "https"
	}
	if a.TEE() == attestation.Sim {
		fmt.Fprintln(g.env.Stderr, "kura: INSECURE: the gateway attests with the simulated TEE; only proxies whose policy allows it (development) will use it")
	}
	m := newGatewayMetrics()
	if f.metricsAddr != "" {
		ml, err := net.Listen("tcp", f.metricsAddr)
		if err != nil {
			l.Close()
			return fmt.Errorf("listen on --metrics-addr %s: %w", f.metricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.handler())
		go web.Serve(ctx, ml, mux, log, time.Second)
		fmt.Fprintf(cmd.OutOrStdout(), "kura metrics on http://%s/metrics\n", ml.Addr())
	}
	fmt.Fprintf(cmd.OutOrStdout(), "kura listening on %s://%s\n", scheme, l.Addr())
	return web.Serve(ctx, l, m.wrap(log, gw), log, 5*time.Second)
}

// bearer adds the model server's API key to the gateway's requests to it.
type bearer struct {
	token string
	rt    http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.rt.RoundTrip(r)
}
