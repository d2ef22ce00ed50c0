package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/kura-cc/kura/internal/keyfile"
	"github.com/kura-cc/kura/kek"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/store/postgres"
	"github.com/kura-cc/kura/store/sqlite"
	"github.com/kura-cc/kura/token"
)

// isPostgres reports whether a store specification (Config.Store) is a
// postgres:// URL: the store replicas share.
func isPostgres(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}

// OpenStore opens the platform's store named by spec: a postgres:// URL,
// or else a SQLite file path (its directory created 0700).
func OpenStore(ctx context.Context, spec string, log *slog.Logger) (store.Store, error) {
	if isPostgres(spec) {
		return postgres.New(ctx, postgres.Config{URL: spec, Logger: log})
	}
	if err := os.MkdirAll(filepath.Dir(spec), 0o700); err != nil {
		return nil, err
	}
	return sqlite.New(ctx, sqlite.Config{Path: spec, Logger: log})
}

// OpenKEK loads the key-encryption key at path, or creates it (0600) when
// missing. With passphraseFile the KEK is derived with Argon2id from the
// passphrase in that file and path keeps the parameters.
//
// Each file must be one that group and others can neither read nor write:
// one they can is refused (the error wraps keyfile.ErrInsecure and names the
// chmod to run), and the refusal is logged.
func OpenKEK(path, passphraseFile string, log *slog.Logger) (kek.KEK, error) {
	if passphraseFile != "" {
		data, err := keyfile.ReadSecret(passphraseFile)
		if errors.Is(err, keyfile.ErrInsecure) {
			return nil, refuseKeyFile(log, "KEK passphrase file", passphraseFile, err)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: KEK passphrase file: %w", ErrConfig, err)
		}
		defer clear(data)
		pass := bytes.TrimRight(data, "\r\n")
		k, err := kek.OpenPassphraseFile(path, pass)
		if errors.Is(err, os.ErrNotExist) {
			log.Info("creating passphrase KEK parameters", "path", path)
			return kek.CreatePassphraseFile(path, pass, kek.DefaultArgon2Params())
		}
		if err != nil {
			return nil, refuseKeyFile(log, "KEK parameters file", path, err)
		}
		return k, nil
	}
	k, err := kek.OpenFile(path)
	if errors.Is(err, os.ErrNotExist) {
		log.Info("creating key-encryption key", "path", path)
		return kek.GenerateFile(path)
	}
	if err != nil {
		return nil, refuseKeyFile(log, "KEK file", path, err)
	}
	return k, nil
}

// refuseKeyFile logs the refusal of a key file that others can reach, with
// its reason, and returns err with what the file is; other errors are
// returned as they are.
func refuseKeyFile(log *slog.Logger, what, path string, err error) error {
	logRefusal(log, what, path, err)
	return fmt.Errorf("%s: %w", what, err)
}

// logRefusal logs the refusal of a key file that others can reach.
func logRefusal(log *slog.Logger, what, path string, err error) {
	if errors.Is(err, keyfile.ErrInsecure) {
		log.Error("key file refused: group or others can reach it", "file", what, "path", path, "reason", err)
	}
}

// brokerHooks connect the key broker to the roles built after it: audit
// sinks and policy-change recorders the log role adds, and the prover of
// logged decisions. They are set while roles are built, before serving, and
// never after.
type brokerHooks struct {
	store   store.Store
	sinks   []keybroker.AuditSink
	onPol   []func(context.Context, *keybroker.PolicyChange) ([]byte, error)
	proveFn func(ctx context.Context, seq int64) ([]byte, error)
}

// Record hands a decision to every sink in turn; the first error fails the
// decision (a release that cannot be logged does not happen).
func (h *brokerHooks) Record(ctx context.Context, rec *store.AuditRecord) error {
	for _, s := range h.sinks {
		if err := s.Record(ctx, rec); err != nil {
			return err
		}
	}
	return nil
}

// policyChanged tells every recorder of a stored policy version and returns
// the last inclusion proof one gave.
func (h *brokerHooks) policyChanged(ctx context.Context, c *keybroker.PolicyChange) (proof []byte, err error) {
	for _, fn := range h.onPol {
		p, err := fn(ctx, c)
		if err != nil {
			return nil, err
		}
		if p != nil {
			proof = p
		}
	}
	return proof, nil
}

func (h *brokerHooks) prove(ctx context.Context, seq int64) ([]byte, error) {
	if h.proveFn == nil {
		return nil, errors.New("this server runs no log role")
	}
	return h.proveFn(ctx, seq)
}

