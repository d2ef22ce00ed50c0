package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/server"
	"github.com/kura-cc/kura/token"
)

// KBSServerConfig is one server process of `kura bench kbs`: the key broker
// as `kura kbs serve --dev` builds it, or the bare baseline.
type KBSServerConfig struct {
	// Dir is the data directory (the broker's state and keys).
	Dir string
	// AdminKeys is the owner-API authorized-keys file (the broker only).
	AdminKeys string
	// Bare serves the baseline instead of the broker: GET
	// /kbs/v0/resource/... that checks the Bearer token, as the broker
	// does, and answers a constant, with no policy, store, audit record or
	// encryption.
	Bare bool
	// JWKS is the URL of the verifier keys the bare baseline trusts (the
	// broker's own, GET /.well-known/jwks.json).
	JWKS string
	// CPUProfile, if set, is where the process writes its CPU profile when
	// it stops.
	CPUProfile string
	// Version names the build in the broker's tokens.
	Version string
}

// kbsReadyPrefix starts the line a server process prints once it listens.
const kbsReadyPrefix = "kbs bench server listening on "

// KBSServer serves one process of `kura bench kbs` on a loopback port
// until ctx ends or stdin closes (the bench that started it exited). It
// prints the line kbsReadyPrefix+URL to stdout once it listens and logs to
// stderr as `kura kbs serve` does (text, level info).
//
// The broker is built by server.New with the kbs role in dev mode, as
// `kura kbs serve --dev --data Dir --admin-keys AdminKeys` builds it, and
// served by web.Server over plain HTTP: every release verifies the Bearer
// EAR token, evaluates the release policy, records the decision durably in
// the SQLite store and encrypts the value to the token's TEE key.
func KBSServer(ctx context.Context, cfg KBSServerConfig, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, log, done, err := childServer(ctx, stdin, stderr, cfg.CPUProfile)
	if err != nil {
		return err
	}
	defer done()
	var (
		h           http.Handler
		closeServer func(context.Context) error
	)
	if cfg.Bare {
		if h, err = bareHandler(ctx, cfg.JWKS, log); err != nil {
			return err
		}
	} else {
		s, err := server.New(ctx, server.Config{
			DataDir: cfg.Dir, Roles: []server.Role{server.RoleKBS}, DevMode: true, Version: cfg.Version, Logger: log,
			Verification: server.Verification{DevMode: true},
			// One client address sends the whole load: lift the broker's
			// per-client limit (it is still consulted on every request).
			KBS: server.KBS{AdminKeysFile: cfg.AdminKeys, RateLimit: 1e9},
		})
		if err != nil {
			return err
		}
		h, closeServer = s.Handler(), s.Close
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%shttp://%s\n", kbsReadyPrefix, l.Addr())
	err = (&web.Server{Handler: h, Logger: log, Drain: 5 * time.Second}).Serve(ctx, l)
	if closeServer != nil {
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer ccancel()
		err = errors.Join(err, closeServer(cctx))
	}
	return err
}

// bareHandler is the baseline: the resource route authenticates the
// request as the broker does — the Bearer EAR token's signature checked
// against the verifier's keys once, then remembered by its digest until it
// expires — and answers a constant.
func bareHandler(ctx context.Context, jwksURL string, log *slog.Logger) (http.Handler, error) {
	keys, err := token.FetchJWKS(ctx, http.DefaultClient, jwksURL)
	if err != nil {
		return nil, fmt.Errorf("bare baseline: %w", err)
	}
	v, err := token.NewVerifier(token.VerifierConfig{Keys: keys})
	if err != nil {
		return nil, err
	}
	var (
		mu       sync.Mutex
		verified = map[[sha256.Size]byte]time.Time{}
	)
	check := func(ctx context.Context, raw []byte) error {
		sum := sha256.Sum256(raw)
		mu.Lock()
		exp, ok := verified[sum]
		mu.Unlock()
		if !ok {
			c, err := v.Verify(ctx, raw)
			if err != nil {
				return err
			}
			exp = c.Expiry
			mu.Lock()
			if len(verified) >= 10000 {
				clear(verified)
			}
			verified[sum] = exp
			mu.Unlock()
		}
		if time.Now().After(exp) {
			return errors.New("token expired")
		}
		return nil
	}
	body := []byte(`{"ok":true}`)
	mux := http.NewServeMux()
	mux.Handle("GET /kbs/v0/resource/{repo}/{type}/{tag}", web.Handle(log, nil, func(w http.ResponseWriter, r *http.Request) error {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return web.NewProblem(http.StatusUnauthorized, "unauthenticated", "no Bearer token", nil)
		}
		if err := check(r.Context(), []byte(strings.TrimSpace(tok))); err != nil {
			return web.NewProblem(http.StatusUnauthorized, "unauthenticated", "bad token", err)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, err := w.Write(body)
		return err
	}))
	return web.Instrument(log, mux, nil), nil
}
