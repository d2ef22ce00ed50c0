package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/token"
)

// Roles a server runs.
const (
	roleVerifier = 1 << iota
	roleKBS
	roleAll = roleVerifier | roleKBS
)

type serveFlags struct {
	verifyFlags
	kbs   kbsFlags
	addr  string
	key   string
	data  string
	drain time.Duration
	roles int
}

func (f *serveFlags) register(cmd *cobra.Command, g *globals) {
	fs := cmd.Flags()
	f.verifyFlags.register(fs, g)
	fs.StringVar(&f.addr, "addr", g.envDefault("KURA_ADDR", "127.0.0.1:8080"), "listen address HOST:PORT (KURA_ADDR)")
	fs.StringVar(&f.data, "data", g.envDefault("KURA_DATA", defaultDataDir(g)), "data directory for state and keys (KURA_DATA)")
	fs.StringVar(&f.key, "key", g.envDefault("KURA_VERIFIER_KEY", ""), "token signing key, PEM ECDSA P-256/P-384, created if missing (KURA_VERIFIER_KEY); default <data>/verifier-key.pem")
	fs.DurationVar(&f.drain, "drain", 10*time.Second, "how long graceful shutdown waits for in-flight requests")
	if cmd.Name() != "serve" || cmd.Parent() == nil || cmd.Parent().Name() != "verifier" {
		f.kbs.register(cmd, g)
	}
}

func defaultDataDir(g *globals) string {
	if d := g.env.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "kura")
	}
	if h := g.env.Getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "kura")
	}
	return "kura-data"
}

func newVerifierCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "verifier", Short: "Run the attestation verifier service"}
	f := &serveFlags{roles: roleVerifier}
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve the verifier API: nonce, verify (bundle -> EAR token), JWKS",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runServe(cmd.Context(), g, f, cmd) },
	}
	cmd.AddCommand(serve)
	f.register(serve, g)
	return cmd
}

func newServeCmd(g *globals) *cobra.Command {
	f := &serveFlags{roles: roleAll}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the kura platform server: verifier and key broker behind one listener",
		Long: `Run the kura platform server: the attestation verifier and the key broker (KBS protocol and
owner API) behind one listener; the coordinator and audit log join as they land. --dev turns on dev
mode: the INSECURE simulated TEE is accepted and every response involving it says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd.Context(), g, f, cmd) },
	}
	f.register(cmd, g)
	return cmd
}

// newMux builds the routes of the roles f selects; close releases state.
func newMux(ctx context.Context, g *globals, f *serveFlags) (*http.ServeMux, func(), error) {
	log, err := g.logger()
	if err != nil {
		return nil, nil, err
	}
	return newMuxLogger(ctx, f, log)
}

func newMuxLogger(ctx context.Context, f *serveFlags, log *slog.Logger) (*http.ServeMux, func(), error) {
	keyPath := f.key
	if keyPath == "" {
		keyPath = filepath.Join(f.data, "verifier-key.pem")
	}
	key, err := loadOrCreateKey(keyPath, log)
	if err != nil {
		return nil, nil, err
	}
	build := "kura " + Version
	if f.dev {
		build += " (dev mode: INSECURE sim TEE accepted)"
	}
	iss, err := token.NewIssuer(token.IssuerConfig{Key: key, Build: build})
	if err != nil {
		return nil, nil, err
	}
	svc, err := f.service(ctx, log, iss)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	closeFn := func() {}
	if f.roles&roleVerifier != 0 {
		svc.Register(mux, log)
	}
	if f.roles&roleKBS != 0 {
		b, admins, closeStore, err := f.kbs.newBroker(ctx, f.data, f.dev, svc, iss, log)
		if err != nil {
			return nil, nil, err
		}
		b.Register(mux, admins)
		closeFn = closeStore
	}
	mux.Handle("GET /healthz", web.Handle(log, nil, func(w http.ResponseWriter, r *http.Request) error {
		return web.WriteJSON(w, http.StatusOK, map[string]any{"status": "ok", "dev_mode": f.dev})
	}))
	return mux, closeFn, nil
}

func runServe(ctx context.Context, g *globals, f *serveFlags, cmd *cobra.Command) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	mux, closeFn, err := newMux(ctx, g, f)
	if err != nil {
		return err
	}
	defer closeFn()
	l, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if f.dev {
		log.Warn("dev mode: the INSECURE simulated TEE is accepted; never use dev mode in production")
	}
	log.Info("kura listening", "addr", l.Addr().String(), "dev_mode", f.dev)
	fmt.Fprintf(cmd.OutOrStdout(), "kura listening on http://%s\n", l.Addr())
	return web.Serve(ctx, l, mux, log, f.drain)
}
