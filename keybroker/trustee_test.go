package keybroker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/web"
)

// kbsCall sends one request to the broker and returns the status, the
// problem (if the answer is one) and the answer.
func kbsCall(t *testing.T, f *fixture, method, path, body string, cookie *http.Cookie, header http.Header) (int, *web.Problem, *http.Response) {
	st, p, resp, _ := kbsCallBody(t, f, method, path, body, cookie, header)
	return st, p, resp
}

// kbsCallBody is kbsCall, also returning the answer's body.
func kbsCallBody(t *testing.T, f *fixture, method, path, body string, cookie *http.Cookie, header http.Header) (int, *web.Problem, *http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, rd)
	for k, v := range header {
		req.Header[k] = v
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, nil, resp, data
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s %s: %d answered as %q, not a problem: %q", method, path, resp.StatusCode, ct, data)
	}
	var p web.Problem
	if err := json.Unmarshal(data, &p); err != nil || p.Status != resp.StatusCode || p.Type == "" {
		t.Errorf("%s %s: problem %q does not parse or disagrees with status %d", method, path, data, resp.StatusCode)
	}
	return resp.StatusCode, &p, resp, data
}

// attestWith posts an Attestation with the given evidence (as the 0.4
// composite's primary_evidence, verbatim) and init-data member (omitted
// when ""), and returns the status and the token.
func (g *cocoGuest) attestWith(primary, initData string) (int, string) {
	g.t.Helper()
	body := `{"runtime-data":{"nonce":"` + g.nonce + `","tee-pubkey":` + string(g.jwkJSON) + `},` +
		`"tee-evidence":{"primary_evidence":` + primary + `,"additional_evidence":""}`
	if initData != "" {
		body += `,"init-data":` + initData
	}
	body += "}"
	var out struct {
		Token string `json:"token"`
	}
	err := g.s.do(context.Background(), http.MethodPost, "/kbs/v0/attest", []byte(body), &out)
	var re *RemoteError
	switch {
	case errors.As(err, &re):
		return re.Status, ""
	case err != nil:
		g.t.Fatal(err)
	}
	return http.StatusOK, out.Token
}

// sampleEvidence is Trustee's sample evidence as guest-components' sample
// attester makes it: report_data is the runtime data's SHA-384, unpadded.
func (g *cocoGuest) sampleEvidence(nonce string, initData []byte) string {
	rd := g.reportData("0.4.0", nonce, g.jwkJSON)
	ev := `{"svn":"1","report_data":"` + base64.StdEncoding.EncodeToString(rd[:48]) + `"`
	if initData != nil {
		ev += `,"init_data":"` + base64.StdEncoding.EncodeToString(initData) + `"`
	}
	return ev + "}"
}

