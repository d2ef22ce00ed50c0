package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/auditlog/intake"
	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/server"
)

// serveFlags configure the serve commands (`serve`, `verifier serve`,
// `kbs serve`); config turns them into a server.Config.
type serveFlags struct {
	verifyFlags
	kbs   kbsFlags
	addr  string
	key   string
	data  string
	drain time.Duration
	// roles are the command's roles; nil means every role, and --roles
	// (roleNames) chooses among them.
	roles     []server.Role
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
	kbsCompat     string
	rateLimit     float64
	runLease      time.Duration
	maxDataset    int64
	blob          blobFlags
	log           logFlags
	agg           aggregatorFlags
	// withLog (`kbs serve --log`) adds the log role: an owner-run broker's
	// own transparency log.
	withLog bool
}

// platform reports whether f is `kura serve`, the command that runs every
// role by default.
func (f *serveFlags) platform() bool { return f.roles == nil }

// brokerOnly reports whether f is `kura kbs serve`.
func (f *serveFlags) brokerOnly() bool { return len(f.roles) == 1 && f.roles[0] == server.RoleKBS }

func (f *serveFlags) register(cmd *cobra.Command, g *globals) {
	fs := cmd.Flags()
	f.verifyFlags.register(fs, g)
	if !f.brokerOnly() {
		f.verifyFlags.registerPrivacyCA(fs)
	}
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
	fs.Float64Var(&f.rateLimit, "rate-limit", server.DefaultRateLimit, "requests per second allowed per client address on every POST and PUT under /v1/ (nonces, verifications, log intake, collaboration pushes; burst 2x)")
	if len(f.roles) == 1 && f.roles[0] == server.RoleVerifier {
		fs.StringVar(&f.kbs.store, "store", g.envDefault("KURA_STORE", ""), "keep issued nonces in this store, shared by replicas: a postgres:// URL (KURA_STORE); default, or with a SQLite file path (one process), in memory")
	} else {
		f.kbs.register(cmd, g)
		fs.Float64Var(&f.kbsRateLimit, "kbs-rate-limit", 200, "key broker requests per second allowed per client address (burst 2x)")
		fs.StringVar(&f.kbsCompat, "kbs-compat", string(keybroker.CompatKura), "how the KBS protocol endpoints answer: kura (KBS 0.1.x and 0.4.x, malformed requests 400) or trustee (exactly Trustee's KBS 0.4.0: version 0.4.0 only, failures 401 with Trustee's error types)")
	}
	if f.platform() {
		fs.StringSliceVar(&f.roleNames, "roles", nil, "roles to run, comma-separated: "+server.RoleNames()+" (default all)")
		fs.Int64Var(&f.maxDataset, "max-dataset-size", intake.DefaultMaxDataset, "the largest sealed dataset a key broker tenant may upload (kura data upload), in bytes")
		fs.DurationVar(&f.runLease, "run-lease", coordinator.DefaultLease, "how long a worker's claim on a run lasts unless renewed; a run whose worker stops renewing is run again")
		f.blob.register(fs)
		f.log.register(fs)
		f.agg.register(fs)
	}
	if f.brokerOnly() {
		fs.BoolVar(&f.withLog, "log", false, "also run the transparency-log role: the broker's own log in <data>/log, served under /log/, recording every release decision (verifier key <data>/log-key.pub unless --log-key)")
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

// config turns the flags into a server configuration, reading the files
// only the CLI knows about (pinned keys, witness keys, S3 credentials).
func (f *serveFlags) config(ctx context.Context, log *slog.Logger) (server.Config, error) {
	verify, err := f.verification()
	if err != nil {
		return server.Config{}, err
	}
	trust, err := f.kbs.trust()
	if err != nil {
		return server.Config{}, err
	}
	jwksHTTP, err := f.kbs.jwksClient()
	if err != nil {
		return server.Config{}, err
	}
	compat, err := keybroker.ParseCompat(f.kbsCompat)
	if err != nil {
		return server.Config{}, usagef("--kbs-compat: %v", err)
	}
	cfg := server.Config{
		DataDir: f.data, Roles: f.roles, DevMode: f.dev, Version: "kura " + Version, Logger: log,
		TokenKeyFile: f.key, Store: f.kbs.store, Verification: verify,
		SeparateMetrics: f.metricsAddr != "", RateLimit: f.rateLimit, RunLease: f.runLease, MaxDataset: f.maxDataset,
		KBS: server.KBS{KEKFile: f.kbs.kekFile, KEKPassphraseFile: f.kbs.passphraseFile, AdminKeysFile: f.kbs.adminKeys,
			TrustJWKS: f.kbs.trustJWKS, HTTP: jwksHTTP, TrustKeys: trust, RateLimit: f.kbsRateLimit, Compat: compat},
	}
	for _, n := range f.roleNames {
		cfg.Roles = append(cfg.Roles, server.Role(n))
	}
	if f.brokerOnly() && !f.withLog && f.log.set() {
		return server.Config{}, usagef("--log-key, --log-origin and --log-witness configure the broker's log: add --log")
	}
	if f.withLog {
		cfg.Roles = append(slices.Clone(f.roles), server.RoleLog)
		if cfg.Log, err = f.log.config(); err != nil {
			return server.Config{}, err
		}
	}
	if f.platform() {
		if cfg.Log, err = f.log.config(); err != nil {
			return server.Config{}, err
		}
		if cfg.Aggregator, err = f.agg.config(); err != nil {
			return server.Config{}, err
		}
		if len(f.roleNames) > 0 && !slices.Contains(f.roleNames, string(server.RoleLog)) {
			return cfg, nil // only the log role keeps blobs
		}
		if cfg.Blobs, err = f.blob.open(ctx, log); err != nil {
			return server.Config{}, err
		}
	}
	return cfg, nil
}

func newVerifierCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "verifier", Short: "Run the attestation verifier service"}
	f := &serveFlags{roles: []server.Role{server.RoleVerifier}}
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve the verifier API: nonce, verify (bundle -> EAR token), JWKS; TPM AK enrolment with --tpm-ek-ca",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runServe(cmd.Context(), g, f, cmd) },
	}
	cmd.AddCommand(serve)
	f.register(serve, g)
	return cmd
}

