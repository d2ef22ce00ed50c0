package trust

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/verifier"
)

// Publisher keeps a gateway's attestation document fresh and serves it
// (docs/spec/inference.md §6). It attests the gateway's current key
// configurations and context with the TEE (and its devices, such as the
// GPU) for a nonce from the verifier, has the verifier appraise the
// evidence, and publishes the token with the evidence and the build's
// logged approval. It attests again before the token expires and whenever
// the keys change. It is safe for concurrent use.
type Publisher struct {
	cfg PublisherConfig

	mu   sync.RWMutex
	doc  []byte // the current document
	keys []byte // the key configurations it binds
	exp  time.Time
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	Verifier *verifier.Client
	Attester attestation.Attester
	// Devices are attested with the gateway's TEE into a composite bundle:
	// gpu0 for its GPU.
	Devices []attestation.DeviceAttester
	// Keys returns the gateway's current key configurations
	// (application/ohttp-keys), which the evidence binds as its public key.
	Keys func() []byte
	// Context is bound next to them.
	Context Context
	// Build and BuildProof are the signed approval of the gateway's build
	// and its inclusion proof, published as they are (optional).
	Build, BuildProof []byte
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// NewPublisher returns a Publisher; Refresh (or Run) makes its first
// document.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Verifier == nil || cfg.Attester == nil || cfg.Keys == nil {
		return nil, fmt.Errorf("trust: a publisher needs a verifier, an attester and keys")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Context.Purpose = Purpose
	if len(cfg.Build) > 0 {
		if _, err := ParseBuild(cfg.Build); err != nil {
			return nil, err
		}
	}
	return &Publisher{cfg: cfg}, nil
}

// Refresh attests now and publishes the new document.
func (p *Publisher) Refresh(ctx context.Context) error {
	keys := p.cfg.Keys()
	n, err := p.cfg.Verifier.Nonce(ctx)
	if err != nil {
		return fmt.Errorf("gateway attestation: %w", err)
	}
	rd := attestation.RuntimeData{Nonce: n.Nonce, PublicKey: keys, Context: p.cfg.Context.Marshal()}
	b, err := attestation.AttestComposite(ctx, p.cfg.Attester, p.cfg.Devices, rd)
	if err != nil {
		return fmt.Errorf("gateway attestation: %w", err)
	}
	resp, err := p.cfg.Verifier.Verify(ctx, b)
	if err != nil {
		return fmt.Errorf("gateway attestation: %w", err)
	}
	doc, err := json.Marshal(Document{Version: DocumentVersion, Token: resp.Token, Evidence: b, Build: p.cfg.Build, BuildProof: p.cfg.BuildProof})
	if err != nil {
		return err
	}
	exp := tokenExpiry(resp.Token, p.cfg.Now().Add(2*time.Minute))
	p.mu.Lock()
	p.doc, p.keys, p.exp = doc, keys, exp
	p.mu.Unlock()
	p.cfg.Logger.InfoContext(ctx, "gateway attested", "tee", b.TEE, "status", resp.Status, "devices", len(b.RuntimeData.Devices), "expires", exp)
	return nil
}

// Run refreshes the document until ctx ends: at half the token's
// remaining lifetime, at once when the keys change, and after a failure
// every few seconds.
func (p *Publisher) Run(ctx context.Context) {
	for {
		wait := 5 * time.Second
		if err := p.refreshIfNeeded(ctx); err != nil {
			p.cfg.Logger.WarnContext(ctx, "gateway attestation failed", "reason", err)
		} else {
			p.mu.RLock()
			wait = max(min(p.exp.Sub(p.cfg.Now())/2, 5*time.Second), time.Second)
			p.mu.RUnlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// refreshIfNeeded attests again when the keys changed or the token is in
// the second half of its life.
func (p *Publisher) refreshIfNeeded(ctx context.Context) error {
	p.mu.RLock()
	stale := p.doc == nil || !bytes.Equal(p.keys, p.cfg.Keys()) || p.cfg.Now().After(p.exp.Add(-time.Minute))
	p.mu.RUnlock()
	if !stale {
		return nil
	}
	return p.Refresh(ctx)
}

// Keys returns the key configurations the current document binds, or nil
// before the first: what the gateway should serve, so that clients fetch
// keys its attestation vouches for (after a rotation the previous
// generation, which the gateway still accepts, until it has attested the
// new one).
func (p *Publisher) Keys() []byte {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.keys
}

// ServeHTTP serves the current document (GET), or 503 before the first.
func (p *Publisher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.RLock()
	doc := p.doc
	p.mu.RUnlock()
	if doc == nil {
		http.Error(w, "the gateway has not attested yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(doc)
}

// tokenExpiry reads a JWT's exp, unverified (the publisher only schedules
// by it; clients verify the token), or returns def.
func tokenExpiry(tok string, def time.Time) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return def
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return def
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Exp == 0 {
		return def
	}
	return time.Unix(c.Exp, 0)
}
