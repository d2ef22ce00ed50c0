package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/server"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/verifier"
)

// VerifierConfig is a `kura bench verifier` run.
type VerifierConfig struct {
	// Command starts the server process: argv that runs VerifierServer
	// with the arguments Verifier appends (`kura bench verifier server`,
	// hidden).
	Command []string
	// Env is added to the server process's environment.
	Env []string
	// Clients is the number of concurrent clients, over HTTP and in
	// process alike.
	Clients int
	// Duration is each measured run, after Warmup.
	Duration, Warmup time.Duration
	// Pairs is the number of alternated pairs.
	Pairs int
	// Store is the server's store ("": nonces in memory, as `kura serve
	// --dev --roles verifier` keeps them; a SQLite path or a postgres://
	// URL, as replicas share them).
	Store string
	// PlainHTTP serves plain HTTP instead of HTTPS with a self-signed
	// certificate (what `kura serve --dev` does).
	PlainHTTP bool
	// ServerProfile, if set, is where the server process writes its CPU
	// profile (pprof) of the whole run.
	ServerProfile string
	// Version names the build in the tokens.
	Version string
	// JSON prints the figures as JSON.
	JSON bool
}

// verifierTargetP99 is the latency target at 64 clients (issue 20).
const verifierTargetP99 = 20 * time.Millisecond

