package trust

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/veraison/ear"
	"golang.org/x/mod/sumdb/note"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/token"
)

// Status is what a check established about a gateway: what /v1/kura/status
// of kura's proxy shows.
type Status struct {
	TEE         string    `json:"tee"`
	Measurement string    `json:"measurement"`
	Insecure    bool      `json:"insecure"`
	Appraisal   string    `json:"appraisal"`
	GPU         *GPU      `json:"gpu,omitempty"`
	Build       *BuildRef `json:"build,omitempty"`
	// KeysSHA256 is the SHA-256 of the key configurations the token binds.
	KeysSHA256 string `json:"keys_sha256"`
	// TLSSPKI is the SHA-256 of the TLS key the gateway bound, if any.
	TLSSPKI    string    `json:"tls_spki_sha256,omitempty"`
	Verifier   string    `json:"verifier"`
	VerifiedAt time.Time `json:"verified_at"`
	// Expires is when the verification lapses: the token's expiry or
	// VerifiedAt plus the policy's max_age, whichever is first.
	Expires time.Time `json:"expires"`
}

// GPU describes the gateway's verified GPU.
type GPU struct {
	TEE         string `json:"tee"`
	Measurement string `json:"measurement"`
	Driver      string `json:"driver_version,omitempty"`
	VBIOS       string `json:"vbios_version,omitempty"`
}

// BuildRef describes the logged approval of the gateway's build.
type BuildRef struct {
	Version   string `json:"version"`
	Source    string `json:"source"`
	Approver  string `json:"approver"`
	LogOrigin string `json:"log_origin"`
	LogIndex  uint64 `json:"log_index"`
}

// Checker decides whether a gateway may be sent anything, under a Policy.
// It is safe for concurrent use.
type Checker struct {
	policy    *Policy
	tokens    *token.Verifier
	log       note.Verifier // nil when the policy has no build log
	approvers []string
	now       func() time.Time
	slog      *slog.Logger
}