func newServeCmd(g *globals) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the kura platform server: every role, or those --roles names, behind one listener",
		Long: `Run the kura platform server: the attestation verifier, the key broker (KBS protocol and owner
API), the transparency log (with the intake for clean-room results, receipts and time-lock
registrations) and the collaboration coordinator behind one listener, or only the roles --roles
names. Configuration comes from flags, KURA_* variables (KURA_<FLAG_NAME>, e.g. KURA_TLS_CERT)
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

func runServe(ctx context.Context, g *globals, f *serveFlags, cmd *cobra.Command) error {
	eff, err := applyConfig(cmd, g)
	if err != nil {
		return err
	}
	if f.printConfig {
		return eff.print(cmd.OutOrStdout())
	}
	base, err := g.logger()
	if err != nil {
		return err
	}
	log := slog.New(web.ContextHandler(base.Handler()))
	if eff.file != "" {
		log.Info("configuration file read", "path", eff.file)
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
	closeListeners := func() {
		l.Close()
		if ml != nil {
			ml.Close()
		}
	}
	cfg, err := f.config(ctx, log)
	if err != nil {
		closeListeners()
		return err
	}
	s, err := server.New(ctx, cfg)
	if err != nil {
		closeListeners()
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			log.Error("closing the server", "err", err)
		}
	}()
	if f.dev {
		log.Warn("dev mode: the INSECURE simulated TEE is accepted; never use dev mode in production")
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	var roles []string
	for _, r := range s.Roles() {
		roles = append(roles, string(r))
	}
	log.Info("kura listening", "addr", l.Addr().String(), "tls", tlsCfg != nil, "roles", strings.Join(roles, ","), "dev_mode", f.dev)
	fmt.Fprintf(cmd.OutOrStdout(), "kura listening on %s://%s\n", scheme, l.Addr())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	drainNow := func() { s.Drain("shutting down") }
	main := &web.Server{Handler: s.Handler(), Logger: log, TLS: tlsCfg, Drain: f.drain, ShutdownDelay: f.shutdownDelay, OnShutdown: drainNow}
	if ml == nil {
		return main.Serve(ctx, l)
	}
	log.Info("metrics listening", "addr", ml.Addr().String())
	fmt.Fprintf(cmd.OutOrStdout(), "kura metrics on %s://%s/metrics\n", scheme, ml.Addr())
	aux := &web.Server{Handler: s.MetricsHandler(), Logger: log, TLS: tlsCfg, Drain: f.drain, ShutdownDelay: f.shutdownDelay, OnShutdown: drainNow}
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
