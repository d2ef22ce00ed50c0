package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/internal/web"
)

// Roles a server runs, as bits: the single-role commands (`verifier
// serve`, `kbs serve`) and the demo choose them this way; `kura serve`
// chooses by name with --roles (serveRoles lists them).
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
	// roles is the command's role set; roleAll means every registered role.
	roles int
	// roleNames, from --roles, overrides roles when set.
	roleNames []string

	configFile    string
	printConfig   bool
	tlsCert       string
	tlsKey        string
	selfSigned    bool
	insecureHTTP  bool
	metricsAddr   string
	shutdownDelay time.Duration
	kbsRateLimit  float64
	blob          blobFlags
	log           logFlags
}

func (f *serveFlags) register(cmd *cobra.Command, g *globals) {
	fs := cmd.Flags()
	f.verifyFlags.register(fs, g)
	fs.StringVar(&f.addr, "addr", g.envDefault("KURA_ADDR", "127.0.0.1:8080"), "listen address HOST:PORT (KURA_ADDR)")
	fs.StringVar(&f.data, "data", g.envDefault("KURA_DATA", defaultDataDir(g)), "data directory for state and keys (KURA_DATA)")
	fs.StringVar(&f.key, "key", g.envDefault("KURA_VERIFIER_KEY", ""), "token signing key, PEM ECDSA P-256/P-384, created if missing (KURA_VERIFIER_KEY); default <data>/verifier-key.pem")
	fs.DurationVar(&f.drain, "drain", 10*time.Second, "how long graceful shutdown waits for in-flight requests")
	fs.DurationVar(&f.shutdownDelay, "shutdown-delay", 0, "on shutdown, keep serving this long with /readyz answering 503 before closing the listener (give load balancers time to notice)")
	fs.StringVar(&f.configFile, "config", "", "YAML configuration file: keys are these flags' names (KURA_CONFIG); flags and KURA_* variables override it")
	fs.BoolVar(&f.printConfig, "print-config", false, "print the effective configuration as YAML, with where each value came from, and exit (secrets omitted)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (chain) file")
	fs.StringVar(&f.tlsKey, "tls-key", "", "the PEM private key file of --tls-cert")
	fs.BoolVar(&f.selfSigned, "tls-self-signed", false, "serve HTTPS with a self-signed certificate kept in <data>/tls (default: on with --dev for 'kura serve'); clients pin it with --ca")
	fs.BoolVar(&f.insecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback address (only behind a TLS-terminating proxy on a trusted network)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve /metrics (and /healthz, /readyz) on this separate address instead of the main listener")
	if cmd.Name() != "serve" || cmd.Parent() == nil || cmd.Parent().Name() != "verifier" {
		f.kbs.register(cmd, g)
		fs.Float64Var(&f.kbsRateLimit, "kbs-rate-limit", 200, "key broker requests per second allowed per client address (burst 2x)")
	} else {
		fs.StringVar(&f.kbs.store, "store", g.envDefault("KURA_STORE", ""), "keep issued nonces in this store, shared by replicas: a SQLite file path or a postgres:// URL (KURA_STORE); default in memory")
	}
	if f.roles == roleAll {
		fs.StringSliceVar(&f.roleNames, "roles", nil, "roles to run, comma-separated: "+strings.Join(roleNames(serveRoles()), ", ")+" (default all)")
		f.blob.register(fs)
		f.log.register(fs)
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
		Short: "Run the kura platform server: every role, or those --roles names, behind one listener",
		Long: `Run the kura platform server: the attestation verifier and the key broker (KBS protocol and
owner API) behind one listener, or only the roles --roles names; the coordinator and audit log join
as they land. Configuration comes from flags, KURA_* variables (KURA_<FLAG_NAME>, e.g. KURA_TLS_CERT)
and a YAML file (--config), in that order of precedence; --print-config shows the result.

Besides the roles' APIs it serves GET /healthz (liveness), GET /readyz (readiness: 503 with reasons
while a store is unreachable or the server drains) and GET /metrics (Prometheus; --metrics-addr
moves it to a separate listener).

TLS: --tls-cert/--tls-key; with --dev and no certificate, a self-signed one kept in <data>/tls (its
SHA-256 fingerprint is logged; clients pin it with --ca). Without TLS, kura serves plain HTTP only
on loopback addresses unless --insecure-http.

--dev turns on dev mode: the INSECURE simulated TEE is accepted and every response involving it
says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd.Context(), g, f, cmd) },
	}
	f.register(cmd, g)
	return cmd
}

// newMux builds the handler of the roles f selects; close releases state.
func newMux(ctx context.Context, g *globals, f *serveFlags) (http.Handler, func(), error) {
	log, err := g.logger()
	if err != nil {
		return nil, nil, err
	}
	return newMuxLogger(ctx, f, log)
}

// newMuxLogger builds the handler of the roles f selects, with /metrics on
// it; close releases state.
func newMuxLogger(ctx context.Context, f *serveFlags, log *slog.Logger) (http.Handler, func(), error) {
	s, err := newServer(ctx, f, log)
	if err != nil {
		return nil, nil, err
	}
	return s.handler, s.close, nil
}

func runServe(ctx context.Context, g *globals, f *serveFlags, cmd *cobra.Command) error {
	cfg, err := applyConfig(cmd, g)
	if err != nil {
		return err
	}
	if f.printConfig {
		return cfg.print(cmd.OutOrStdout())
	}
	base, err := g.logger()
	if err != nil {
		return err
	}
	log := slog.New(web.ContextHandler(base.Handler()))
	if cfg.file != "" {
		log.Info("configuration file read", "path", cfg.file)
	}
	if err := f.blob.check(); err != nil {
		return err
	}
	tlsCfg, err := f.serverTLS(cmd, log)
	if err != nil {
		return err
	}
	l, err := f.listen(f.addr, "--addr", tlsCfg)
	if err != nil {
		return err
	}
	var ml net.Listener
	if f.metricsAddr != "" {
		if ml, err = f.listen(f.metricsAddr, "--metrics-addr", tlsCfg); err != nil {
			l.Close()
			return err
		}
	}
	s, err := newServer(ctx, f, log)
	if err != nil {
		l.Close()
		if ml != nil {
			ml.Close()
		}
		return err
	}
	defer s.close()
	if f.dev {
		log.Warn("dev mode: the INSECURE simulated TEE is accepted; never use dev mode in production")
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	log.Info("kura listening", "addr", l.Addr().String(), "tls", tlsCfg != nil, "roles", strings.Join(s.roles, ","), "dev_mode", f.dev)
	fmt.Fprintf(cmd.OutOrStdout(), "kura listening on %s://%s\n", scheme, l.Addr())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	drainNow := func() { s.ready.SetDraining("shutting down") }
	main := &web.Server{Handler: s.handler, Logger: log, TLS: tlsCfg, Drain: f.drain, ShutdownDelay: f.shutdownDelay, OnShutdown: drainNow}
	if ml == nil {
		return main.Serve(ctx, l)
	}
	log.Info("metrics listening", "addr", ml.Addr().String())
	fmt.Fprintf(cmd.OutOrStdout(), "kura metrics on %s://%s/metrics\n", scheme, ml.Addr())
	aux := &web.Server{Handler: s.metricsHandler, Logger: log, TLS: tlsCfg, Drain: f.drain, ShutdownDelay: f.shutdownDelay, OnShutdown: drainNow}
	auxErr := make(chan error, 1)
	go func() {
		err := aux.Serve(ctx, ml)
		cancel() // one listener failing stops both
		auxErr <- err
	}()
	err = main.Serve(ctx, l)
	cancel()
	return errors.Join(err, <-auxErr)
}