// TestTrusteeSample: Trustee's sample evidence attests in dev mode, bound
// by CoCo's rule, INSECURE in the token and the logs as the sim TEE is, and
// the secret it unlocks decrypts; outside dev mode it is refused with a
// reason; sample evidence binding another nonce or truncated is refused.
func TestTrusteeSample(t *testing.T) {
	ctx := context.Background()
	for _, compat := range []Compat{CompatKura, CompatTrustee} {
		t.Run(string(compat), func(t *testing.T) {
			f := newFixture(t, fixtureOpts{dev: true, compat: compat})
			if _, err := f.admin.Put(ctx, secretPath, secret, nil, ""); err != nil {
				t.Fatal(err)
			}
			g, _ := newCoCoGuest(t, f, "0.4.0", "sample")
			st, tok := g.attestWith(g.sampleEvidence(g.nonce, nil), "")
			if st != 200 {
				t.Fatalf("attest: %d", st)
			}
			a, err := f.broker.authenticate(ctx, []byte(tok))
			if err != nil {
				t.Fatal(err)
			}
			if a.View.TEE != "sim" || !a.View.Insecure || !strings.Contains(a.View.Claims["warning"].(string), "INSECURE") {
				t.Errorf("token: tee %s insecure %v claims %v", a.View.TEE, a.View.Insecure, a.View.Claims)
			}
			got, err := g.s.Resource(ctx, secretPath)
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("Resource: %q, %v", got, err)
			}
			if logs := f.logs.String(); !strings.Contains(logs, "Trustee sample evidence") || !strings.Contains(logs, "INSECURE") {
				t.Errorf("logs do not mark the sample attestation INSECURE:\n%s", logs)
			}

			other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
			for name, ev := range map[string]string{
				"binds another nonce":    g.sampleEvidence(other, nil),
				"report_data truncated":  `{"svn":"1","report_data":"` + base64.StdEncoding.EncodeToString(make([]byte, 16)) + `"}`,
				"report_data tampered":   strings.Replace(g.sampleEvidence(g.nonce, nil), `"report_data":"`, `"report_data":"AAAA`, 1),
				"no report_data":         `{"svn":"1"}`,
				"report_data oversized":  `{"svn":"1","report_data":"` + base64.StdEncoding.EncodeToString(make([]byte, 96)) + `"}`,
				"kura sim key alongside": `{"svn":"1","format":"kura-sim-evidence/v1"}`,
			} {
				g, _ := newCoCoGuest(t, f, "0.4.0", "sample")
				if st, _ := g.attestWith(ev, ""); st != 401 && st != 400 {
					t.Errorf("%s: %d, want a refusal", name, st)
				}
				if _, err := g.s.Resource(ctx, secretPath); !errors.Is(err, ErrUnauthenticated) {
					t.Errorf("%s: resource after refusal: %v", name, err)
				}
			}
		})
	}

	f := newFixture(t, fixtureOpts{})
	g, _ := newCoCoGuest(t, f, "0.4.0", "sample")
	body := `{"runtime-data":{"nonce":"` + g.nonce + `","tee-pubkey":` + string(g.jwkJSON) + `},"tee-evidence":{"primary_evidence":` +
		g.sampleEvidence(g.nonce, nil) + `,"additional_evidence":""}}`
	err := g.s.do(ctx, http.MethodPost, "/kbs/v0/attest", []byte(body), nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Status != 401 || !strings.Contains(re.Detail, "dev mode") || !strings.Contains(re.Detail, "INSECURE") {
		t.Errorf("sample evidence outside dev mode: %v, want 401 naming dev mode", err)
	}
	// Nor does a kura bundle carrying sample evidence get past the gate.
	pub, _ := CanonicalJWK(g.jwkJSON)
	nonce, _ := base64.StdEncoding.DecodeString(g.nonce)
	bundle, _ := json.Marshal(&attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.Sim,
		Evidence: []byte(g.sampleEvidence(g.nonce, nil)), RuntimeData: attestation.RuntimeData{Nonce: nonce, PublicKey: pub}})
	body = `{"runtime-data":{"nonce":"` + g.nonce + `","tee-pubkey":` + string(g.jwkJSON) + `},"tee-evidence":{"primary_evidence":` +
		string(bundle) + `,"additional_evidence":""}}`
	err = g.s.do(ctx, http.MethodPost, "/kbs/v0/attest", []byte(body), nil)
	if !errors.As(err, &re) || re.Status != 401 || !strings.Contains(re.Detail, "dev mode") {
		t.Errorf("sample evidence in a kura bundle outside dev mode: %v, want 401 naming dev mode", err)
	}
}

