package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/veraison/ear"

	"github.com/kura-cc/kura/internal/fault"
)

// ErrToken is the family of this package's sentinels: both below wrap it
// and carry their kind of failure (internal/fault).
var ErrToken = errors.New("attestation token failed")

// Sentinel errors returned by Verify.
var (
	// ErrInvalid means the token is malformed or its signature does not
	// verify under any trusted key.
	ErrInvalid = fault.New(ErrToken, fault.BadSignature, "invalid attestation token")
	// ErrExpired means the token is past its exp, or issued in the future.
	ErrExpired = fault.New(ErrToken, fault.Expired, "attestation token expired")
)

// DefaultTTL is how long an issued token stays valid by default.
const DefaultTTL = 5 * time.Minute

// maxTokenSize bounds a token accepted by Verify.
const maxTokenSize = 256 << 10

// Submod is one attested device's appraisal, as it appears in a token.
type Submod struct {
	Status      ear.TrustTier
	TrustVector ear.TrustVector
	PolicyID    string
	// Evidence holds the verified claims (ear.veraison.annotated-evidence).
	Evidence map[string]any
	// Policy holds the policy's findings (ear.veraison.policy-claims):
	// checks, and the INSECURE warning for sim.
	Policy map[string]any
}

// Claims is what a token says.
type Claims struct {
	// Nonce is the verifier nonce the evidence was fresh for.
	Nonce []byte
	// Submods maps device names ("cpu0") to their appraisals.
	Submods map[string]Submod
	// RuntimePublicKey and RuntimeContext are the runtime data the evidence
	// bound: the key that never leaves the TEE, and the caller's context.
	RuntimePublicKey []byte
	RuntimeContext   []byte
	IssuedAt         time.Time
	Expiry           time.Time
	// KeyID names the trusted key the token verified under: its kid, or
	// its JWK thumbprint when it has none (KeyIDOf).
	KeyID string
	// Result is the decoded EAR, for callers that want every field.
	Result *ear.AttestationResult
}

// IssuerConfig configures an Issuer.
type IssuerConfig struct {
	// Key signs tokens: an ECDSA P-256 (ES256) or P-384 (ES384) key.
	Key *ecdsa.PrivateKey
	// Build names the verifier build in ear.verifier-id.
	Build string
	// TTL is the token lifetime; zero means DefaultTTL.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Issuer signs EAR tokens. It is safe for concurrent use.
type Issuer struct {
	key   jwk.Key
	alg   jwa.SignatureAlgorithm
	jwks  []byte
	build string
	ttl   time.Duration
	now   func() time.Time
}

// NewIssuer returns an Issuer for cfg.Key.
func NewIssuer(cfg IssuerConfig) (*Issuer, error) {
	if cfg.Key == nil {
		return nil, errors.New("token: no signing key")
	}
	alg, err := algorithm(cfg.Key.Curve)
	if err != nil {
		return nil, err
	}
	priv, err := jwk.Import(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("token: key: %w", err)
	}
	if err := jwk.AssignKeyID(priv); err != nil {
		return nil, fmt.Errorf("token: key id: %w", err)
	}
	pub, err := priv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("token: public key: %w", err)
	}
	for k, v := range map[string]any{jwk.AlgorithmKey: alg, jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(k, v); err != nil {
			return nil, fmt.Errorf("token: public key: %w", err)
		}
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, fmt.Errorf("token: jwks: %w", err)
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("token: jwks: %w", err)
	}
	i := &Issuer{key: priv, alg: alg, jwks: jwks, build: cfg.Build, ttl: cfg.TTL, now: cfg.Now}
	if i.ttl == 0 {
		i.ttl = DefaultTTL
	}
	if i.now == nil {
		i.now = time.Now
	}
	if i.build == "" {
		i.build = "kura"
	}
	return i, nil
}

func algorithm(c elliptic.Curve) (jwa.SignatureAlgorithm, error) {
	switch c {
	case elliptic.P256():
		return jwa.ES256(), nil
	case elliptic.P384():
		return jwa.ES384(), nil
	}
	return jwa.SignatureAlgorithm{}, errors.New("token: key must be ECDSA P-256 or P-384")
}

// JWKS returns the public key set relying parties verify tokens with, as
// served at /.well-known/jwks.json.
func (i *Issuer) JWKS() []byte { return i.jwks }