// buildKBS builds the key broker over the store and mounts the KBS
// protocol and the owner API.
func (b *build) buildKBS(ctx context.Context) error {
	cfg := b.cfg.KBS
	key, err := OpenKEK(b.path(cfg.KEKFile, "kek"), cfg.KEKPassphraseFile, b.log)
	if err != nil {
		return err
	}
	ring, err := kek.NewKeyring(key)
	if err != nil {
		return err
	}
	tokens, err := b.trustedKeys(ctx)
	if err != nil {
		return err
	}
	var admins *keybroker.Admins
	if cfg.AdminKeysFile != "" {
		// A list of the keys that may write secrets and policies: refused
		// when others can write it.
		if err := keyfile.CheckTrusted(cfg.AdminKeysFile); errors.Is(err, keyfile.ErrInsecure) {
			return refuseKeyFile(b.log, "admin keys file", cfg.AdminKeysFile, err)
		}
		if admins, err = keybroker.LoadAdmins(cfg.AdminKeysFile, nil); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	} else {
		b.log.Warn("admin API disabled: no admin keys configured")
	}
	h := &brokerHooks{store: b.state}
	broker, err := keybroker.New(keybroker.Config{
		Store: b.state, Ephemeral: b.state.Ephemeral(), Keys: ring, Tokens: tokens, Attest: b.metrics.Attester(b.verifier),
		DevMode: b.cfg.DevMode, Audit: b.metrics.AuditSink(h), ProveDecision: h.prove, OnPolicyChange: h.policyChanged,
		RateLimit: cfg.RateLimit, Compat: cfg.Compat, Logger: b.log,
	})
	if err != nil {
		return err
	}
	broker.Register(b.mux, admins)
	b.admins = admins
	if !slices.Contains(b.srv.roles, RoleVerifier) {
		// Every broker publishes its built-in verifier's keys, so that a
		// manifest can list that verifier by JWKS URL; with the verifier
		// role the verifier API serves them already.
		b.verifier.RegisterJWKS(b.mux, b.log)
	}
	b.broker = h
	return nil
}

// trustedKeys builds the set of verifier keys the broker trusts: the
// built-in verifier's, those at the TrustJWKS URLs and the pinned ones.
// Keys from URLs are fetched again when a token matches no known key, so a
// remote verifier's key rotation is followed without a restart.
// The key broker and the coordinator (for workers' registrations) share
// one set.
func (b *build) trustedKeys(ctx context.Context) (*token.Verifier, error) {
	if b.tokens != nil {
		return b.tokens, nil
	}
	set, err := b.keySet(ctx)
	if err != nil {
		return nil, err
	}
	cfg := token.VerifierConfig{Keys: set}
	if len(b.cfg.KBS.TrustJWKS) > 0 {
		cfg.Refresh = func(ctx context.Context) (jwk.Set, error) {
			ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			return b.keySet(ctx)
		}
	}
	b.tokens, err = token.NewVerifier(cfg)
	return b.tokens, err
}

func (b *build) keySet(ctx context.Context) (jwk.Set, error) {
	set := jwk.NewSet()
	add := func(s jwk.Set) error {
		for i := range s.Len() {
			key, _ := s.Key(i)
			if err := set.AddKey(key); err != nil {
				return err
			}
		}
		return nil
	}
	own, err := token.ParseJWKS(b.issuer.JWKS())
	if err != nil {
		return nil, fmt.Errorf("built-in verifier: %w", err)
	}
	if err := add(own); err != nil {
		return nil, err
	}
	for _, u := range b.cfg.KBS.TrustJWKS {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := token.FetchJWKS(ctx, b.cfg.KBS.HTTP, u)
		cancel()
		if err != nil {
			return nil, err
		}
		if err := add(s); err != nil {
			return nil, err
		}
	}
	if pinned := b.cfg.KBS.TrustKeys; pinned != nil {
		if err := add(pinned); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// pingStore checks the store answers: Ping when the backend has one, else
// the cheapest indexed read.
func pingStore(ctx context.Context, st store.Store) error {
	if p, ok := st.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	if _, err := st.ListAudit(ctx, math.MaxInt64, 1); err != nil {
		return fmt.Errorf("store unreachable: %w", err)
	}
	return nil
}

// RedactURL hides the password of a URL such as postgres://user:pw@host/db,
// for logs and messages.
func RedactURL(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return "(unparsable URL with credentials, omitted)"
		}
		return s
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