// TestPrimaryEvidenceString: a 0.4 composite's primary_evidence may be the
// evidence or a JSON string holding it, for native and kura evidence alike
// (docs/spec/keybroker.md §2.1); a string holding something else is refused.
func TestPrimaryEvidenceString(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{dev: true})
	if _, err := f.admin.Put(ctx, secretPath, secret, nil, ""); err != nil {
		t.Fatal(err)
	}
	quote := func(s []byte) string { b, _ := json.Marshal(string(s)); return string(b) }
	for name, ev := range map[string]func(g *cocoGuest) string{
		"native sim evidence": func(g *cocoGuest) string {
			return quote(g.evidence(g.reportData("0.4.0", g.nonce, g.jwkJSON)))
		},
		"Trustee sample evidence": func(g *cocoGuest) string { return quote([]byte(g.sampleEvidence(g.nonce, nil))) },
		"kura evidence bundle": func(g *cocoGuest) string {
			pub, err := CanonicalJWK(g.jwkJSON)
			if err != nil {
				t.Fatal(err)
			}
			nonce, _ := base64.StdEncoding.DecodeString(g.nonce)
			rd := attestation.RuntimeData{Nonce: nonce, PublicKey: pub}
			b, err := simAttester(t, 1).Attest(ctx, rd.ReportData())
			if err != nil {
				t.Fatal(err)
			}
			b.RuntimeData = rd
			data, _ := json.Marshal(b)
			return quote(data)
		},
	} {
		t.Run(name, func(t *testing.T) {
			g, _ := newCoCoGuest(t, f, "0.4.0", "sample")
			if st, _ := g.attestWith(ev(g), ""); st != 200 {
				t.Fatalf("attest: %d", st)
			}
			if got, err := g.s.Resource(ctx, secretPath); err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("Resource: %q, %v", got, err)
			}
		})
	}
	for name, ev := range map[string]string{
		"string of a number":          `"5"`,
		"string of truncated JSON":    `"{\"svn\":"`,
		"string of a string":          `"\"{\\\"svn\\\":\\\"1\\\"}\""`,
		"empty string":                `""`,
		"string of evidence and junk": `"{\"svn\":\"1\"} x"`,
	} {
		g, _ := newCoCoGuest(t, f, "0.4.0", "sample")
		if st, _ := g.attestWith(ev, ""); st != 400 {
			t.Errorf("%s: %d, want 400", name, st)
		}
	}
}

// TestAttestSetsCookie: /attest answers with the session cookie, as
// Trustee does, so a client keeping the last answer's cookies keeps the
// session; a repeated attest answers the same token and cookie.
func TestAttestSetsCookie(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{dev: true})
	if _, err := f.admin.Put(ctx, secretPath, secret, nil, ""); err != nil {
		t.Fatal(err)
	}
	g, _ := newCoCoGuest(t, f, "0.4.0", "sample")
	u, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/kbs/v0/auth", nil)
	authCookies := g.s.hc.Jar.Cookies(u.URL)
	if len(authCookies) != 1 || authCookies[0].Name != SessionCookie {
		t.Fatalf("auth cookies %v", authCookies)
	}
	body := `{"runtime-data":{"nonce":"` + g.nonce + `","tee-pubkey":` + string(g.jwkJSON) + `},"tee-evidence":{"primary_evidence":` +
		g.sampleEvidence(g.nonce, nil) + `,"additional_evidence":""}}`
	var tokens []string
	for range 2 {
		st, _, resp, data := kbsCallBody(t, f, http.MethodPost, "/kbs/v0/attest", body, authCookies[0], nil)
		if st != 200 {
			t.Fatalf("attest: %d", st)
		}
		tokens = append(tokens, string(data))
		cs := resp.Cookies()
		if len(cs) != 1 || cs[0].Name != SessionCookie || cs[0].Value != authCookies[0].Value || cs[0].Expires.IsZero() || cs[0].Path != "/kbs" {
			t.Fatalf("attest cookies %v, want the session's %v", cs, authCookies[0])
		}
		// A client that keeps only this answer's cookie fetches with it.
		if st, _, _ := kbsCall(t, f, http.MethodGet, "/kbs/v0/resource/"+secretPath, "", cs[0], nil); st != 200 {
			t.Errorf("resource with the attest answer's cookie: %d", st)
		}
	}
	if tokens[0] != tokens[1] || !strings.Contains(tokens[0], `"token"`) {
		t.Errorf("a repeated attest answered %s, then %s", tokens[0], tokens[1])
	}
}

