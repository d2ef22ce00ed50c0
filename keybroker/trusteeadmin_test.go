package keybroker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/store"
)

// adminJWT is Trustee's admin token as kbs-client makes it (jwt_simple's
// Claims::create(2 hours): iat = nbf = now, exp = now + 2 h, EdDSA), built
// with go-jose, a JOSE implementation independent of the broker's.
// Claims in extra are added or replace those.
func adminJWT(t testing.TB, key ed25519.PrivateKey, now time.Time, extra map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(2 * time.Hour).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(claims, k)
			continue
		}
		claims[k] = v
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// kbsClientPost sends what kbs-client's set-resource or
// set-resource-policy sends: a POST with a Bearer admin token.
func kbsClientPost(t *testing.T, f *fixture, path, contentType string, body []byte, token string) (int, *web.Problem, []byte) {
	t.Helper()
	h := http.Header{"Content-Type": {contentType}, "User-Agent": {"kbs-client/0.1.0"}}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	st, p, _, data := kbsCallBody(t, f, http.MethodPost, path, string(body), nil, h)
	return st, p, data
}

// policyBody is kbs-client's set-resource-policy body: the Rego,
// base64url without padding.
func policyBody(rego string) []byte {
	b, _ := json.Marshal(ResourcePolicyRequest{Policy: base64.RawURLEncoding.EncodeToString([]byte(rego))})
	return b
}

// signedPost sends a POST signed as the owner API signs (Kura-Signature)
// over signedBody, with sentBody as the body.
func signedPost(t *testing.T, f *fixture, c *AdminClient, path string, signedBody, sentBody []byte) (int, *web.Problem) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, bytes.NewReader(sentBody))
	c.SignBody(req, signedBody, time.Now())
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, nil
	}
	var p web.Problem
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatalf("POST %s: %d %q is not a problem", path, resp.StatusCode, data)
	}
	return resp.StatusCode, &p
}

// TestTrusteeAdminWorkflow: in both compatibility modes, kbs-client's
// set-resource (a Bearer admin JWT signed by a tenant's owner key)
// registers a resource that an attested workload is then released, as the
// owner API's PUT would; a Kura-Signature request does the same; the
// operator's set-resource-policy stores the default release policy, which
// then governs the resource.
func TestTrusteeAdminWorkflow(t *testing.T) {
	ctx := context.Background()
	for _, compat := range []Compat{CompatKura, CompatTrustee} {
		t.Run(string(compat), func(t *testing.T) {
			ts := newTenantsCompat(t, compat)
			f := ts.fixture
			value := []byte("registered through kbs-client")
			st, p, data := kbsClientPost(t, f, TrusteeResourcePrefix+"airline/key/k1", "application/octet-stream", value, adminJWT(t, ts.airline.Key, time.Now(), nil))
			if st != http.StatusOK {
				t.Fatalf("set-resource: %d %+v", st, p)
			}
			var vr VersionResponse
			if err := json.Unmarshal(data, &vr); err != nil || vr.Version != 1 {
				t.Errorf("set-resource answered %q, want version 1", data)
			}
			m, err := ts.airline.Get(ctx, "airline/key/k1")
			if err != nil || m.CreatedBy != "admin:airline" || m.PolicyID != "" {
				t.Errorf("stored resource = %+v, %v; want written by admin:airline, no bound policy", m, err)
			}
			// The same through the owner API's signature.
			signedValue := []byte("registered with Kura-Signature")
			if st, p := signedPost(t, f, ts.carrier, TrusteeResourcePrefix+"carrier/key/k1", signedValue, signedValue); st != http.StatusOK {
				t.Fatalf("Kura-Signature set-resource: %d %+v", st, p)
			}

			c := &Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}
			s, err := c.Attest(ctx, simAttester(t, 1), []byte("run"))
			if err != nil {
				t.Fatal(err)
			}
			for path, want := range map[string][]byte{"airline/key/k1": value, "carrier/key/k1": signedValue} {
				got, err := s.Resource(ctx, path)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("release of %s: %q, %v; want %q", path, got, err, want)
				}
			}

			// set-resource-policy by the operator: the default policy.
			deny := "package kura.release\nallow := false\ndeny contains \"set through kbs-client\""
			st, p, data = kbsClientPost(t, f, TrusteeResourcePolicyPath, "application/json", policyBody(deny), adminJWT(t, ts.operator.Key, time.Now(), nil))
			if st != http.StatusOK {
				t.Fatalf("set-resource-policy: %d %+v", st, p)
			}
			pol, err := ts.carrier.Policy(ctx, "default")
			if err != nil || pol.Rego != deny || pol.CreatedBy != "admin:ops" {
				t.Errorf("default policy = %+v, %v; want the Rego sent, by admin:ops", pol, err)
			}
			if _, err := s.Resource(ctx, "airline/key/k1"); err == nil || !strings.Contains(err.Error(), "set through kbs-client") {
				t.Errorf("release under the new default policy: %v, want its refusal", err)
			}
		})
	}
}

