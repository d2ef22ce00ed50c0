// Package proxy is the client side of confidential inference
// (docs/spec/inference.md): a local OpenAI-compatible endpoint that
// verifies a gateway (package inference/trust) and forwards every request
// to it sealed (package inference), so that any OpenAI client gets
// end-to-end encryption unchanged. kura ai proxy serves it.
//
// # Security model
//
// The proxy sends nothing to a gateway until the gateway's key
// configurations and attestation pass its policy, and checks again when
// that answer expires or the keys change. With an https gateway, the TLS
// key of every connection must be the one the gateway's attestation binds,
// so the certificate need not chain to any CA. The app-to-proxy leg is
// plaintext on the loopback: the proxy must run on the user's machine,
// and it drops Authorization, cookies and every header but content-type
// and accept.
package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/kura-cc/kura/inference"
	"github.com/kura-cc/kura/inference/trust"
	"github.com/kura-cc/kura/internal/web"
)

// maxAttestationDoc bounds the attestation document the proxy reads.
const maxAttestationDoc = trust.MaxDocumentSize

// Proxy is a local OpenAI-compatible endpoint for a gateway: it verifies
// the gateway under a policy and forwards every request to it, sealed. It
// is an http.Handler and safe for concurrent use.
type Proxy struct {
	gateway *url.URL
	checker *trust.Checker
	hc      *http.Client // to the gateway, pinning its attested TLS key
	pin     *spkiPin
	rt      *inference.Transport
	log     *slog.Logger

	mu     sync.Mutex
	status *trust.Status
	reason string
}

// Config configures a Proxy.
type Config struct {
	// Gateway is the gateway's origin.
	Gateway *url.URL
	// Policy says which gateways to trust.
	Policy *trust.Policy
	// HTTP fetches the policy's verifier keys (default http.DefaultClient).
	HTTP   *http.Client
	Logger *slog.Logger
}

// New returns a Proxy for cfg; it loads the policy's verifier keys but
// does not contact the gateway (Check does, and every request).
func New(ctx context.Context, cfg Config) (*Proxy, error) {
	gw, policy, log := cfg.Gateway, cfg.Policy, cfg.Logger
	if gw == nil || policy == nil {
		return nil, errors.New("proxy: a gateway and a policy are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	checker, err := trust.NewChecker(ctx, trust.CheckerConfig{Policy: policy, HTTP: cfg.HTTP, Logger: log})
	if err != nil {
		return nil, err
	}
	pin := &spkiPin{}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// The gateway's certificate need not chain to a CA: its key is trusted
	// because its attestation binds it (pin), checked on every connection
	// once the gateway is verified.
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, VerifyConnection: pin.verify}
	p := &Proxy{gateway: gw, checker: checker, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}, pin: pin, log: log}
	p.rt, err = inference.NewTransport(inference.TransportConfig{Gateway: gw, Base: tr, Verify: p.verify, MaxAge: policy.MaxAge})
	return p, err
}

// verify is the Transport's Verify: it fetches the attestation document
// and checks it, with the key configurations the Transport fetched, under
// the policy; with TLS, the connection's key must be the attested one.
func (p *Proxy) verify(ctx context.Context, keyConfigs []byte) (time.Time, error) {
	st, err := p.check(ctx, keyConfigs)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.status, p.reason = nil, err.Error()
		return time.Time{}, err
	}
	p.status, p.reason = st, ""
	return st.Expires, nil
}

func (p *Proxy) check(ctx context.Context, keyConfigs []byte) (*trust.Status, error) {
	doc, err := p.get(ctx, inference.AttestationPath, maxAttestationDoc)
	if err != nil {
		return nil, err
	}
	st, err := p.checker.Check(ctx, keyConfigs, doc)
	if err != nil {
		return nil, err
	}
	if p.gateway.Scheme == "https" {
		if st.TLSSPKI == "" {
			return nil, fmt.Errorf("%w: the gateway serves TLS with a key its attestation does not bind", trust.ErrUntrusted)
		}
		if seen := p.pin.seen(); seen != st.TLSSPKI {
			return nil, fmt.Errorf("%w: the gateway's TLS key (SHA-256 %s) is not the one its attestation binds (%s)", trust.ErrUntrusted, seen, st.TLSSPKI)
		}
		p.pin.set(st.TLSSPKI)
	}
	return st, nil
}