// KeyID returns the kid of the signing key (its RFC 7638 thumbprint), which
// every issued token names in its header.
func (i *Issuer) KeyID() string { return KeyIDOf(i.key) }

// Issue signs a token carrying c. IssuedAt and Expiry are set by the Issuer.
func (i *Issuer) Issue(c *Claims) ([]byte, error) {
	now := i.now()
	ar := ear.NewAttestationResult("cpu0", i.build, "kura")
	iat := now.Unix()
	ar.IssuedAt = &iat
	if len(c.Nonce) > 0 {
		n := base64.RawURLEncoding.EncodeToString(c.Nonce)
		ar.Nonce = &n
	}
	ar.Submods = make(map[string]*ear.Appraisal, len(c.Submods))
	for name, s := range c.Submods {
		status, tv, policyID := s.Status, s.TrustVector, s.PolicyID
		a := &ear.Appraisal{Status: &status, TrustVector: &tv, AppraisalPolicyID: &policyID}
		evidence := s.Evidence
		if len(c.RuntimePublicKey) > 0 || len(c.RuntimeContext) > 0 {
			evidence = withRuntimeData(evidence, c.RuntimePublicKey, c.RuntimeContext)
		}
		if evidence != nil {
			a.VeraisonAnnotatedEvidence = &evidence
		}
		if s.Policy != nil {
			policy := s.Policy
			a.VeraisonPolicyClaims = &policy
		}
		ar.Submods[name] = a
	}
	payload := ar.AsMap()
	payload["exp"] = now.Add(i.ttl).Unix()
	body, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("token: encode: %w", err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, "JWT"); err != nil {
		return nil, err
	}
	tok, err := jws.Sign(body, jws.WithKey(i.alg, i.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return nil, fmt.Errorf("token: sign: %w", err)
	}
	return tok, nil
}

// runtimeDataKey is where a token carries the bound runtime data, inside
// the annotated evidence.
const runtimeDataKey = "runtime_data"

func withRuntimeData(evidence map[string]any, pub, ctx []byte) map[string]any {
	out := make(map[string]any, len(evidence)+1)
	for k, v := range evidence {
		out[k] = v
	}
	rd := map[string]any{}
	if len(pub) > 0 {
		rd["public_key"] = base64.RawURLEncoding.EncodeToString(pub)
	}
	if len(ctx) > 0 {
		rd["context"] = base64.RawURLEncoding.EncodeToString(ctx)
	}
	out[runtimeDataKey] = rd
	return out
}

// VerifierConfig configures a token Verifier.
type VerifierConfig struct {
	// Keys are the trusted verifier keys, e.g. from ParseJWKS.
	Keys jwk.Set
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Skew is the clock skew tolerated on iat and exp; zero means 30 s.
	Skew time.Duration
	// Refresh, when set, fetches the trusted keys again (e.g. from the
	// verifiers' JWKS URLs). A token whose signature matches no known key
	// triggers a refresh, at most once per RefreshInterval, so a verifier
	// that rotates its key is followed without a restart.
	Refresh func(ctx context.Context) (jwk.Set, error)
	// RefreshInterval is the minimum time between refreshes; zero means 1 minute.
	RefreshInterval time.Duration
}

// Verifier checks tokens against trusted verifier keys. It is safe for
// concurrent use.
type Verifier struct {
	keys    atomic.Pointer[jwk.Set]
	now     func() time.Time
	skew    time.Duration
	refresh func(context.Context) (jwk.Set, error)
	every   time.Duration

	mu          sync.Mutex
	lastRefresh time.Time
}

// NewVerifier returns a token Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Keys == nil || cfg.Keys.Len() == 0 {
		return nil, errors.New("token: no trusted verifier keys")
	}
	v := &Verifier{now: cfg.Now, skew: cfg.Skew, refresh: cfg.Refresh, every: cfg.RefreshInterval}
	v.keys.Store(&cfg.Keys)
	if v.every == 0 {
		v.every = time.Minute
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.skew == 0 {
		v.skew = 30 * time.Second
	}
	return v, nil
}