// CheckerConfig configures NewChecker.
type CheckerConfig struct {
	Policy *Policy
	// HTTP fetches the verifiers' JWKS URLs (default http.DefaultClient).
	HTTP *http.Client
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// NewChecker loads the policy's verifier keys (fetching JWKS URLs) and log
// key.
func NewChecker(ctx context.Context, cfg CheckerConfig) (*Checker, error) {
	p := cfg.Policy
	if p == nil {
		return nil, fmt.Errorf("%w: no policy", ErrMalformed)
	}
	c := &Checker{policy: p, approvers: p.BuildLog.Approvers, now: cfg.Now, slog: cfg.Logger}
	if c.now == nil {
		c.now = time.Now
	}
	if c.slog == nil {
		c.slog = slog.New(slog.DiscardHandler)
	}
	fetch := func(ctx context.Context) (jwk.Set, error) { return loadJWKS(ctx, cfg.HTTP, p.Verifiers) }
	keys, err := fetch(ctx)
	if err != nil {
		return nil, err
	}
	if c.tokens, err = token.NewVerifier(token.VerifierConfig{Keys: keys, Now: c.now, Refresh: fetch}); err != nil {
		return nil, err
	}
	if p.BuildLog.Key != "" {
		if c.log, err = auditlog.ParseVerifierKey(p.BuildLog.Key); err != nil {
			return nil, fmt.Errorf("%w: build_log.key: %w", ErrMalformed, err)
		}
	}
	return c, nil
}

// loadJWKS reads every verifier's keys into one set.
func loadJWKS(ctx context.Context, hc *http.Client, srcs []string) (jwk.Set, error) {
	set := jwk.NewSet()
	for _, src := range srcs {
		var s jwk.Set
		var err error
		if strings.HasPrefix(src, "https://") || strings.HasPrefix(src, "http://") {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			s, err = token.FetchJWKS(ctx, hc, src)
			cancel()
		} else {
			var data []byte
			if data, err = os.ReadFile(src); err == nil {
				s, err = token.ParseJWKS(data)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("inference policy: verifier %s: %w", src, err)
		}
		for i := range s.Len() {
			k, _ := s.Key(i)
			if err := set.AddKey(k); err != nil {
				return nil, err
			}
		}
	}
	return set, nil
}

// Check verifies a gateway's attestation document against its key
// configurations (the application/ohttp-keys bytes it serves) and the
// policy, and returns what it established. Any failure wraps ErrUntrusted
// (or ErrMalformed) and names the check: the caller then sends nothing.
func (c *Checker) Check(ctx context.Context, keyConfigs, document []byte) (*Status, error) {
	st, err := c.check(ctx, keyConfigs, document)
	if err != nil {
		c.slog.WarnContext(ctx, "inference gateway refused", "reason", err)
		return nil, err
	}
	c.slog.InfoContext(ctx, "inference gateway verified", "tee", st.TEE, "measurement", st.Measurement, "gpu", st.GPU != nil, "insecure", st.Insecure, "expires", st.Expires)
	return st, nil
}

func (c *Checker) check(ctx context.Context, keyConfigs, document []byte) (*Status, error) {
	untrusted := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrUntrusted, fmt.Sprintf(format, args...))
	}
	doc, err := ParseDocument(document)
	if err != nil {
		return nil, err
	}
	claims, err := c.tokens.Verify(ctx, []byte(doc.Token))
	if err != nil {
		return nil, untrusted("the gateway's attestation token: %v", err)
	}
	keysSum := sha256.Sum256(keyConfigs)
	if !bytes.Equal(claims.RuntimePublicKey, keyConfigs) {
		return nil, untrusted("the gateway's key configurations (SHA-256 %x) are not the ones its attestation binds: a key the TEE does not hold could read the requests", keysSum)
	}
	var gc Context
	if err := decodeStrict(claims.RuntimeContext, &gc); err != nil || gc.Purpose != Purpose {
		return nil, untrusted("the attested runtime context is not a kura inference gateway's (%q)", claims.RuntimeContext)
	}
	cpu, ok := claims.Submods[attestation.PrimaryDevice]
	if !ok {
		return nil, untrusted("the token has no %s appraisal", attestation.PrimaryDevice)
	}
	st := &Status{Appraisal: cpu.Status.String(), KeysSHA256: hex.EncodeToString(keysSum[:]), TLSSPKI: gc.TLSSPKI, Verifier: claims.KeyID, VerifiedAt: c.now()}
	st.TEE, _ = cpu.Evidence["tee"].(string)
	st.Measurement, _ = cpu.Evidence["measurement"].(string)
	st.Insecure, _ = cpu.Evidence["insecure"].(bool)
	switch {
	case st.Insecure || st.TEE == string(attestation.Sim):
		if !c.policy.Gateway.AllowInsecure {
			return nil, untrusted("INSECURE: the gateway runs in the simulated TEE, which proves nothing; only a policy with gateway.allow_insecure (development) accepts it")
		}
		st.Insecure = true
		if cpu.Status != ear.TrustTierAffirming && cpu.Status != ear.TrustTierWarning {
			return nil, untrusted("the verifier appraised the gateway %s", cpu.Status)
		}
	case cpu.Status != ear.TrustTierAffirming:
		return nil, untrusted("the verifier appraised the gateway %s, not affirming", cpu.Status)
	}
	if ms := c.policy.Gateway.Measurements; len(ms) > 0 && !slices.ContainsFunc(ms, func(m Measurement) bool {
		return m.TEE == st.TEE && strings.EqualFold(m.Value, st.Measurement)
	}) {
		return nil, untrusted("the gateway's measurement %s on %s is not one the policy allows", st.Measurement, st.TEE)
	}
	if st.GPU, err = c.checkGPU(claims); err != nil {
		return nil, err
	}
	if c.log != nil {
		if st.Build, err = c.checkBuild(doc, st); err != nil {
			return nil, err
		}
	}
	st.Expires = claims.Expiry
	if deadline := st.VerifiedAt.Add(c.policy.MaxAge); deadline.Before(st.Expires) {
		st.Expires = deadline
	}
	return st, nil
}