// TestTrusteeAdminRefusals: every way a Trustee admin request can be
// wrong is refused with its own answer, and nothing is stored.
func TestTrusteeAdminRefusals(t *testing.T) {
	ctx := context.Background()
	ts := newTenantsCompat(t, CompatTrustee)
	f := ts.fixture
	now := time.Now()
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	own := TrusteeResourcePrefix + "airline/key/refused"
	value := []byte("should not be stored")
	unsigned := func(header, claims string) string {
		return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + "."
	}
	tests := []struct {
		name        string
		path        string
		body        []byte
		token       string
		status      int
		typ, detail string
	}{
		{"no token", own, value, "", 401, "admin-unauthenticated", "sign the request"},
		{"another key", own, value, adminJWT(t, stranger, now, nil), 401, "admin-unauthenticated", "signed by no authorized key"},
		{"expired", own, value, adminJWT(t, ts.airline.Key, now, map[string]any{"exp": now.Add(-time.Second).Unix()}), 401, "admin-unauthenticated", "token expired"},
		{"issued long ago", own, value, adminJWT(t, ts.airline.Key, now.Add(-time.Hour), nil), 401, "admin-unauthenticated", "more than 5m0s from the server's clock"},
		{"issued in the future", own, value, adminJWT(t, ts.airline.Key, now.Add(time.Hour), nil), 401, "admin-unauthenticated", "more than 5m0s from the server's clock"},
		{"not yet valid", own, value, adminJWT(t, ts.airline.Key, now, map[string]any{"nbf": now.Add(time.Hour).Unix()}), 401, "admin-unauthenticated", "not valid before"},
		{"no iat", own, value, adminJWT(t, ts.airline.Key, now, map[string]any{"iat": nil}), 401, "admin-unauthenticated", "lacks iat or exp"},
		{"no exp", own, value, adminJWT(t, ts.airline.Key, now, map[string]any{"exp": nil}), 401, "admin-unauthenticated", "lacks iat or exp"},
		{"alg none", own, value, unsigned(`{"alg":"none"}`, fmt.Sprintf(`{"iat":%d,"exp":%d}`, now.Unix(), now.Add(time.Hour).Unix())), 401, "admin-unauthenticated", "want EdDSA"},
		{"not a JWT", own, value, "not-a-token", 401, "admin-unauthenticated", "not a compact JWS"},
		{"another tenant's repository", TrusteeResourcePrefix + "carrier/key/planted", value, adminJWT(t, ts.airline.Key, now, nil), 403, "not-your-tenant", "does not own repository carrier"},
		{"the operator's resource", TrusteeResourcePrefix + "nobody/key/planted", value, adminJWT(t, ts.operator.Key, now, nil), 403, "not-your-tenant", "owns no repository"},
		{"a tenant's global policy", TrusteeResourcePolicyPath, policyBody("package kura.release\nallow := true"), adminJWT(t, ts.carrier.Key, now, nil), 403, "not-your-tenant", "the operator's: key carrier is a tenant's"},
		{"policy not base64", TrusteeResourcePolicyPath, []byte(`{"policy":"%%%"}`), adminJWT(t, ts.operator.Key, now, nil), 400, "bad-request", "not base64url"},
		{"policy that does not compile", TrusteeResourcePolicyPath, policyBody("package kura.release\nallow := "), adminJWT(t, ts.operator.Key, now, nil), 400, "bad-request", ""},
		{"policy body with unknown fields", TrusteeResourcePolicyPath, []byte(`{"policy":"","type":"rego"}`), adminJWT(t, ts.operator.Key, now, nil), 400, "bad-request", ""},
		{"oversized resource", own, bytes.Repeat([]byte{'x'}, MaxResourceSize+1), adminJWT(t, ts.airline.Key, now, nil), 400, "bad-request", "limit is"},
		{"oversized body", own, bytes.Repeat([]byte{'x'}, maxAdminBody+1), adminJWT(t, ts.airline.Key, now, nil), 413, "too-large", ""},
	}
	for _, tt := range tests {
		st, p, _ := kbsClientPost(t, f, tt.path, "application/octet-stream", tt.body, tt.token)
		if st != tt.status || p == nil || p.Type != web.ProblemTypeBase+tt.typ || !strings.Contains(p.Detail, tt.detail) {
			t.Errorf("%s: %d %+v, want %d %s with %q", tt.name, st, p, tt.status, tt.typ, tt.detail)
		}
	}
	if ms, err := ts.airline.List(ctx, "airline/"); err != nil || len(ms) != 0 {
		t.Errorf("airline's resources after refusals: %+v, %v; want none", ms, err)
	}
	if ms, err := ts.carrier.List(ctx, "carrier/"); err != nil || len(ms) != 0 {
		t.Errorf("carrier's resources after refusals: %+v, %v; want none", ms, err)
	}
	if _, err := ts.operator.Policy(ctx, "default"); err == nil {
		t.Error("a refused set-resource-policy stored the default policy")
	}

	// The cross-tenant attempt is in the victim's audit trail, as the owner
	// API's refusals are; the tenant's attempt on the global policy in the
	// operator's.
	recs, err := ts.carrier.Audit(ctx, 0, 100)
	if err != nil || len(recs) != 1 || recs[0].Decision != store.DecisionAdminRefused || recs[0].Requester != "admin:airline" ||
		recs[0].Resource != "carrier/key/planted" || !strings.HasPrefix(recs[0].Reason, "POST "+TrusteeResourcePrefix+"carrier/key/planted: ") {
		t.Errorf("carrier's audit = %+v, %v; want airline's refused attempt", recs, err)
	}
	recs, err = ts.operator.Audit(ctx, 0, 100)
	found := false
	for _, r := range recs {
		found = found || r.Decision == store.DecisionAdminRefused && r.Requester == "admin:carrier" && r.PolicyID == "default" && strings.HasPrefix(r.Reason, "POST "+TrusteeResourcePolicyPath)
	}
	if err != nil || !found {
		t.Errorf("operator's audit = %+v, %v; want carrier's refused set-resource-policy", recs, err)
	}
	if !strings.Contains(f.logs.String(), "admin request refused") {
		t.Error("refusals not logged")
	}
}