// TestUnroutedProblems: requests under /kbs/ that no route takes are
// problems, never the mux's plain text: 405 with Allow for a path with
// routes for other methods, else 404; in Trustee mode, as Trustee answers.
func TestUnroutedProblems(t *testing.T) {
	tests := []struct {
		compat        Compat
		method, path  string
		status        int
		typ, allow    string
		detailPrefix  string
		trusteeDetail bool
	}{
		{CompatKura, "GET", "/kbs/v0/auth", 405, web.ProblemTypeBase + "method-not-allowed", "POST", "", false},
		{CompatKura, "PUT", "/kbs/v0/attest", 405, web.ProblemTypeBase + "method-not-allowed", "POST", "", false},
		{CompatKura, "DELETE", "/kbs/v0/resource/a/b/c", 405, web.ProblemTypeBase + "method-not-allowed", "GET, HEAD, POST", "", false},
		{CompatKura, "GET", "/kbs/v0/resource-policy", 405, web.ProblemTypeBase + "method-not-allowed", "POST", "", false},
		{CompatKura, "POST", "/kbs/v0/admin/resource/a/b/c", 405, web.ProblemTypeBase + "method-not-allowed", "DELETE, GET, HEAD, PUT", "", false},
		{CompatKura, "GET", "/kbs/v0/nothing", 404, web.ProblemTypeBase + "not-found", "", "no KBS endpoint", false},
		{CompatKura, "GET", "/kbs/v0/resource/a/b", 404, web.ProblemTypeBase + "not-found", "", "no KBS endpoint", false},
		{CompatKura, "GET", "/kbs/", 404, web.ProblemTypeBase + "not-found", "", "no KBS endpoint", false},
		{CompatTrustee, "GET", "/kbs/v0/auth", 404, TrusteeErrorBase + "PluginNotFound", "", "Plugin auth not found", true},
		{CompatTrustee, "POST", "/kbs/v0/nothing/x", 404, TrusteeErrorBase + "PluginNotFound", "", "Plugin nothing not found", true},
		{CompatTrustee, "GET", "/kbs/v0/resource/a/b", 401, TrusteeErrorBase + "PluginInternalError", "", "Plugin internal error", true},
		{CompatTrustee, "PUT", "/kbs/v0/nothing", 405, web.ProblemTypeBase + "method-not-allowed", "GET, POST", "", false},
		{CompatTrustee, "GET", "/kbs/v1/x", 404, web.ProblemTypeBase + "not-found", "", "no KBS endpoint", false},
	}
	fixtures := map[Compat]*fixture{}
	for _, tt := range tests {
		f := fixtures[tt.compat]
		if f == nil {
			f = newFixture(t, fixtureOpts{dev: true, compat: tt.compat})
			fixtures[tt.compat] = f
		}
		st, p, resp := kbsCall(t, f, tt.method, tt.path, "", nil, nil)
		if st != tt.status || p == nil || p.Type != tt.typ || resp.Header.Get("Allow") != tt.allow || !strings.HasPrefix(p.Detail, tt.detailPrefix) {
			t.Errorf("%s %s %s: %d %+v Allow %q, want %d %s Allow %q", tt.compat, tt.method, tt.path, st, p, resp.Header.Get("Allow"), tt.status, tt.typ, tt.allow)
		}
	}
	// Real routes are untouched by the catch-all, in both modes.
	for _, f := range fixtures {
		if _, err := f.admin.List(context.Background(), ""); err != nil {
			t.Errorf("owner API behind the catch-all: %v", err)
		}
	}
}