// Verifier measures the verifier service over HTTP against the same
// verifications in process. The server process is built as `kura serve
// --dev --roles verifier` builds it (server.New, the verifier role, dev
// mode, nonces in memory unless cfg.Store, every verification logged at
// info) and served over HTTPS with a self-signed certificate on loopback;
// the per-client rate limit is lifted, since the whole load comes from
// one address. Each of cfg.Clients clients of this process repeats the
// attestation round trip of verifier.Client.Attest: POST
// /v1/attestation/nonce, INSECURE sim evidence bound to the nonce, POST
// /v1/attestation/verify, and checks the token's signature. The baseline
// runs the same number of goroutines on a verifier.Service built by the
// same server.Verification, in this process: Nonce, the same sim
// evidence, Verify with the issued-nonce check. It reports, in alternated
// pairs, verifications per second, the p99 latency of one round trip, and
// the CPU time per verification: this process's and the server's
// together, and the server's alone.
func Verifier(ctx context.Context, cfg VerifierConfig, out io.Writer) error {
	switch {
	case len(cfg.Command) == 0:
		return usagef("verifier: no server command")
	case cfg.Pairs < 1 || cfg.Clients < 1:
		return usagef("--pairs and --clients must be positive")
	case cfg.Duration <= 0 || cfg.Warmup < 0:
		return usagef("--duration must be positive, --warmup not negative")
	}
	dir, err := os.MkdirTemp("", "kura-bench-verifier-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	srv, err := startVerifierServer(ctx, cfg, VerifierServerConfig{
		Dir: filepath.Join(dir, "server"), Store: cfg.Store, TLS: !cfg.PlainHTTP, CPUProfile: cfg.ServerProfile, Version: cfg.Version,
	})
	if err != nil {
		return err
	}
	defer srv.stop()
	hc, err := verifierHTTPClient(srv.cert, cfg.Clients)
	if err != nil {
		return err
	}
	remote := &verifier.Client{BaseURL: srv.url, HTTP: hc}
	jwks, err := remote.JWKS(ctx)
	if err != nil {
		return srv.failed(err)
	}
	keys, err := token.ParseJWKS(jwks)
	if err != nil {
		return err
	}
	remoteTokens, err := token.NewVerifier(token.VerifierConfig{Keys: keys})
	if err != nil {
		return err
	}

	local, localTokens, err := inProcessVerifier(ctx, cfg.Version)
	if err != nil {
		return err
	}
	att, err := sim.NewAttester(sim.AttesterConfig{})
	if err != nil {
		return err
	}

	// Each client checks the signature of its first token of a run, on
	// both sides alike; the rest must merely carry one.
	overHTTP := func(ctx context.Context, check bool) error {
		v, err := remote.Attest(ctx, att, nil, nil)
		if err != nil {
			return err
		}
		return checkToken(ctx, remoteTokens, check, []byte(v.Token), v.Insecure)
	}
	inProcess := func(ctx context.Context, check bool) error {
		nonce, _, err := local.Nonce(ctx)
		if err != nil {
			return err
		}
		rd := attestation.RuntimeData{Nonce: nonce}
		b, err := att.Attest(ctx, rd.ReportData())
		if err != nil {
			return err
		}
		b.RuntimeData = rd
		rep, err := local.Verify(ctx, b, verifier.Options{Freshness: verifier.IssuedNonce})
		if err != nil {
			return err
		}
		return checkToken(ctx, localTokens, check, rep.Token, rep.Insecure)
	}

	rate := Figure{Name: fmt.Sprintf("verifications, %d clients", cfg.Clients), Baseline: "in process (verifier.Verify)", Unit: "/s", Target: "≥ 0.7×"}
	lat := Figure{Name: fmt.Sprintf("p99 of nonce + verify, %d clients", cfg.Clients), Baseline: "in process (verifier.Verify)", Unit: "ms",
		Target: fmt.Sprintf("kura < %d ms", verifierTargetP99/time.Millisecond)}
	// CPU per verification counts this process and, over HTTP, the
	// server's: the client's work and the server's. Unlike the rates it
	// hardly moves with what else the machine runs; where both variants
	// saturate the cores, the rates' ratio is about its inverse.
	cpu := Figure{Name: "CPU per verification, client + server", Baseline: "in process (verifier.Verify)", Unit: "ms"}
	// The server's own share tells its capacity when the clients run on
	// other machines, as they do in production.
	srvCPU := Figure{Name: "CPU per verification, server process only", Baseline: "in process, all of it", Unit: "ms"}
	var inProcessCPU []float64
	measure := func(op func(context.Context, bool) error, remote bool, latInto, cpuInto *[]float64) Variant {
		return func(ctx context.Context) (float64, error) {
			if cfg.Warmup > 0 {
				if _, err := closedLoop(ctx, cfg.Clients, cfg.Warmup, op); err != nil {
					return 0, srv.failedIf(remote, err)
				}
			}
			c0, s0, err := srv.cpu(remote)
			if err != nil {
				return 0, err
			}
			r, err := closedLoop(ctx, cfg.Clients, cfg.Duration, op)
			if err != nil {
				return 0, srv.failedIf(remote, err)
			}
			c1, s1, err := srv.cpu(remote)
			if err != nil {
				return 0, err
			}
			perOp := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(len(r.lat)) }
			*latInto = append(*latInto, float64(quantile(r.lat, 0.99))/float64(time.Millisecond))
			*cpuInto = append(*cpuInto, perOp(c1-c0+s1-s0))
			if remote {
				srvCPU.Kura = append(srvCPU.Kura, perOp(s1-s0))
			} else {
				inProcessCPU = append(inProcessCPU, perOp(c1-c0))
			}
			return float64(len(r.lat)) / r.elapsed.Seconds(), nil
		}
	}
	if err := Alternate(ctx, &rate, cfg.Pairs, measure(inProcess, false, &lat.Base, &cpu.Base), measure(overHTTP, true, &lat.Kura, &cpu.Kura)); err != nil {
		return err
	}
	if err := srv.stop(); err != nil {
		return fmt.Errorf("verifier server process: %w", err)
	}
	srvCPU.Base = inProcessCPU
	figs := []Figure{rate, lat, cpu, srvCPU}
	if cfg.JSON {
		return WriteFigures(out, figs, true)
	}
	scheme := "HTTPS (self-signed, as kura serve --dev)"
	if cfg.PlainHTTP {
		scheme = "plain HTTP"
	}
	nonces := "nonces in memory"
	if cfg.Store != "" {
		nonces = "store " + server.RedactURL(cfg.Store)
	}
	fmt.Fprintf(out, "kura bench verifier: INSECURE sim evidence; kura = nonce + verify over %s to a separate verifier process (%s), baseline = the same in this process; %d clients, %s per run after %s warm-up\n\n",
		scheme, nonces, cfg.Clients, cfg.Duration, cfg.Warmup)
	return WriteFigures(out, figs, false)
}

