package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/server"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/verifier"
)

// The verifier benchmarks compare one attestation round trip (a nonce,
// sim evidence bound to it, the verification) in process with the same
// over HTTPS (HTTP/2, as Go clients speak it) through a server's whole
// handler chain, the verifier role in dev mode with nonces in memory, both
// logging at info as `kura serve` does. Client and server share the
// process: ns/op counts both sides' work. kura bench verifier measures the
// same at load, from separate processes.

func benchLogger() *slog.Logger {
	return slog.New(web.ContextHandler(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})))
}

func BenchmarkVerifierInProcess(b *testing.B) {
	ctx := context.Background()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	iss, err := token.NewIssuer(token.IssuerConfig{Key: key, Build: "kura bench"})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := server.Verification{DevMode: true}.Service(ctx, benchLogger(), iss, nil)
	if err != nil {
		b.Fatal(err)
	}
	att, err := sim.NewAttester(sim.AttesterConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		n, _, err := svc.Nonce(ctx)
		if err != nil {
			b.Fatal(err)
		}
		rd := attestation.RuntimeData{Nonce: n}
		bb, err := att.Attest(ctx, rd.ReportData())
		if err != nil {
			b.Fatal(err)
		}
		bb.RuntimeData = rd
		if rep, err := svc.Verify(ctx, bb, verifier.Options{Freshness: verifier.IssuedNonce}); err != nil || len(rep.Token) == 0 {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifierHTTP(b *testing.B) {
	ctx := context.Background()
	s, err := server.New(ctx, server.Config{DataDir: b.TempDir(), Roles: []server.Role{server.RoleVerifier}, DevMode: true, Logger: benchLogger(), RateLimit: 1e9})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	c := &verifier.Client{BaseURL: srv.URL, HTTP: srv.Client()}
	att, err := sim.NewAttester(sim.AttesterConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if v, err := c.Attest(ctx, att, nil, nil); err != nil || v.Token == "" {
			b.Fatal(err)
		}
	}
}

// TestVerifierNonces: a server with the default SQLite store issues
// nonces it accepts once, which another server refuses.
func TestVerifierNonces(t *testing.T) {
	ctx := context.Background()
	newVerifier := func() *verifier.Client {
		dir := t.TempDir()
		s := newServer(t, server.Config{DataDir: dir, Store: dir + "/kbs.db", Roles: []server.Role{server.RoleVerifier}, DevMode: true})
		srv := httptest.NewServer(s.Handler())
		t.Cleanup(srv.Close)
		return &verifier.Client{BaseURL: srv.URL, HTTP: srv.Client()}
	}
	a, b := newVerifier(), newVerifier()
	att, err := sim.NewAttester(sim.AttesterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	bundle := func(c *verifier.Client) *attestation.Bundle {
		n, err := c.Nonce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rd := attestation.RuntimeData{Nonce: n.Nonce}
		bb, err := att.Attest(ctx, rd.ReportData())
		if err != nil {
			t.Fatal(err)
		}
		bb.RuntimeData = rd
		return bb
	}
	used := bundle(a)
	if _, err := a.Verify(ctx, used); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(ctx, used); !errors.Is(err, attestation.ErrNonce) {
		t.Errorf("replayed nonce: %v, want ErrNonce", err)
	}
	if _, err := b.Verify(ctx, bundle(a)); !errors.Is(err, attestation.ErrNonce) {
		t.Errorf("another server's nonce: %v, want ErrNonce", err)
	}
}
