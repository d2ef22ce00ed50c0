package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/token"
)

type serveFlags struct {
	verifyFlags
	addr  string
	key   string
	drain time.Duration
}

func (f *serveFlags) register(cmd *cobra.Command, g *globals) {
	fs := cmd.Flags()
	f.verifyFlags.register(fs, g)
	fs.StringVar(&f.addr, "addr", g.envDefault("KURA_ADDR", "127.0.0.1:8080"), "listen address HOST:PORT (KURA_ADDR)")
	fs.StringVar(&f.key, "key", g.envDefault("KURA_VERIFIER_KEY", ""), "token signing key, PEM ECDSA P-256/P-384; created if missing; empty: ephemeral (KURA_VERIFIER_KEY)")
	fs.DurationVar(&f.drain, "drain", 10*time.Second, "how long graceful shutdown waits for in-flight requests")
}

func newVerifierCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "verifier", Short: "Run the attestation verifier service"}
	f := &serveFlags{}
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve the verifier API: nonce, verify (bundle -> EAR token), JWKS",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runServe(cmd.Context(), g, f, cmd) },
	}
	f.register(serve, g)
	cmd.AddCommand(serve)
	return cmd
}

func newServeCmd(g *globals) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the kura platform server (today: the verifier) behind one listener",
		Long: `Run the kura platform server. Today it serves the attestation verifier; the key broker,
coordinator and audit log join it as they land. --dev turns on dev mode: the INSECURE simulated
TEE is accepted and every response involving it says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd.Context(), g, f, cmd) },
	}
	f.register(cmd, g)
	return cmd
}

// newMux builds the platform's routes.
func newMux(ctx context.Context, g *globals, f *serveFlags) (*http.ServeMux, error) {
	log, err := g.logger()
	if err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(f.key, log)
	if err != nil {
		return nil, err
	}
	build := "kura " + Version
	if f.dev {
		build += " (dev mode: INSECURE sim TEE accepted)"
	}
	iss, err := token.NewIssuer(token.IssuerConfig{Key: key, Build: build})
	if err != nil {
		return nil, err
	}
	svc, err := f.service(ctx, log, iss)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	svc.Register(mux, log)
	mux.Handle("GET /healthz", web.Handle(log, nil, func(w http.ResponseWriter, r *http.Request) error {
		return web.WriteJSON(w, http.StatusOK, map[string]any{"status": "ok", "dev_mode": f.dev})
	}))
	return mux, nil
}

func runServe(ctx context.Context, g *globals, f *serveFlags, cmd *cobra.Command) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	mux, err := newMux(ctx, g, f)
	if err != nil {
		return err
	}
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