// inProcessVerifier builds the baseline's service as a server builds its
// verifier (server.Verification, dev mode, a token issuer, nonces in
// memory), logging as the server does at info, into io.Discard.
func inProcessVerifier(ctx context.Context, version string) (*verifier.Service, *token.Verifier, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	iss, err := token.NewIssuer(token.IssuerConfig{Key: key, Build: version})
	if err != nil {
		return nil, nil, err
	}
	keys, err := token.ParseJWKS(iss.JWKS())
	if err != nil {
		return nil, nil, err
	}
	tv, err := token.NewVerifier(token.VerifierConfig{Keys: keys})
	if err != nil {
		return nil, nil, err
	}
	svc, err := server.Verification{DevMode: true}.Service(ctx, serverLog(io.Discard), iss, nil)
	return svc, tv, err
}

// checkToken checks that a sim verification is marked insecure and has a
// token, and with verify the token's signature and claims.
func checkToken(ctx context.Context, v *token.Verifier, verify bool, raw []byte, insecure bool) error {
	switch {
	case !insecure:
		return errors.New("a sim verification is not marked insecure")
	case len(raw) == 0:
		return errors.New("the verification has no token")
	case !verify:
		return nil
	}
	if _, err := v.Verify(ctx, raw); err != nil {
		return fmt.Errorf("the verifier's token: %w", err)
	}
	return nil
}

// verifierHTTPClient is the client a user's program would have: the
// default transport (HTTP/2 over TLS), trusting certPEM when set, keeping
// up to conns idle connections.
func verifierHTTPClient(certPEM []byte, conns int) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = conns, conns
	if certPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(certPEM) {
			return nil, errors.New("the server's certificate is not PEM")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: time.Minute}, nil
}

// loopResult is what a closed loop measured: each operation's latency and
// the time it ran.
type loopResult struct {
	lat     []time.Duration
	elapsed time.Duration
}