// TestTrusteeAdminReplay: a token authorizes each request once; a token
// with a jti is single-use; a Kura-Signature request whose body was
// changed does not verify; an admin token does not open the owner API.
func TestTrusteeAdminReplay(t *testing.T) {
	ts := newTenantsCompat(t, CompatTrustee)
	f := ts.fixture
	now := time.Now()
	tok := adminJWT(t, ts.airline.Key, now, nil)
	path := TrusteeResourcePrefix + "airline/key/replayed"
	if st, p, _ := kbsClientPost(t, f, path, "application/octet-stream", []byte("v1"), tok); st != http.StatusOK {
		t.Fatalf("first use: %d %+v", st, p)
	}
	if st, p, _ := kbsClientPost(t, f, path, "application/octet-stream", []byte("v1"), tok); st != 401 || !strings.Contains(p.Detail, "replayed request") {
		t.Errorf("the same request again: %d %+v, want 401 replayed request", st, p)
	}
	// kbs-client signs one token per command, to the second: two commands
	// in the same second carry the same token and both work.
	if st, p, _ := kbsClientPost(t, f, TrusteeResourcePrefix+"airline/key/other", "application/octet-stream", []byte("v1"), tok); st != http.StatusOK {
		t.Errorf("the same token for another request: %d %+v", st, p)
	}
	jti := adminJWT(t, ts.airline.Key, now, map[string]any{"jti": "once"})
	if st, p, _ := kbsClientPost(t, f, path, "application/octet-stream", []byte("v2"), jti); st != http.StatusOK {
		t.Fatalf("token with jti: %d %+v", st, p)
	}
	if st, p, _ := kbsClientPost(t, f, TrusteeResourcePrefix+"airline/key/third", "application/octet-stream", []byte("v3"), jti); st != 401 || !strings.Contains(p.Detail, "replayed token") {
		t.Errorf("a jti token for another request: %d %+v, want 401 replayed token", st, p)
	}
	if st, p := signedPost(t, f, ts.airline, path, []byte("signed"), []byte("tampered")); st != 401 || p.Type != web.ProblemTypeBase+"admin-unauthenticated" || !strings.Contains(p.Detail, "signature does not verify") {
		t.Errorf("tampered body: %d %+v, want 401 signature does not verify", st, p)
	}
	// A Trustee admin token opens Trustee's endpoints only, not the owner API.
	body, _ := json.Marshal(PutRequest{Value: []byte("via the owner API")})
	h := http.Header{"Authorization": {"Bearer " + adminJWT(t, ts.airline.Key, now, nil)}}
	if st, p, _, _ := kbsCallBody(t, f, http.MethodPut, "/kbs/v0/admin/resource/airline/key/replayed", string(body), nil, h); st != 401 || p.Type != web.ProblemTypeBase+"admin-unauthenticated" {
		t.Errorf("admin JWT on the owner API: %d %+v, want 401 admin-unauthenticated", st, p)
	}
	m, err := ts.airline.Get(context.Background(), "airline/key/replayed")
	if err != nil || m.Version != 2 {
		t.Errorf("resource after replays: %+v, %v; want version 2", m, err)
	}
}