// Check verifies the gateway now: its key configurations and attestation
// document under the policy. A proxy checks at start, and for the status
// page; requests check when the last answer expires.
func (p *Proxy) Check(ctx context.Context) (*trust.Status, error) {
	keys, err := p.get(ctx, inference.KeysPath, 64<<10)
	if err != nil {
		return nil, err
	}
	if _, err := p.verify(ctx, keys); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, nil
}

// get fetches a gateway path, bounded.
func (p *Proxy) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.gateway.JoinPath(path).String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("gateway %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("gateway %s: %s", path, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("larger than %d bytes", limit)
	}
	if err != nil {
		return nil, fmt.Errorf("gateway %s: %w", path, err)
	}
	return data, nil
}

// RoundTrip sends r to the gateway sealed, after the same verification as
// ServeHTTP, and returns the opened answer: an http.Client whose Transport
// is the Proxy gets confidential inference in process, without the local
// endpoint. r's URL names only the path (and query); its host is
// ignored.
func (p *Proxy) RoundTrip(r *http.Request) (*http.Response, error) { return p.rt.RoundTrip(r) }

// ServeHTTP answers /v1/kura/status and forwards every other request to
// the gateway, sealed, copying the answer as it streams.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == StatusPath {
		p.serveStatus(w, r)
		return
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.gateway.JoinPath(r.URL.Path).String(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	out.URL.RawQuery = r.URL.RawQuery
	for _, h := range []string{"Content-Type", "Accept"} {
		if v := r.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	resp, err := p.rt.RoundTrip(out)
	if err != nil {
		p.log.WarnContext(r.Context(), "request not sent to the gateway", "path", r.URL.Path, "reason", err)
		status := http.StatusBadGateway
		if errors.Is(err, trust.ErrTrust) {
			status = http.StatusServiceUnavailable
		}
		http.Error(w, "kura ai proxy: "+err.Error(), status)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	buf := make([]byte, 32<<10)
	fl, _ := w.(http.Flusher)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				// A frame failed to open or the stream was cut: the client
				// sees a truncated answer and the connection closes.
				p.log.WarnContext(r.Context(), "answer from the gateway broken off", "path", r.URL.Path, "reason", err)
				panic(http.ErrAbortHandler)
			}
			return
		}
	}
}

// StatusPath is where a Proxy answers what it verified.
const StatusPath = "/v1/kura/status"

// Status is what GET StatusPath answers.
type Status struct {
	Gateway  string        `json:"gateway"`
	Verified bool          `json:"verified"`
	Status   *trust.Status `json:"status,omitempty"`
	Reason   string        `json:"reason,omitempty"`
}

func (p *Proxy) serveStatus(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	st, reason := p.status, p.reason
	p.mu.Unlock()
	if st == nil || time.Now().After(st.Expires) {
		st, _ = p.Check(r.Context())
		p.mu.Lock()
		reason = p.reason
		p.mu.Unlock()
	}
	web.WriteJSON(w, http.StatusOK, Status{Gateway: p.gateway.String(), Verified: st != nil, Status: st, Reason: reason})
}

// spkiPin remembers the TLS key the gateway last showed and, once its
// attestation bound one, refuses connections with another.
type spkiPin struct {
	mu          sync.Mutex
	last, wants string
}

func (s *spkiPin) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the gateway sent no certificate")
	}
	sum := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
	got := hex.EncodeToString(sum[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wants != "" && got != s.wants {
		return fmt.Errorf("the gateway's TLS key (SHA-256 %s) is not the attested one (%s)", got, s.wants)
	}
	s.last = got
	return nil
}

func (s *spkiPin) seen() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *spkiPin) set(spki string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wants = spki
}