// closedLoop runs op in clients goroutines, each starting its next
// operation when the last one ends, for d; op's first call in each
// goroutine is told so. The first error stops the run.
func closedLoop(ctx context.Context, clients int, d time.Duration, op func(ctx context.Context, first bool) error) (*loopResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lats := make([][]time.Duration, clients)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				if err := op(ctx, len(lats[i]) == 0); err != nil {
					cancel(err)
					return
				}
				lats[i] = append(lats[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	r := &loopResult{elapsed: time.Since(start), lat: slices.Concat(lats...)}
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	if len(r.lat) == 0 {
		return nil, errors.New("no operation completed")
	}
	return r, nil
}

// VerifierServerConfig is the server process of `kura bench verifier`.
type VerifierServerConfig struct {
	// Dir is the data directory (token key, certificate).
	Dir string
	// Store is the server's store; "" keeps nonces in memory.
	Store string
	// TLS serves HTTPS with a self-signed certificate, written to
	// Dir/cert.pem for the bench to trust.
	TLS bool
	// CPUProfile, if set, is where the process writes its CPU profile when
	// it stops.
	CPUProfile string
	// Version names the build in tokens.
	Version string
}

// verifierReadyPrefix starts the line the server process prints once it
// listens.
const verifierReadyPrefix = "verifier bench server listening on "

// VerifierServer serves the server process of `kura bench verifier` on a
// loopback port until ctx ends or stdin closes (the bench that started it
// exited). It prints verifierReadyPrefix+URL once it listens and logs to
// stderr as `kura serve` does (text, level info: every verification).
func VerifierServer(ctx context.Context, cfg VerifierServerConfig, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, log, done, err := childServer(ctx, stdin, stderr, cfg.CPUProfile)
	if err != nil {
		return err
	}
	defer done()
	s, err := server.New(ctx, server.Config{
		DataDir: cfg.Dir, Roles: []server.Role{server.RoleVerifier}, DevMode: true, Version: cfg.Version, Logger: log,
		Store: cfg.Store, Verification: server.Verification{DevMode: true},
		// One client address sends the whole load: lift the per-client
		// limit (it is still consulted on every request).
		RateLimit: 1e9,
	})
	if err != nil {
		return err
	}
	var tlsCfg *tls.Config
	if cfg.TLS {
		if tlsCfg, err = selfSignedTLS(filepath.Join(cfg.Dir, "cert.pem")); err != nil {
			return errors.Join(err, s.Close(context.WithoutCancel(ctx)))
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return errors.Join(err, s.Close(context.WithoutCancel(ctx)))
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "%s%s://%s\n", verifierReadyPrefix, scheme, l.Addr())
	err = (&web.Server{Handler: s.Handler(), Logger: log, TLS: tlsCfg, Drain: 5 * time.Second}).Serve(ctx, l)
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer ccancel()
	return errors.Join(err, s.Close(cctx))
}

// selfSignedTLS makes a self-signed certificate as `kura serve --dev` does
// (web.SelfSigned), writes it to certPath and returns the TLS
// configuration serving it.
func selfSignedTLS(certPath string) (*tls.Config, error) {
	der, key, err := web.SelfSigned("kura bench verifier (self-signed)", time.Now(), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, nil
}

// verifierProcess is the running server process.
type verifierProcess struct {
	*child
	cert []byte // PEM, with TLS
}

// startVerifierServer starts the server process and waits until it
// listens.
func startVerifierServer(ctx context.Context, cfg VerifierConfig, sc VerifierServerConfig) (*verifierProcess, error) {
	c, err := startChild(ctx, "verifier", cfg.Command, verifierServerArgs(sc), cfg.Env, verifierReadyPrefix)
	if err != nil {
		return nil, err
	}
	p := &verifierProcess{child: c}
	if sc.TLS {
		if p.cert, err = os.ReadFile(filepath.Join(sc.Dir, "cert.pem")); err != nil {
			p.stop()
			return nil, p.failed(err)
		}
	}
	return p, nil
}

// cpu returns the CPU time this process has used and, with remote, the
// server process's (from /proc: Linux only).
func (p *verifierProcess) cpu(remote bool) (self, server time.Duration, err error) {
	self = processCPU()
	if !remote {
		return self, 0, nil
	}
	if server, err = p.cpuTime(); err != nil {
		return 0, 0, fmt.Errorf("the server process's CPU time: %w", err)
	}
	return self, server, nil
}

// failedIf is failed when remote, else err.
func (p *verifierProcess) failedIf(remote bool, err error) error {
	if remote {
		return p.failed(err)
	}
	return err
}

// verifierServerArgs are the arguments that make the server process of
// cfg; ParseVerifierServerArgs reads them back.
func verifierServerArgs(cfg VerifierServerConfig) []string {
	args := []string{"--data", cfg.Dir, "--store", cfg.Store, "--cpuprofile", cfg.CPUProfile, "--version", cfg.Version}
	if cfg.TLS {
		args = append(args, "--tls")
	}
	return args
}

// ParseVerifierServerArgs reads the arguments `kura bench verifier` gives
// its server process.
func ParseVerifierServerArgs(args []string) (VerifierServerConfig, error) {
	var cfg VerifierServerConfig
	err := parseChildArgs("verifier server", args, func(fs *flag.FlagSet) {
		fs.StringVar(&cfg.Dir, "data", "", "")
		fs.StringVar(&cfg.Store, "store", "", "")
		fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "")
		fs.StringVar(&cfg.Version, "version", "", "")
		fs.BoolVar(&cfg.TLS, "tls", false, "")
	})
	if err != nil {
		return cfg, err
	}
	if cfg.Dir == "" {
		return cfg, usagef("the verifier server needs --data")
	}
	return cfg, nil
}