// TestTrusteeAdminRoutes: a broker without owner keys has no Trustee admin
// endpoints either (Trustee mode answers as Trustee does for a plugin it
// lacks); with them, Trustee's attestation-policy endpoint is still absent.
func TestTrusteeAdminRoutes(t *testing.T) {
	f := newFixture(t, fixtureOpts{dev: true, compat: CompatTrustee, noAdmin: true})
	for _, path := range []string{TrusteeResourcePrefix + "a/b/c", TrusteeResourcePolicyPath} {
		st, p, _ := kbsClientPost(t, f, path, "application/json", []byte("{}"), "x.y.z")
		if st != 404 || p == nil || p.Type != TrusteeErrorBase+"PluginNotFound" {
			t.Errorf("POST %s without owner keys: %d %+v, want 404 PluginNotFound", path, st, p)
		}
	}
	ts := newTenantsCompat(t, CompatTrustee)
	st, p, _ := kbsClientPost(t, ts.fixture, "/kbs/v0/attestation-policy", "application/json", []byte("{}"), adminJWT(t, ts.operator.Key, time.Now(), nil))
	if st != 404 || p == nil || p.Type != TrusteeErrorBase+"PluginNotFound" {
		t.Errorf("attestation-policy: %d %+v, want 404 PluginNotFound", st, p)
	}
}

// FuzzAdminToken: parseAdminToken never panics, and what it accepts has
// the EdDSA signature size and signs exactly the token's first two parts.
func FuzzAdminToken(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Unix(1_800_000_000, 0)
	seeds := []string{
		adminJWT(f, key, now, nil),
		adminJWT(f, key, now, map[string]any{"jti": "x", "iat": 1.5}),
		"e30.e30.", "a.b.c", "",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		input, claims, sig, err := parseAdminToken(tok)
		if err != nil {
			return
		}
		if len(sig) != ed25519.SignatureSize || claims.IssuedAt == "" || claims.Expires == "" || !strings.HasPrefix(tok, string(input)+".") {
			t.Fatalf("accepted %q: input %q, claims %+v", tok, input, claims)
		}
	})
}