// refreshKeys fetches the keys again if allowed now; it reports whether
// the key set changed.
func (v *Verifier) refreshKeys(ctx context.Context) bool {
	if v.refresh == nil {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if !v.lastRefresh.IsZero() && now.Sub(v.lastRefresh) < v.every {
		return false
	}
	v.lastRefresh = now
	set, err := v.refresh(ctx)
	if err != nil || set == nil || set.Len() == 0 {
		return false
	}
	v.keys.Store(&set)
	return true
}

// ParseJWKS parses a JWKS document, keeping only public keys.
func ParseJWKS(data []byte) (jwk.Set, error) {
	set, err := jwk.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	pub, err := jwk.PublicSetOf(set)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	return pub, nil
}

// PublicKeySet returns a set holding one pinned public key.
func PublicKeySet(key crypto.PublicKey) (jwk.Set, error) {
	k, err := jwk.PublicKeyOf(key)
	if err != nil {
		return nil, fmt.Errorf("token: pinned key: %w", err)
	}
	if err := jwk.AssignKeyID(k); err != nil {
		return nil, err
	}
	alg := jwa.ES256()
	if ec, ok := key.(*ecdsa.PublicKey); ok && ec.Curve == elliptic.P384() {
		alg = jwa.ES384()
	}
	if err := k.Set(jwk.AlgorithmKey, alg); err != nil {
		return nil, err
	}
	set := jwk.NewSet()
	return set, set.AddKey(k)
}

// Verify checks a token's signature, expiry and EAR shape and returns what
// it says.
func (v *Verifier) Verify(ctx context.Context, tok []byte) (*Claims, error) {
	if len(tok) > maxTokenSize {
		return nil, fmt.Errorf("%w: token is %d bytes, limit is %d", ErrInvalid, len(tok), maxTokenSize)
	}
	var used jwk.Key
	payload, err := jws.Verify(tok, jws.WithKeySet(*v.keys.Load(), jws.WithRequireKid(false)), jws.WithKeyUsed(&used))
	if err != nil && v.refreshKeys(ctx) {
		payload, err = jws.Verify(tok, jws.WithKeySet(*v.keys.Load(), jws.WithRequireKid(false)), jws.WithKeyUsed(&used))
	}
	if err != nil {
		return nil, untrusted(tok, *v.keys.Load(), err)
	}
	var times struct {
		IssuedAt *int64 `json:"iat"`
		Expiry   *int64 `json:"exp"`
	}
	if err := json.Unmarshal(payload, &times); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrInvalid, err)
	}
	if times.IssuedAt == nil || times.Expiry == nil {
		return nil, fmt.Errorf("%w: token has no iat or exp", ErrInvalid)
	}
	iat, exp, now := time.Unix(*times.IssuedAt, 0), time.Unix(*times.Expiry, 0), v.now()
	if now.After(exp.Add(v.skew)) {
		return nil, fmt.Errorf("%w: expired at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	if iat.After(now.Add(v.skew)) {
		return nil, fmt.Errorf("%w: issued in the future (%s)", ErrExpired, iat.UTC().Format(time.RFC3339))
	}
	var ar ear.AttestationResult
	if err := ar.UnmarshalJSON(payload); err != nil {
		return nil, fmt.Errorf("%w: not an EAR: %v", ErrInvalid, err)
	}
	c := &Claims{Submods: make(map[string]Submod, len(ar.Submods)), IssuedAt: iat, Expiry: exp, KeyID: KeyIDOf(used), Result: &ar}
	if ar.Nonce != nil {
		if c.Nonce, err = base64.RawURLEncoding.DecodeString(*ar.Nonce); err != nil {
			return nil, fmt.Errorf("%w: eat_nonce: %v", ErrInvalid, err)
		}
	}
	for name, a := range ar.Submods {
		s := Submod{}
		if a.Status != nil {
			s.Status = *a.Status
		}
		if a.TrustVector != nil {
			s.TrustVector = *a.TrustVector
		}
		if a.AppraisalPolicyID != nil {
			s.PolicyID = *a.AppraisalPolicyID
		}
		if a.VeraisonAnnotatedEvidence != nil {
			s.Evidence = *a.VeraisonAnnotatedEvidence
			if err := c.readRuntimeData(s.Evidence); err != nil {
				return nil, err
			}
		}
		if a.VeraisonPolicyClaims != nil {
			s.Policy = *a.VeraisonPolicyClaims
		}
		c.Submods[name] = s
	}
	return c, nil
}