// TestTrusteeCompat: in Trustee mode the broker answers as Trustee's KBS
// 0.4.0: only version 0.4.0, every failed auth or attest 401
// AttestationError, resource failures 401 TokenNotFound,
// TokenVerifierError or PluginInternalError and 403 PolicyDeny, all with
// Trustee's error types; kura's own client (0.4.0) and a CoCo guest work.
// The same requests to a default broker keep kura's answers.
func TestTrusteeCompat(t *testing.T) {
	ctx := context.Background()
	tf := newFixture(t, fixtureOpts{dev: true, compat: CompatTrustee})
	kf := newFixture(t, fixtureOpts{dev: true})
	for _, f := range []*fixture{tf, kf} {
		if _, err := f.admin.Put(ctx, secretPath, secret, nil, ""); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.broker.SetPolicy(ctx, "resource/owner-a/key/denied", "package kura.release\nallow := false\ndeny := [\"no\"]\n", "test"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.admin.Put(ctx, "owner-a/key/denied", secret, nil, ""); err != nil {
			t.Fatal(err)
		}
	}

	// kura's client speaks 0.4.0 and the 0.4 shapes: it works in both modes.
	for _, f := range []*fixture{tf, kf} {
		s, err := (&Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}).Attest(ctx, simAttester(t, 1), nil)
		if err != nil {
			t.Fatalf("kura client: %v", err)
		}
		if got, err := s.Resource(ctx, secretPath); err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("kura client resource: %q, %v", got, err)
		}
	}
	// A CoCo guest at 0.4.0 works in Trustee mode; at 0.1.1 it does not.
	g, st := newCoCoGuest(t, tf, "0.4.0", "sample")
	if st != 200 {
		t.Fatalf("0.4.0 auth: %d", st)
	}
	if st := g.attest(g.nonce, g.jwkJSON, g.evidence(g.reportData("0.4.0", g.nonce, g.jwkJSON))); st != 200 {
		t.Fatalf("0.4.0 attest: %d", st)
	}
	if _, st := newCoCoGuest(t, tf, "0.4.0+build.7", "sample"); st != 200 {
		t.Errorf("0.4.0+build: %d, want 200 (semver ignores build metadata)", st)
	}

	kuraCookie := func(f *fixture) *http.Cookie {
		_, _, resp := kbsCall(t, f, "POST", "/kbs/v0/auth", `{"version":"0.4.0","tee":"sample","extra-params":""}`, nil, nil)
		return resp.Cookies()[0]
	}
	attested := func(f *fixture) *http.Cookie {
		g, _ := newCoCoGuest(t, f, "0.4.0", "sample")
		if st, _ := g.attestWith(g.sampleEvidence(g.nonce, nil), ""); st != 200 {
			t.Fatalf("attest: %d", st)
		}
		u, _ := http.NewRequest("GET", f.srv.URL+"/kbs/v0/resource/x/y/z", nil)
		return g.s.hc.Jar.Cookies(u.URL)[0]
	}
	const (
		attestationError = TrusteeErrorBase + "AttestationError"
		bad              = web.ProblemTypeBase + "bad-request"
		unauth           = web.ProblemTypeBase + "unauthenticated"
	)
	tests := []struct {
		name, method, path, body string
		cookie                   func(f *fixture) *http.Cookie
		header                   http.Header
		trustee                  int
		trusteeType              string
		kura                     int
		kuraType                 string
	}{
		{"auth malformed JSON", "POST", "/kbs/v0/auth", `{"version":`, nil, nil, 401, attestationError, 400, bad},
		{"auth unsupported tee", "POST", "/kbs/v0/auth", `{"version":"0.4.0","tee":"sgx"}`, nil, nil, 401, attestationError, 400, bad},
		{"auth version 0.1.1", "POST", "/kbs/v0/auth", `{"version":"0.1.1","tee":"snp"}`, nil, nil, 401, attestationError, 200, ""},
		{"auth version 0.4.1", "POST", "/kbs/v0/auth", `{"version":"0.4.1","tee":"snp"}`, nil, nil, 401, attestationError, 200, ""},
		{"auth version 0.4.0-rc1", "POST", "/kbs/v0/auth", `{"version":"0.4.0-rc1","tee":"snp"}`, nil, nil, 401, attestationError, 200, ""},
		{"auth version garbage", "POST", "/kbs/v0/auth", `{"version":"zero","tee":"snp"}`, nil, nil, 401, attestationError, 400, bad},
		{"auth oversized", "POST", "/kbs/v0/auth", `{"version":"0.4.0","tee":"snp","extra-params":"` + strings.Repeat("x", 70<<10) + `"}`, nil, nil, 413, web.ProblemTypeBase + "too-large", 413, web.ProblemTypeBase + "too-large"},
		{"attest without cookie", "POST", "/kbs/v0/attest", `{}`, nil, nil, 401, attestationError, 401, unauth},
		{"attest malformed JSON", "POST", "/kbs/v0/attest", `{"runtime-data":`, kuraCookie, nil, 401, attestationError, 400, bad},
		{"attest truncated", "POST", "/kbs/v0/attest", `{"runtime-data":{"nonce":"AAAA","tee-pubkey":{}},"tee-evidence":{"primary_ev`, kuraCookie, nil, 401, attestationError, 400, bad},
		{"attest 0.1.0 shape", "POST", "/kbs/v0/attest", `{"tee-pubkey":{"kty":"EC"},"tee-evidence":"{}"}`, kuraCookie, nil, 401, attestationError, 400, bad},
		{"resource without token", "GET", "/kbs/v0/resource/" + secretPath, "", nil, nil, 401, TrusteeErrorBase + "TokenNotFound", 401, unauth},
		{"resource unattested session", "GET", "/kbs/v0/resource/" + secretPath, "", kuraCookie, nil, 401, TrusteeErrorBase + "TokenNotFound", 401, unauth},
		{"resource forged token", "GET", "/kbs/v0/resource/" + secretPath, "", nil, http.Header{"Authorization": {"Bearer eyJhbGciOiJFUzI1NiJ9.e30.AAAA"}}, 401, TrusteeErrorBase + "TokenVerifierError", 401, unauth},
		{"resource missing", "GET", "/kbs/v0/resource/owner-a/key/none", "", attested, nil, 401, TrusteeErrorBase + "PluginInternalError", 404, web.ProblemTypeBase + "resource-not-found"},
		{"resource denied", "GET", "/kbs/v0/resource/owner-a/key/denied", "", attested, nil, 403, TrusteeErrorBase + "PolicyDeny", 403, web.ProblemTypeBase + "policy-denied"},
	}
	for _, tt := range tests {
		for _, m := range []struct {
			f      *fixture
			status int
			typ    string
		}{{tf, tt.trustee, tt.trusteeType}, {kf, tt.kura, tt.kuraType}} {
			var c *http.Cookie
			if tt.cookie != nil {
				c = tt.cookie(m.f)
			}
			st, p, _ := kbsCall(t, m.f, tt.method, tt.path, tt.body, c, tt.header)
			if st != m.status || m.typ != "" && (p == nil || p.Type != m.typ) {
				t.Errorf("%s (%s): %d %+v, want %d %s", tt.name, m.f.broker.compat, st, p, m.status, m.typ)
			}
			if m.f == tf && p != nil && p.Type == attestationError && !strings.HasPrefix(p.Detail, "Attestation error: RCAR handshake ") {
				t.Errorf("%s: Trustee detail %q", tt.name, p.Detail)
			}
		}
	}
	if _, err := ParseCompat("nope"); err == nil {
		t.Error("ParseCompat accepted an unknown mode")
	}
	if _, err := New(Config{Store: tf.store, Keys: tf.broker.keys, Tokens: tf.broker.tokens, Compat: "nope"}); err == nil {
		t.Error("New accepted an unknown compatibility mode")
	}
}

