package keybroker

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwe"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/kek"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/store/sqlite"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/verifier"
)

// fixture is a key broker over real HTTP with an in-process verifier, a
// SQLite store and a file KEK.
type fixture struct {
	broker *Broker
	store  store.Store
	srv    *httptest.Server
	admin  *AdminClient
	issuer *token.Issuer
	vkey   *ecdsa.PrivateKey // the trusted verifier's signing key
	logs   *bytes.Buffer
	dir    string // holds kek and kbs.db
}

type fixtureOpts struct {
	dev     bool
	noAdmin bool
	// shared keeps sessions and nonces in the store, not in memory.
	shared bool
	// admins replaces the one owner key of every repository the tests use.
	admins *Admins
	// replicaOf makes the fixture a second replica of a shared one: the
	// same database through its own store handle, the same KEK, verifier
	// and owner key.
	replicaOf *fixture
	// compat is the KBS compatibility mode ("": kura's).
	compat Compat
}

func newFixture(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	var (
		iss  *token.Issuer
		vkey *ecdsa.PrivateKey
		k    kek.KEK
		err  error
	)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	if r := o.replicaOf; r != nil {
		dir, iss, vkey, priv = r.dir, r.issuer, r.vkey, r.admin.Key
		pub = priv.Public().(ed25519.PublicKey)
		if k, err = kek.OpenFile(filepath.Join(dir, "kek")); err != nil {
			t.Fatal(err)
		}
	} else {
		vkey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if iss, err = token.NewIssuer(token.IssuerConfig{Key: vkey}); err != nil {
			t.Fatal(err)
		}
		if k, err = kek.GenerateFile(filepath.Join(dir, "kek")); err != nil {
			t.Fatal(err)
		}
	}
	st, err := sqlite.New(ctx, sqlite.Config{Path: filepath.Join(dir, "kbs.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var shared store.Ephemeral
	if o.shared || o.replicaOf != nil {
		shared = st.Ephemeral()
	}
	simV, _ := sim.NewVerifier(sim.Config{})
	ap, err := appraisal.New(ctx, appraisal.Config{DevMode: o.dev})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := verifier.New(verifier.Config{TEEs: map[attestation.TEE]attestation.Verifier{attestation.Sim: simV}, Appraiser: ap, Issuer: iss, Nonces: shared})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := token.ParseJWKS(iss.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	tv, err := token.NewVerifier(token.VerifierConfig{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	ring, err := kek.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	// Tests search the logs; benchmarks format them as a server would, but
	// keep none (a buffer growing by gigabytes would be the benchmark).
	logs := new(bytes.Buffer)
	var w io.Writer = logs
	if _, bench := t.(*testing.B); bench {
		w = io.Discard
	}
	b, err := New(Config{Store: st, Ephemeral: shared, Keys: ring, Tokens: tv, Attest: svc, DevMode: o.dev, Compat: o.compat, RateLimit: 1e6, Logger: newTestLogger(w)})
	if err != nil {
		t.Fatal(err)
	}
	var admins *Admins
	if admins = o.admins; admins == nil && !o.noAdmin {
		// One tenant owning every repository the tests use.
		var err error
		if admins, err = NewAdmins([]AdminKey{{Name: "owner", Public: pub, Repos: []string{"owner-a", "owner-b", "owner-c", "airline"}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	b.Register(mux, admins)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{broker: b, store: st, srv: srv, issuer: iss, vkey: vkey, logs: logs, dir: dir,
		admin: &AdminClient{BaseURL: srv.URL, Key: priv, HTTP: srv.Client()}}
}

func simAttester(t testing.TB, measurement byte) *sim.Attester {
	t.Helper()
	a, err := sim.NewAttester(sim.AttesterConfig{Measurement: bytes.Repeat([]byte{measurement}, sim.MeasurementSize)})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

const secretPath = "owner-a/key/dataset-1"

var secret = []byte("the data key: 32 bytes of entropy!")

// TestEndToEnd: put a secret, attest with the sim TEE in dev mode, fetch
// it, and get exactly the bytes put.
func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{dev: true})
	if _, err := f.admin.Put(ctx, secretPath, secret, map[string]string{"owner": "a"}, ""); err != nil {
		t.Fatal(err)
	}
	c := &Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}
	s, err := c.Attest(ctx, simAttester(t, 1), []byte("run-1"))
	if err != nil {
		t.Fatalf("Attest: %v", err)
	}
	got, err := s.Resource(ctx, secretPath)
	if err != nil {
		t.Fatalf("Resource: %v", err)
	}
	if !bytes.Equal(got, secret) {
		t.Fatalf("got %q, want %q", got, secret)
	}

	// The JWE opens only with the TEE's private key.
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/kbs/v0/resource/"+secretPath, nil)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var raw json.RawMessage
	json.NewDecoder(resp.Body).Decode(&raw)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("bearer fetch: %d", resp.StatusCode)
	}
	for _, field := range []string{`"protected"`, `"encrypted_key"`, `"iv"`, `"ciphertext"`, `"tag"`} {
		if !bytes.Contains(raw, []byte(field)) {
			t.Errorf("response is not a flattened JWE: no %s in %s", field, raw)
		}
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := jwk.Import(otherKey)
	if _, err := jwe.Decrypt(raw, jwe.WithKey(jwa.ECDH_ES_A256KW(), other)); err == nil {
		t.Error("JWE opened with a key other than the TEE's")
	}

	// The stored row holds no plaintext.
	r, err := f.store.GetResource(ctx, secretPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(r.Sealed, secret) || bytes.Contains(r.WrappedDEK, secret) {
		t.Error("store holds the plaintext")
	}
	// The admin API returns metadata, never the value.
	m, err := f.admin.Get(ctx, secretPath)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 1 || m.Metadata["owner"] != "a" {
		t.Errorf("meta = %+v", m)
	}
	if strings.Contains(f.logs.String(), string(secret)) {
		t.Error("secret in logs")
	}
	recs, err := f.admin.Audit(ctx, 0, 100)
	if err != nil || len(recs) != 2 || recs[0].Decision != "released" || recs[0].TokenDigest == "" {
		t.Errorf("audit = %+v, %v; want two released records with token digests", recs, err)
	}
}

func bearer(t *testing.T, f *fixture, tok string, path string) error {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/kbs/v0/resource/"+path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return roundTrip(f.srv.Client(), req, nil)
}

// issueSim attests with a sim attester through the verifier and returns a token.
func issueSim(t *testing.T, iss *token.Issuer, measurement byte, dev bool, now time.Time) string {
	t.Helper()
	ctx := context.Background()
	simV, _ := sim.NewVerifier(sim.Config{})
	ap, _ := appraisal.New(ctx, appraisal.Config{DevMode: dev})
	svc, _ := verifier.New(verifier.Config{TEEs: map[attestation.TEE]attestation.Verifier{attestation.Sim: simV}, Appraiser: ap, Issuer: iss, Now: func() time.Time { return now }})
	teeKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pk, _ := jwk.Import(&teeKey.PublicKey)
	pkJSON, _ := json.Marshal(pk)
	n, _, _ := svc.Nonce(ctx)
	rd := attestation.RuntimeData{Nonce: n, PublicKey: pkJSON}
	b, err := simAttester(t, measurement).Attest(ctx, rd.ReportData())
	if err != nil {
		t.Fatal(err)
	}
	b.RuntimeData = rd
	rep, err := svc.Verify(ctx, b, verifier.Options{Freshness: verifier.IssuedNonce})
	if err != nil {
		t.Fatal(err)
	}
	return string(rep.Token)
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{dev: true})
	if _, err := f.admin.Put(ctx, secretPath, secret, nil, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.Put(ctx, "owner-b/key/x", secret, nil, ""); err != nil {
		t.Fatal(err)
	}
	// owner-b releases only to measurement 0x07…
	if _, err := f.admin.SetPolicy(ctx, "repo/owner-b", `package kura.release
default allow := false
allow if input.token.claims.measurement == "`+strings.Repeat("07", 48)+`"
deny contains "measurement is not the approved worker" if not allow`); err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.Put(ctx, "owner-c/key/x", secret, nil, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.SetPolicy(ctx, "resource/owner-c/key/x", "package kura.release\nallow := false\ndeny contains \"owner-c releases nothing\""); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	good := issueSim(t, f.issuer, 1, true, now)
	otherIss, _ := token.NewIssuer(token.IssuerConfig{Key: mustKey(t)})
	untrusted := issueSim(t, otherIss, 1, true, now)
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + parts[1][:len(parts[1])-4] + "AAAA." + parts[2]

	tests := []struct {
		name, tok, path string
		want            error
	}{
		{"no token", "", secretPath, ErrUnauthenticated},
		{"untrusted verifier", untrusted, secretPath, ErrUnauthenticated},
		{"tampered token", tampered, secretPath, ErrUnauthenticated},
		{"garbage token", "not-a-token", secretPath, ErrUnauthenticated},
		{"wrong measurement", good, "owner-b/key/x", ErrDenied},
		{"policy deny", good, "owner-c/key/x", ErrDenied},
		{"unknown resource", good, "owner-a/key/none", ErrNotFound},
		{"bad path", good, "owner-a/key/bad%20tag", ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := auditCount(t, f)
			err := bearer(t, f, tt.tok, tt.path)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if tt.want != ErrBadRequest && auditCount(t, f) != before+1 {
				t.Errorf("refusal not recorded in the audit trail")
			}
		})
	}

	t.Run("expired token", func(t *testing.T) {
		// Signed by the trusted verifier an hour ago, valid for 5 minutes.
		past, _ := token.NewIssuer(token.IssuerConfig{Key: f.vkey, Now: func() time.Time { return now.Add(-time.Hour) }})
		old := issueSim(t, past, 1, true, now.Add(-time.Hour))
		if err := bearer(t, f, old, secretPath); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "expired") {
			t.Errorf("error = %v, want expired token refused", err)
		}
	})

	t.Run("stale token", func(t *testing.T) {
		// Unexpired, but older than the broker's freshness limit.
		long, _ := token.NewIssuer(token.IssuerConfig{Key: f.vkey, TTL: 24 * time.Hour, Now: func() time.Time { return now.Add(-time.Hour) }})
		old := issueSim(t, long, 1, true, now.Add(-time.Hour))
		if err := bearer(t, f, old, secretPath); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "attest again") {
			t.Errorf("error = %v, want stale token refused", err)
		}
	})

	t.Run("sim outside dev mode", func(t *testing.T) {
		strict := newFixture(t, fixtureOpts{dev: false})
		if _, err := strict.admin.Put(ctx, secretPath, secret, nil, ""); err != nil {
			t.Fatal(err)
		}
		c := &Client{BaseURL: strict.srv.URL, HTTP: strict.srv.Client()}
		s, err := c.Attest(ctx, simAttester(t, 1), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Resource(ctx, secretPath); !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "INSECURE") {
			t.Errorf("error = %v, want sim refused outside dev mode", err)
		}
	})

	t.Run("replayed nonce", func(t *testing.T) {
		// Evidence made for one session is refused by another.
		c := &Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}
		a := &replayingAttester{inner: simAttester(t, 1)}
		if _, err := c.Attest(ctx, a, nil); err != nil {
			t.Fatal(err)
		}
		a.replay = true
		if _, err := c.Attest(ctx, a, nil); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("replayed evidence: %v, want 401", err)
		}
	})
}

// replayingAttester returns its first bundle again when replay is set.
type replayingAttester struct {
	inner  attestation.Attester
	replay bool
	last   *attestation.Bundle
}

func (r *replayingAttester) TEE() attestation.TEE { return r.inner.TEE() }

func (r *replayingAttester) Attest(ctx context.Context, rd [64]byte) (*attestation.Bundle, error) {
	if r.replay && r.last != nil {
		b := *r.last
		return &b, nil
	}
	b, err := r.inner.Attest(ctx, rd)
	r.last = b
	return b, err
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func auditCount(t *testing.T, f *fixture) int {
	recs, err := f.store.ListAudit(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// alternate sends each request to the next of hosts in turn, as a load
// balancer without sticky sessions would.
type alternate struct {
	hosts []string
	n     int
}

func (a *alternate) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Host = a.hosts[a.n%len(a.hosts)]
	a.n++
	return http.DefaultTransport.RoundTrip(r)
}

// TestReplicas: two brokers over one database serve one client whose every
// request goes to the other broker: auth on one, attest on the other, fetch
// from both; a session's challenge, spent by a failed attestation on one,
// is spent for both; an owner request accepted by one is a replay at the
// other; a verifier nonce issued by one is good, once, at the other.
func TestReplicas(t *testing.T) {
	ctx := context.Background()
	a := newFixture(t, fixtureOpts{dev: true, shared: true})
	b := newFixture(t, fixtureOpts{dev: true, replicaOf: a})
	if _, err := a.admin.Put(ctx, secretPath, secret, nil, ""); err != nil {
		t.Fatal(err)
	}
	hosts := func() *http.Client {
		return &http.Client{Transport: &alternate{hosts: []string{a.srv.Listener.Addr().String(), b.srv.Listener.Addr().String()}}}
	}
	c := &Client{BaseURL: a.srv.URL, HTTP: hosts()}
	s, err := c.Attest(ctx, simAttester(t, 1), nil)
	if err != nil {
		t.Fatalf("auth on a, attest on b: %v", err)
	}
	for range 2 { // a, then b
		if got, err := s.Resource(ctx, secretPath); err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("fetch: %q, %v", got, err)
		}
	}

	// A new version put through a is released by a at once, and by b, which
	// cached the old one, within CacheTTL; a deletion through a is refused
	// by a at once.
	rotated := []byte("the rotated key")
	if _, err := a.admin.Put(ctx, secretPath, rotated, nil, ""); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Resource(ctx, secretPath); err != nil || !bytes.Equal(got, rotated) { // a
		t.Fatalf("fetch from the replica that stored a new version: %q, %v", got, err)
	}
	time.Sleep(CacheTTL)
	if got, err := s.Resource(ctx, secretPath); err != nil || !bytes.Equal(got, rotated) { // b
		t.Fatalf("fetch from the other replica after CacheTTL: %q, %v", got, err)
	}
	if _, err := a.admin.Delete(ctx, secretPath); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resource(ctx, secretPath); !errors.Is(err, ErrNotFound) { // a
		t.Fatalf("fetch of a deleted resource from the replica that deleted it: %v", err)
	}

	// A failed attestation on b spends the challenge a issued, for both.
	g, _ := newCoCoGuest(t, a, "0.4.0", "sample")
	g.s.hc.Transport = &alternate{hosts: []string{b.srv.Listener.Addr().String(), a.srv.Listener.Addr().String()}}
	otherNonce := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	if st := g.attest(g.nonce, g.jwkJSON, g.evidence(g.reportData(g.version, otherNonce, g.jwkJSON))); st != http.StatusUnauthorized {
		t.Fatalf("evidence bound to another nonce, at b: %d, want 401", st)
	}
	if st := g.attest(g.nonce, g.jwkJSON, g.evidence(g.reportData(g.version, g.nonce, g.jwkJSON))); st != http.StatusUnauthorized {
		t.Errorf("good evidence after the challenge was spent, at a: %d, want 401", st)
	}

	// The owner's request, accepted by a, is refused by b.
	var replayed int
	owner := &AdminClient{BaseURL: a.srv.URL, Key: a.admin.Key, HTTP: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		body, _ := io.ReadAll(r.Body)
		send := func(host string) (*http.Response, error) {
			c := r.Clone(r.Context())
			c.URL.Host, c.Body = host, io.NopCloser(bytes.NewReader(body))
			return http.DefaultTransport.RoundTrip(c)
		}
		resp, err := send(a.srv.Listener.Addr().String())
		if err != nil {
			return nil, err
		}
		again, err := send(b.srv.Listener.Addr().String())
		if err != nil {
			return nil, err
		}
		again.Body.Close()
		replayed = again.StatusCode
		return resp, nil
	})}}
	if _, err := owner.Put(ctx, "owner-a/key/two", secret, nil, ""); err != nil {
		t.Fatal(err)
	}
	if replayed != http.StatusUnauthorized {
		t.Errorf("owner request replayed at the other replica: %d, want 401", replayed)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