// checkGPU finds the gateway's GPU (submod gpu0) and judges it by the
// policy.
func (c *Checker) checkGPU(claims *token.Claims) (*GPU, error) {
	g, ok := claims.Submods["gpu0"]
	if !ok {
		if c.policy.GPU.Required {
			return nil, fmt.Errorf("%w: the policy requires a verified GPU and the gateway's evidence has none (no gpu0)", ErrUntrusted)
		}
		return nil, nil
	}
	gpu := &GPU{}
	gpu.TEE, _ = g.Evidence["tee"].(string)
	gpu.Measurement, _ = g.Evidence["measurement"].(string)
	gpu.Driver, _ = g.Evidence["driver_version"].(string)
	gpu.VBIOS, _ = g.Evidence["vbios_version"].(string)
	if !c.policy.GPU.Required {
		return gpu, nil
	}
	switch {
	case gpu.TEE != string(attestation.NVIDIA):
		return nil, fmt.Errorf("%w: the gateway's gpu0 is %q evidence, not an NVIDIA GPU's", ErrUntrusted, gpu.TEE)
	case g.Status != ear.TrustTierAffirming:
		return nil, fmt.Errorf("%w: the verifier appraised the gateway's GPU %s, not affirming", ErrUntrusted, g.Status)
	case len(c.policy.GPU.Measurements) > 0 && !slices.ContainsFunc(c.policy.GPU.Measurements, func(m string) bool { return strings.EqualFold(m, gpu.Measurement) }):
		return nil, fmt.Errorf("%w: the gateway's GPU measurement %s is not one the policy allows", ErrUntrusted, gpu.Measurement)
	}
	return gpu, nil
}

// checkBuild verifies the document's build approval and its inclusion in
// the log: signed by a trusted approver, for this TEE and measurement, and
// logged as such.
func (c *Checker) checkBuild(doc *Document, st *Status) (*BuildRef, error) {
	untrusted := func(format string, args ...any) (*BuildRef, error) {
		return nil, fmt.Errorf("%w: build: %s", ErrUntrusted, fmt.Sprintf(format, args...))
	}
	if len(doc.Build) == 0 {
		return untrusted("the policy requires the gateway's build to be approved in the transparency log, and the gateway shows no approval")
	}
	b, err := ParseBuild(doc.Build)
	if err != nil {
		return nil, err
	}
	p, err := auditlog.ParseProof(doc.BuildProof)
	if err != nil {
		return nil, fmt.Errorf("%w: build log proof: %w", ErrMalformed, err)
	}
	cp, err := auditlog.VerifyProof(p, c.log)
	if err != nil {
		return untrusted("the approval's log proof: %v", err)
	}
	e, err := auditlog.ParseEntry(p.Entry)
	if err != nil {
		return nil, fmt.Errorf("%w: build log entry: %w", ErrMalformed, err)
	}
	digest, err := b.Digest()
	if err != nil {
		return nil, err
	}
	switch {
	case e.Kind != auditlog.KindInferenceBuild || e.Subject != digest:
		return untrusted("the log proof is for a %s entry with subject %s, not this approval (%s)", e.Kind, e.Subject, digest)
	case e.Party != b.Approver || e.TEE != b.TEE || e.Measurement != b.Measurement:
		return untrusted("the logged entry does not match the approval")
	case !slices.Contains(c.approvers, b.Approver):
		return untrusted("approved by %s, whom the policy does not trust to approve builds", b.Approver)
	case b.TEE != st.TEE || !strings.EqualFold(b.Measurement, st.Measurement):
		return untrusted("the logged approval is for %s on %s, but the gateway runs %s on %s", b.Measurement, b.TEE, st.Measurement, st.TEE)
	}
	return &BuildRef{Version: b.Version, Source: b.Source, Approver: b.Approver, LogOrigin: cp.Origin, LogIndex: p.Index}, nil
}