// initdataTOML is an Initdata document as Confidential Containers writes
// one (Trustee's kbs/docs/initdata.md).
const initdataTOML = `algorithm = "sha384"
version = "0.1.0"

[data]
"aa.toml" = '''
[token_configs.kbs]
url = "http://127.0.0.1:8080"
'''
"policy.rego" = '''
package agent_policy
default AllowRequestsFailingPolicy := true
'''
`

// TestInitData: init-data is parsed as Trustee parses it and its digest
// checked against the evidence's init-data field; init-data that does not
// match, is malformed, truncated or oversized is refused, and so is
// init-data with evidence that has no such field.
func TestInitData(t *testing.T) {
	ctx := context.Background()
	sum384 := sha512.Sum384([]byte(initdataTOML))
	initData := func(format, body string) string {
		b, _ := json.Marshal(map[string]string{"format": format, "body": body})
		return string(b)
	}
	good := initData("toml", initdataTOML)
	sha256Doc := strings.Replace(initdataTOML, `"sha384"`, `"sha256"`, 1)
	sum256 := sha256.Sum256([]byte(sha256Doc))
	for _, compat := range []Compat{CompatKura, CompatTrustee} {
		f := newFixture(t, fixtureOpts{dev: true, compat: compat})
		if _, err := f.admin.Put(ctx, secretPath, secret, nil, ""); err != nil {
			t.Fatal(err)
		}
		malformed := 400
		if compat == CompatTrustee {
			malformed = 401
		}
		tests := []struct {
			name     string
			initData string
			evidence func(g *cocoGuest) string
			status   int
		}{
			{"matching sha384", good, func(g *cocoGuest) string { return g.sampleEvidence(g.nonce, sum384[:]) }, 200},
			{"matching sha256", initData("toml", sha256Doc), func(g *cocoGuest) string { return g.sampleEvidence(g.nonce, sum256[:]) }, 200},
			{"null init-data", "null", func(g *cocoGuest) string { return g.sampleEvidence(g.nonce, nil) }, 200},
			{"evidence binds other init-data", good, func(g *cocoGuest) string { return g.sampleEvidence(g.nonce, sum256[:]) }, 401},
			{"init-data tampered", initData("toml", strings.Replace(initdataTOML, "8080", "8081", 1)), func(g *cocoGuest) string { return g.sampleEvidence(g.nonce, sum384[:]) }, 401},
			{"evidence without init_data", good, func(g *cocoGuest) string { return g.sampleEvidence(g.nonce, nil) }, 401},
			{"kura sim evidence has no init-data field", good, func(g *cocoGuest) string { return string(g.evidence(g.reportData("0.4.0", g.nonce, g.jwkJSON))) }, 401},
			{"json format", initData("json", `{"version":"0.1.0","algorithm":"sha384","data":{}}`), func(g *cocoGuest) string { return g.sampleEvidence(g.nonce, sum384[:]) }, malformed},
			{"body not TOML", initData("toml", "version = "), func(g *cocoGuest) string { return g.sampleEvidence(g.nonce, sum384[:]) }, malformed},
			{"body truncated", initData("toml", initdataTOML[:40]), func(g *cocoGuest) string { return g.sampleEvidence(g.nonce, sum384[:]) }, malformed},
			{"no algorithm", initData("toml", "version = \"0.1.0\"\n[data]\n"), func(g *cocoGuest) string { return g.sampleEvidence(g.nonce, sum384[:]) }, malformed},
			{"md5", initData("toml", "version = \"0.1.0\"\nalgorithm = \"md5\"\n[data]\n"), func(g *cocoGuest) string { return g.sampleEvidence(g.nonce, sum384[:]) }, malformed},
			{"data not strings", initData("toml", "version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\nx = 1\n"), func(g *cocoGuest) string { return g.sampleEvidence(g.nonce, sum384[:]) }, malformed},
			{"unknown member", `{"format":"toml","body":"","digest":"x"}`, func(g *cocoGuest) string { return g.sampleEvidence(g.nonce, sum384[:]) }, malformed},
			{"not an object", `"toml"`, func(g *cocoGuest) string { return g.sampleEvidence(g.nonce, sum384[:]) }, malformed},
			{"oversized", initData("toml", initdataTOML+"#"+strings.Repeat("x", maxKBSBody)), func(g *cocoGuest) string { return g.sampleEvidence(g.nonce, sum384[:]) }, 413},
		}
		for _, tt := range tests {
			t.Run(string(compat)+"/"+tt.name, func(t *testing.T) {
				g, _ := newCoCoGuest(t, f, "0.4.0", "sample")
				if st, _ := g.attestWith(tt.evidence(g), tt.initData); st != tt.status {
					t.Fatalf("attest: %d, want %d", st, tt.status)
				}
				_, err := g.s.Resource(ctx, secretPath)
				if tt.status == 200 && err != nil || tt.status != 200 && !errors.Is(err, ErrUnauthenticated) {
					t.Errorf("resource: %v", err)
				}
			})
		}
		if !strings.Contains(f.logs.String(), "init-data does not match the evidence") {
			t.Errorf("%s: init-data refusals are not logged", compat)
		}
	}
}

