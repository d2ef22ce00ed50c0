package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/verifier"
)

// postgresSchema returns a URL of the test server (KURA_TEST_POSTGRES_URL)
// whose search_path is a new schema, dropped at the end of the test.
// Without a server the test skips, except in CI, which always has one.
func postgresSchema(t *testing.T) string {
	t.Helper()
	base := os.Getenv("KURA_TEST_POSTGRES_URL")
	if base == "" {
		const msg = "KURA_TEST_POSTGRES_URL is not set; start a server with: eval \"$(sudo .ci/postgres.sh)\""
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: PostgreSQL tests must run)")
		}
		t.Skip(msg)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := pgx.Identifier{"kura_replicas_" + hex.EncodeToString(b)}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+name.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
		conn.Close(ctx)
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + name[0]
}

// alternate sends each request to the next of hosts in turn, as a load
// balancer without sticky sessions would, and records where each went.
type alternate struct {
	hosts []string
	mu    sync.Mutex
	n     int
	sent  []string // "METHOD path -> host"
}

func (a *alternate) RoundTrip(r *http.Request) (*http.Response, error) {
	a.mu.Lock()
	host := a.hosts[a.n%len(a.hosts)]
	a.n++
	a.sent = append(a.sent, r.Method+" "+r.URL.Path+" -> "+host)
	a.mu.Unlock()
	r = r.Clone(r.Context())
	r.URL.Host = host
	return http.DefaultTransport.RoundTrip(r)
}

// replay sends every request to first and then, unchanged, to second,
// answering with first's response and keeping second's status.
type replay struct {
	first, second string
	statuses      []int
}

func (p *replay) RoundTrip(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	send := func(host string) (*http.Response, error) {
		c := r.Clone(r.Context())
		c.URL.Host = host
		c.Body = io.NopCloser(bytes.NewReader(body))
		return http.DefaultTransport.RoundTrip(c)
	}
	resp, err := send(p.first)
	if err != nil {
		return nil, err
	}
	again, err := send(p.second)
	if err != nil {
		return nil, err
	}
	again.Body.Close()
	p.statuses = append(p.statuses, again.StatusCode)
	return resp, nil
}

// TestReplicasOverPostgres runs two `kura serve` replicas over one
// PostgreSQL database, as docs/operations.md describes, and sends each step
// of a client's work to another replica than the step before: no sticky
// sessions. A verifier nonce from one replica is accepted by the other,
// once, and by a `kura verifier serve` on the same database; a KBS session opened on one attests on the other and fetches from
// both; an owner request accepted by one is refused as a replay by the
// other.
func TestReplicasOverPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	db := postgresSchema(t)
	ctx := context.Background()
	dir := t.TempDir()
	keyFile, admins := adminSetup(t, dir)
	replica := func(name string) (string, func()) {
		srv, base := startKura(t, "serve", "--dev", "--offline", "--roles", "verifier,kbs", "--tls-self-signed=false",
			"--addr", "127.0.0.1:0", "--data", filepath.Join(dir, name), "--store", db,
			"--kek-file", filepath.Join(dir, "kek"), "--key", filepath.Join(dir, "verifier-key.pem"),
			"--admin-keys", admins, "--log-level", "warn")
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		return u.Host, func() { stop(t, srv) }
	}
	a, stopA := replica("a")
	defer stopA()
	b, stopB := replica("b")
	defer stopB()

	// An owner request accepted by a is a replay at b.
	priv, err := readAdminKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	rp := &replay{first: a, second: b}
	owner := &keybroker.AdminClient{BaseURL: "http://" + a, Key: priv, HTTP: &http.Client{Transport: rp}}
	secret := []byte("one secret, two replicas")
	if _, err := owner.Put(ctx, "app/key/shared", secret, nil, ""); err != nil {
		t.Fatalf("put on replica a: %v", err)
	}
	if len(rp.statuses) != 1 || rp.statuses[0] != http.StatusUnauthorized {
		t.Errorf("the same owner request replayed at replica b: status %v, want 401", rp.statuses)
	}

	// A KBS session moves between replicas at every request.
	lb := &alternate{hosts: []string{a, b}}
	simA, err := sim.NewAttester(sim.AttesterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	kc := &keybroker.Client{BaseURL: "http://" + a, HTTP: &http.Client{Transport: lb}}
	s, err := kc.Attest(ctx, simA, nil)
	if err != nil {
		t.Fatalf("auth and attest on different replicas: %v (%v)", err, lb.sent)
	}
	for range 2 {
		got, err := s.Resource(ctx, "app/key/shared")
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("fetch: %q, %v (%v)", got, err, lb.sent)
		}
	}
	want := []string{"/kbs/v0/auth -> " + a, "/kbs/v0/attest -> " + b, "/kbs/v0/resource/app/key/shared -> " + a, "/kbs/v0/resource/app/key/shared -> " + b}
	for i, w := range want {
		if i >= len(lb.sent) || !strings.HasSuffix(lb.sent[i], w) {
			t.Errorf("request %d went %v, want %s", i, lb.sent, w)
		}
	}

	// A verifier nonce from replica a is good at replica b, once.
	va := &verifier.Client{BaseURL: "http://" + a}
	vb := &verifier.Client{BaseURL: "http://" + b}
	n, err := va.Nonce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rd := attestation.RuntimeData{Nonce: n.Nonce}
	bundle, err := simA.Attest(ctx, rd.ReportData())
	if err != nil {
		t.Fatal(err)
	}
	bundle.RuntimeData = rd
	if _, err := vb.Verify(ctx, bundle); err != nil {
		t.Fatalf("replica b refused replica a's nonce: %v", err)
	}
	if _, err := va.Verify(ctx, bundle); !errors.Is(err, attestation.ErrNonce) {
		t.Errorf("the nonce replayed at replica a: %v, want invalid-nonce", err)
	}

	// So does a lone verifier (`kura verifier serve --store`) on the same
	// database.
	vsrv, vbase := startKura(t, "verifier", "serve", "--dev", "--offline", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "v"),
		"--store", db, "--key", filepath.Join(dir, "verifier-key.pem"), "--log-level", "warn")
	defer stop(t, vsrv)
	vc := &verifier.Client{BaseURL: vbase}
	if n, err = va.Nonce(ctx); err != nil {
		t.Fatal(err)
	}
	rd = attestation.RuntimeData{Nonce: n.Nonce}
	if bundle, err = simA.Attest(ctx, rd.ReportData()); err != nil {
		t.Fatal(err)
	}
	bundle.RuntimeData = rd
	if _, err := vc.Verify(ctx, bundle); err != nil {
		t.Fatalf("kura verifier serve --store refused replica a's nonce: %v", err)
	}
}