func (c *Claims) readRuntimeData(evidence map[string]any) error {
	rd, ok := evidence[runtimeDataKey].(map[string]any)
	if !ok {
		return nil
	}
	for key, dst := range map[string]*[]byte{"public_key": &c.RuntimePublicKey, "context": &c.RuntimeContext} {
		s, ok := rd[key].(string)
		if !ok {
			continue
		}
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			return fmt.Errorf("%w: runtime data %s: %v", ErrInvalid, key, err)
		}
		*dst = b
	}
	return nil
}

// KeyError is Verify's error for a token whose signature verifies under no
// trusted key. It names the key that signed the token and the verifier the
// token says issued it — both read from the token before any signature
// check, so they say who the token claims to be from, not who it is — and
// the trusted keys tried. It wraps ErrInvalid.
type KeyError struct {
	// KeyID is the kid in the token's header; empty when it names none.
	KeyID string
	// Issuer is the token's iss claim, when it has one.
	Issuer string
	// VerifierID is the token's ear.verifier-id: "build (developer)".
	VerifierID string
	// Known is true when a trusted key has the token's kid but the
	// signature does not verify under it: the token was altered or forged.
	Known bool
	// Tried names the trusted keys (KeyIDOf), in the order of the set.
	Tried []string
}

// Error names the token's key and claimed issuer and the keys tried.
func (e *KeyError) Error() string {
	who := "a key it does not name (no kid)"
	if e.KeyID != "" {
		who = fmt.Sprintf("key %q", e.KeyID)
	}
	var claimed []string
	if e.Issuer != "" {
		claimed = append(claimed, fmt.Sprintf("iss %q", e.Issuer))
	}
	if e.VerifierID != "" {
		claimed = append(claimed, fmt.Sprintf("verifier %q", e.VerifierID))
	}
	if len(claimed) > 0 {
		who += " of " + strings.Join(claimed, ", ") + " (as the token claims)"
	}
	if e.Known {
		return fmt.Sprintf("%v: signed by %s: a trusted key has that kid, but the signature does not verify under it", ErrInvalid, who)
	}
	return fmt.Sprintf("%v: signed by %s, which is not a trusted key; trusted keys tried: %s", ErrInvalid, who, strings.Join(e.Tried, ", "))
}

// Unwrap returns ErrInvalid.
func (e *KeyError) Unwrap() error { return ErrInvalid }

// KeyIDOf names a key as errors and displays do: its kid, or, when it has
// none, "thumbprint:" and its RFC 7638 SHA-256 thumbprint (base64url).
func KeyIDOf(k jwk.Key) string {
	if k == nil {
		return ""
	}
	if kid, ok := k.KeyID(); ok && kid != "" {
		return kid
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "(unnamed key)"
	}
	return "thumbprint:" + base64.RawURLEncoding.EncodeToString(tp)
}

// untrusted explains a failed signature check: a *KeyError when the
// token parses, else ErrInvalid with the parser's complaint.
func untrusted(tok []byte, keys jwk.Set, verr error) error {
	msg, err := jws.Parse(tok)
	if err != nil || len(msg.Signatures()) != 1 {
		return fmt.Errorf("%w: signature: %v", ErrInvalid, verr)
	}
	e := &KeyError{}
	e.KeyID, _ = msg.Signatures()[0].ProtectedHeaders().KeyID()
	var claims struct {
		Issuer     string `json:"iss"`
		VerifierID struct {
			Build     string `json:"build"`
			Developer string `json:"developer"`
		} `json:"ear.verifier-id"`
	}
	if json.Unmarshal(msg.Payload(), &claims) == nil {
		e.Issuer = clip(claims.Issuer)
		e.VerifierID = clip(claims.VerifierID.Build)
		if d := claims.VerifierID.Developer; d != "" {
			e.VerifierID += " (" + clip(d) + ")"
		}
	}
	e.KeyID = clip(e.KeyID)
	for i := range keys.Len() {
		k, _ := keys.Key(i)
		id := KeyIDOf(k)
		e.Tried = append(e.Tried, id)
		if e.KeyID != "" && id == e.KeyID {
			e.Known = true
		}
	}
	return e
}

// clip bounds a string read from an unverified token before it goes into
// an error message.
func clip(s string) string {
	const max = 120
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "…"
}
