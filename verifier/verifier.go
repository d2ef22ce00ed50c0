package verifier

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/token"
)

// Config configures a Service.
type Config struct {
	// TEEs maps each accepted TEE type to its verifier.
	TEEs map[attestation.TEE]attestation.Verifier
	// Appraiser judges verified claims.
	Appraiser *appraisal.Appraiser
	// Issuer signs EAR tokens; nil issues no tokens (CLI use).
	Issuer *token.Issuer
	// NonceTTL is how long an issued nonce stays valid; zero means 5 minutes.
	NonceTTL time.Duration
	// MaxNonces bounds the nonces issued within the last NonceTTL when
	// Nonces is nil (one bit of memory each); zero means
	// DefaultMaxNonces. Beyond it, Nonce fails with ErrTooManyNonces.
	MaxNonces int
	// Nonces, when set, keeps every issued nonce as a record of a store
	// shared by replicas, which accept each other's nonces, once. Nil
	// keeps nothing per nonce: nonces are authenticated with a key of this
	// Service, made when it is and kept only in memory, and their single
	// use is tracked in memory (docs/spec/attestation.md §8.1). Nil is
	// right for one process; such nonces are not accepted after a restart.
	Nonces NonceStore
	// AKEnroller, when set, certifies TPM attestation keys after credential
	// activation: the Service serves /v1/attestation/tpm/ak-challenge,
	// /ak-certificate and /ak-ca, and keeps the challenges in Nonces (nil:
	// in memory).
	AKEnroller AKEnroller
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// maxChallenges bounds the TPM AK enrolment challenges kept in memory.
const maxChallenges = 100000

// NonceStore keeps issued nonces until they are taken or expire
// (store.Ephemeral implements it). Add reports false when the key exists;
// Take returns ok only once per key, across every replica sharing the
// store.
type NonceStore interface {
	Add(ctx context.Context, key string, value []byte, expires time.Time) (bool, error)
	Take(ctx context.Context, key string) (value []byte, ok bool, err error)
}

// Service verifies evidence and issues attestation results. It is safe for
// concurrent use.
type Service struct {
	tees      map[attestation.TEE]attestation.Verifier
	appraiser *appraisal.Appraiser
	issuer    *token.Issuer
	nonces    nonceSource
	now       func() time.Time
	// challenges keeps TPM AK enrolment challenges.
	challenges NonceStore
	akEnroller AKEnroller
	log        *slog.Logger
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if len(cfg.TEEs) == 0 {
		return nil, errors.New("verifier: no TEE verifiers configured")
	}
	if cfg.Appraiser == nil {
		return nil, errors.New("verifier: no appraiser configured")
	}
	s := &Service{tees: cfg.TEEs, appraiser: cfg.Appraiser, issuer: cfg.Issuer, akEnroller: cfg.AKEnroller, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	ttl, now := cfg.NonceTTL, cfg.Now
	if ttl == 0 {
		ttl = 5 * time.Minute
	}
	if now == nil {
		now = time.Now
	}
	s.now = now
	if cfg.Nonces != nil {
		s.nonces = &storeNonces{ttl: ttl, now: now, eph: cfg.Nonces}
		s.challenges = cfg.Nonces
		return s, nil
	}
	max := cfg.MaxNonces
	if max <= 0 {
		max = DefaultMaxNonces
	}
	s.nonces = newMemoryNonces(ttl, now, max)
	s.challenges = store.NewMemoryEphemeral(maxChallenges, now)
	return s, nil
}

// Nonce issues a single-use nonce and returns it with its expiry.
func (s *Service) Nonce(ctx context.Context) ([]byte, time.Time, error) {
	return s.nonces.issue(ctx)
}

// Freshness says how Verify checks that evidence is fresh.
type Freshness int

const (
	// IssuedNonce requires the bundle's nonce to be one this service issued,
	// unexpired and unused; it is consumed. This is what the HTTP API does.
	IssuedNonce Freshness = iota
	// ExpectedNonce requires the nonce to equal Options.Nonce: for a bundle
	// its runtime-data nonce, for raw evidence its report_data (the nonce
	// left-aligned, zero-padded to 64 bytes).
	ExpectedNonce
	// NoFreshness skips the freshness check (offline verification of
	// captured evidence); the binding is still checked when the bundle
	// carries runtime data.
	NoFreshness
)

// Options tune one verification.
type Options struct {
	Freshness Freshness
	Nonce     []byte
}

// Report is everything one verification established.
type Report struct {
	TEE attestation.TEE `json:"tee"`
	// Checks lists every check in order: the TEE verifier's, freshness and
	// binding, then the policy's.
	Checks    []attestation.Check  `json:"checks"`
	Claims    map[string]any       `json:"claims,omitempty"`
	Appraisal *appraisal.Appraisal `json:"appraisal,omitempty"`
	// Token is the signed EAR, when the service has an Issuer.
	Token []byte `json:"-"`
	// Insecure is true for sim evidence, the bundle's or a device's.
	Insecure bool `json:"insecure"`
	// Devices are the reports on a composite bundle's other devices
	// (docs/spec/attestation.md §2.2), in the bundle's order.
	Devices []DeviceReport `json:"devices,omitempty"`
}

// DeviceReport is what verification established about one device of a
// composite bundle: its EAR submod.
type DeviceReport struct {
	Name      string               `json:"name"`
	TEE       attestation.TEE      `json:"tee"`
	Checks    []attestation.Check  `json:"checks"`
	Claims    map[string]any       `json:"claims,omitempty"`
	Appraisal *appraisal.Appraisal `json:"appraisal,omitempty"`
}

// Failed reports whether any performed check failed.
func (r *Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == attestation.Failed {
			return true
		}
	}
	return false
}

// Verify runs the whole pipeline on a bundle. On a verification failure it
// returns the Report so far together with an error wrapping an attestation
// sentinel. An appraisal that is not affirming is not an error: the token
// carries its status, and Report.Failed tells whether a policy check failed.
func (s *Service) Verify(ctx context.Context, b *attestation.Bundle, opts Options) (*Report, error) {
	rep := &Report{TEE: b.TEE, Insecure: b.TEE == attestation.Sim}
	err := s.verify(ctx, b, opts, rep)
	binding := string(b.Binding)
	if binding == "" {
		binding = "kura"
	}
	attrs := []any{"tee", b.TEE, "insecure", rep.Insecure, "binding", binding}
	if err != nil {
		s.log.WarnContext(ctx, "evidence refused", append(attrs, "reason", err)...)
		return rep, err
	}
	a := rep.Appraisal
	s.log.InfoContext(ctx, "evidence appraised", append(attrs, "status", a.Status.String(), "policy", a.PolicyID, "measurement", rep.Claims["measurement"], "failed_checks", failedNames(a.Checks))...)
	return rep, nil
}

func (s *Service) verify(ctx context.Context, b *attestation.Bundle, opts Options, rep *Report) error {
	if err := b.Check(); err != nil {
		return err
	}
	tv, ok := s.tees[b.TEE]
	if !ok {
		return fmt.Errorf("%w: this verifier does not accept %s evidence", attestation.ErrMalformed, b.TEE)
	}
	// Consume an issued nonce before the expensive work, so replays are
	// refused cheaply.
	if opts.Freshness == IssuedNonce {
		if b.RuntimeData.Empty() {
			return rep.fail("freshness", fmt.Errorf("%w: bundle carries no nonce; request one from POST /v1/attestation/nonce", attestation.ErrNonce))
		}
		if err := s.nonces.take(ctx, b.RuntimeData.Nonce); err != nil {
			return rep.fail("freshness", err)
		}
		rep.pass("freshness", "nonce issued by this verifier, unexpired, now consumed")
	}
	res, err := tv.Verify(ctx, b)
	if res != nil {
		rep.Checks = append(rep.Checks, res.Checks...)
	}
	if err != nil {
		return err
	}
	rep.Claims = res.Claims
	if err := s.checkBinding(b, res, opts, rep); err != nil {
		return err
	}
	if len(b.RuntimeData.Devices) > 0 {
		// The binding just checked covers the devices' bundles.
		if err := s.verifyDevices(ctx, b, rep); err != nil {
			return err
		}
	}
	a, err := s.appraiser.Appraise(ctx, rep.Claims)
	if err != nil {
		return err
	}
	rep.Appraisal = a
	rep.Checks = append(rep.Checks, a.Checks...)
	if s.issuer != nil {
		policy := map[string]any{"checks": a.Checks, "explain": a.Explain}
		if rep.Insecure {
			policy["warning"] = "INSECURE: simulated TEE, evidence proves nothing"
		}
		submods := map[string]token.Submod{attestation.PrimaryDevice: {
			Status: a.Status, TrustVector: a.TrustVector, PolicyID: a.PolicyID,
			Evidence: rep.Claims, Policy: policy,
		}}
		for _, d := range rep.Devices {
			submods[d.Name] = token.Submod{
				Status: d.Appraisal.Status, TrustVector: d.Appraisal.TrustVector, PolicyID: d.Appraisal.PolicyID,
				Evidence: d.Claims, Policy: map[string]any{"checks": d.Appraisal.Checks, "explain": d.Appraisal.Explain},
			}
		}
		rep.Token, err = s.issuer.Issue(&token.Claims{
			Nonce:            b.RuntimeData.Nonce,
			Submods:          submods,
			RuntimePublicKey: b.RuntimeData.PublicKey,
			RuntimeContext:   b.RuntimeData.Context,
		})
		if err != nil {
			return fmt.Errorf("issue token: %w", err)
		}
	}
	return nil
}

func (s *Service) checkBinding(b *attestation.Bundle, res *attestation.Result, opts Options, rep *Report) error {
	if opts.Freshness == ExpectedNonce {
		if b.RuntimeData.Empty() {
			want := make([]byte, attestation.ReportDataSize)
			copy(want, opts.Nonce)
			if len(opts.Nonce) > attestation.ReportDataSize || !bytes.Equal(res.ReportData, want) {
				return rep.fail("freshness", fmt.Errorf("%w: report_data %x does not hold nonce %x", attestation.ErrNonce, res.ReportData, opts.Nonce))
			}
			rep.pass("freshness", "report_data holds the expected nonce")
			rep.skip("binding", "raw evidence carries no runtime data")
			return nil
		}
		if subtle.ConstantTimeCompare(b.RuntimeData.Nonce, opts.Nonce) != 1 {
			return rep.fail("freshness", fmt.Errorf("%w: bundle nonce %x is not the expected %x", attestation.ErrNonce, b.RuntimeData.Nonce, opts.Nonce))
		}
		rep.pass("freshness", "bundle nonce is the expected nonce")
	}
	if opts.Freshness == NoFreshness {
		rep.skip("freshness", "no nonce given (--nonce): evidence may be old or replayed")
	}
	if b.RuntimeData.Empty() {
		rep.skip("binding", "bundle carries no runtime data")
		return nil
	}
	// The bundle names its rule (kura's, or a CoCo attester's); b.Check
	// has refused unknown rules.
	want, err := b.RuntimeData.ReportDataFor(b.Binding)
	if err != nil {
		return rep.fail("binding", err)
	}
	if !b.TEE.Holds(res.ReportData, want) {
		return rep.fail("binding", fmt.Errorf("%w: report_data is %x, want %x under the rule %s", attestation.ErrBinding, res.ReportData, want, b.Binding.Rule()))
	}
	rep.pass("binding", b.Binding.Rule())
	return nil
}

// verifyDevices verifies and appraises each device of a composite bundle
// (docs/spec/attestation.md §2.2) after the primary evidence's binding,
// which covers the devices' bundles, was checked. Each device's evidence
// must bind the bundle's nonce; a device whose evidence fails to verify
// fails the whole bundle. The primary claims gain "devices", each
// device's TEE, appraisal status and failed checks, for the policy to
// judge the bundle as a whole.
func (s *Service) verifyDevices(ctx context.Context, b *attestation.Bundle, rep *Report) error {
	summary := map[string]any{}
	for _, d := range b.RuntimeData.Devices {
		db, err := d.ParseDevice(&b.RuntimeData)
		if err != nil {
			return rep.fail(d.Name, err)
		}
		tv, ok := s.tees[db.TEE]
		if !ok {
			return rep.fail(d.Name, fmt.Errorf("%w: device %s: this verifier does not accept %s evidence", attestation.ErrMalformed, d.Name, db.TEE))
		}
		dr := DeviceReport{Name: d.Name, TEE: db.TEE}
		res, err := tv.Verify(ctx, db)
		if res != nil {
			for _, c := range res.Checks {
				c.Name = d.Name + ": " + c.Name
				rep.Checks = append(rep.Checks, c)
				dr.Checks = append(dr.Checks, c)
			}
		}
		if err != nil {
			return fmt.Errorf("device %s: %w", d.Name, err)
		}
		want, err := db.RuntimeData.ReportDataFor(attestation.BindingKura)
		if err != nil {
			return rep.fail(d.Name+": binding", err)
		}
		if !db.TEE.Holds(res.ReportData, want) {
			return rep.fail(d.Name+": binding", fmt.Errorf("%w: device %s: report data %x does not bind the bundle's nonce (want the first %d bytes of %x)", attestation.ErrBinding, d.Name, res.ReportData, db.TEE.ReportDataSize(), want))
		}
		detail := fmt.Sprintf("the device's evidence binds the bundle's nonce; %s's report_data binds the device's bundle (SHA-256)", attestation.PrimaryDevice)
		rep.pass(d.Name+": binding", detail)
		dr.Checks = append(dr.Checks, attestation.Check{Name: d.Name + ": binding", Status: attestation.Passed, Detail: detail})
		if dr.Appraisal, err = s.appraiser.Appraise(ctx, res.Claims); err != nil {
			return err
		}
		dr.Claims = res.Claims
		rep.Insecure = rep.Insecure || db.TEE == attestation.Sim
		var failed []any
		for _, c := range dr.Appraisal.Checks {
			if c.Status == attestation.Failed {
				failed = append(failed, c.Name+": "+c.Detail)
			}
		}
		summary[d.Name] = map[string]any{"tee": string(db.TEE), "status": dr.Appraisal.Status.String(), "failed_checks": append([]any{}, failed...)}
		rep.Devices = append(rep.Devices, dr)
	}
	claims := maps.Clone(rep.Claims)
	claims["devices"] = summary
	rep.Claims = claims
	return nil
}

func (r *Report) pass(name, detail string) {
	r.Checks = append(r.Checks, attestation.Check{Name: name, Status: attestation.Passed, Detail: detail})
}

func (r *Report) skip(name, detail string) {
	r.Checks = append(r.Checks, attestation.Check{Name: name, Status: attestation.Skipped, Detail: detail})
}

func (r *Report) fail(name string, err error) error {
	r.Checks = append(r.Checks, attestation.Check{Name: name, Status: attestation.Failed, Detail: err.Error()})
	return err
}

func failedNames(checks []attestation.Check) []string {
	var out []string
	for _, c := range checks {
		if c.Status == attestation.Failed {
			out = append(out, c.Name)
		}
	}
	return out
}