// TestInitDataHardwareFields: the digest is compared with SNP HOST_DATA
// (32 bytes) and TDX MRCONFIGID (48 bytes) zero-padded or truncated to
// their size, as Trustee's verifiers regularise it.
func TestInitDataHardwareFields(t *testing.T) {
	body := initdataTOML
	raw, _ := json.Marshal(map[string]string{"format": "toml", "body": body})
	d, err := parseInitData(raw)
	if err != nil {
		t.Fatal(err)
	}
	sum384 := sha512.Sum384([]byte(body))
	claims := func(tee, field string, v []byte) map[string]any {
		return map[string]any{"tee": tee, tee: map[string]any{field: hex.EncodeToString(v)}}
	}
	tests := []struct {
		name   string
		tee    attestation.TEE
		claims map[string]any
		ok     bool
	}{
		{"snp host_data: sha384 truncated to 32", attestation.SNP, claims("snp", "host_data", sum384[:32]), true},
		{"snp host_data: other", attestation.SNP, claims("snp", "host_data", make([]byte, 32)), false},
		{"snp host_data: wrong size", attestation.SNP, claims("snp", "host_data", sum384[:]), false},
		{"snp: no host_data", attestation.SNP, map[string]any{"tee": "snp"}, false},
		{"tdx mr_config_id: sha384 exactly", attestation.TDX, claims("tdx", "mr_config_id", sum384[:]), true},
		{"tdx mr_config_id: one bit off", attestation.TDX, claims("tdx", "mr_config_id", append([]byte{sum384[0] ^ 1}, sum384[1:]...)), false},
		{"azure has none", "azure", map[string]any{}, false},
	}
	for _, tt := range tests {
		if err := d.check(tt.tee, tt.claims); (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	// sha256 into TDX's 48 bytes: zero-padded.
	raw, _ = json.Marshal(map[string]string{"format": "toml", "body": strings.Replace(body, `"sha384"`, `"SHA-256"`, 1)})
	d, err = parseInitData(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 48)
	copy(want, d.digest)
	if len(d.digest) != 32 || d.check(attestation.TDX, claims("tdx", "mr_config_id", want)) != nil {
		t.Errorf("sha256 digest zero-padded into mr_config_id refused")
	}
}

// FuzzInitData: parseInitData never panics, and what it accepts has a
// digest of its algorithm's size over exactly the body sent.
func FuzzInitData(f *testing.F) {
	raw, _ := json.Marshal(map[string]string{"format": "toml", "body": initdataTOML})
	f.Add(raw)
	f.Add([]byte(`{"format":"toml","body":"version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\nk = \"v\"\n"}`))
	f.Add([]byte(`{"format":"json","body":"{}"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := parseInitData(data)
		if err != nil || d == nil {
			return
		}
		var in kbsInitData
		if err := json.Unmarshal(data, &in); err != nil {
			t.Fatalf("accepted init-data that does not decode: %v", err)
		}
		h, _ := initdataHash(d.algorithm)
		h.Write([]byte(in.Body))
		if !bytes.Equal(h.Sum(nil), d.digest) {
			t.Fatal("digest is not over the body as sent")
		}
	})
}
