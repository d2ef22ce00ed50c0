package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/keybroker"
)

// KBSConfig is a `kura bench kbs` run.
type KBSConfig struct {
	// Command starts a server process: argv that runs KBSServer with the
	// arguments KBS appends (`kura bench kbs server`, hidden).
	Command []string
	// Env is added to the server processes' environment.
	Env []string
	// Pairs is the number of alternated saturation pairs.
	Pairs int
	// Duration is each saturation run, after Warmup.
	Duration, Warmup time.Duration
	// Conns is the number of keep-alive connections the load uses.
	Conns int
	// Rate is the paced load, releases/s; PacedRuns the number of paced
	// pairs, each PacedDuration long after a second of warm-up.
	Rate          int
	PacedRuns     int
	PacedDuration time.Duration
	// ServerProfile, if set, is where the broker process writes its CPU
	// profile (pprof) of the whole run.
	ServerProfile string
	// Version names the build in the broker's tokens.
	Version string
	// JSON prints the report as JSON.
	JSON bool
}

// kbsTargetP99 is the paced latency target, kbsTargetRate the saturation
// target on two cores (issue 20).
const (
	kbsTargetP99  = 20 * time.Millisecond
	kbsTargetRate = 8000
)

// KBSReport is what KBS reports: the figures and how many paced runs met
// the latency target.
type KBSReport struct {
	Figures json.RawMessage `json:"figures"`
	// Rate is the paced load, releases/s; PacedUnder of PacedRuns paced
	// runs had their p99 under TargetP99ms.
	Rate        int     `json:"paced_rate"`
	PacedRuns   int     `json:"paced_runs"`
	PacedUnder  int     `json:"paced_under_target"`
	TargetP99ms float64 `json:"target_p99_ms"`
	// Verified is the number of sampled releases the bench decrypted
	// with the TEE key and found equal to the stored value.
	Verified int `json:"releases_decrypted"`
	// TargetRatio is kura's median saturation rate over kbsTargetRate.
	TargetRatio float64 `json:"saturation_over_target"`
	// ClientCPUms is the load generator's own CPU per release (this
	// process, median of the saturation runs), which the server figures
	// leave out.
	ClientCPUms float64 `json:"load_generator_cpu_ms_per_release"`
}

// KBS measures the key broker's release path from a separate process:
// the broker (`kura kbs serve --dev` wiring) and a bare baseline (the same
// binary answering the resource route after checking the Bearer token
// only) each run as a child process on loopback, and this process drives
// them with pre-built keep-alive HTTP/1.1 requests carrying an EAR token
// from the broker's own attestation endpoint, decrypting a sample of the
// releases with the TEE key. It reports, in alternated pairs: saturation
// releases/s, the server process's CPU per release (from /proc, so the
// load generator's own cost is not counted), and the p99 latency at
// cfg.Rate releases/s measured from each request's scheduled time.
func KBS(ctx context.Context, cfg KBSConfig, out io.Writer) error {
	switch {
	case len(cfg.Command) == 0:
		return usagef("kbs: no server command")
	case cfg.Pairs < 1 || cfg.PacedRuns < 0 || cfg.Conns < 1 || cfg.Rate < 1:
		return usagef("--pairs, --conns and --rate must be positive, --paced-runs not negative")
	case cfg.Duration <= 0 || cfg.Warmup < 0 || cfg.PacedRuns > 0 && cfg.PacedDuration <= 0:
		return usagef("--duration and --paced-duration must be positive, --warmup not negative")
	}
	dir, err := os.MkdirTemp("", "kura-bench-kbs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	admins := filepath.Join(dir, "admins")
	if err := os.WriteFile(admins, []byte(keybroker.AuthorizedKeyLine(pub, "bench", "bench")+"\n"), 0o600); err != nil {
		return err
	}
	broker, err := startKBSServer(ctx, cfg, "kura", KBSServerConfig{Dir: filepath.Join(dir, "data"), AdminKeys: admins, CPUProfile: cfg.ServerProfile, Version: cfg.Version})
	if err != nil {
		return err
	}
	defer broker.stop()
	id := make([]byte, 6)
	rand.Read(id)
	resource, value := "bench/key/"+hex.EncodeToString(id), make([]byte, 32)
	rand.Read(value)
	admin := &keybroker.AdminClient{BaseURL: broker.url, Key: priv}
	if _, err := admin.Put(ctx, resource, value, map[string]string{"purpose": "kura bench kbs"}, ""); err != nil {
		return fmt.Errorf("store the bench resource: %w", err)
	}
	bare, err := startKBSServer(ctx, cfg, "bare", KBSServerConfig{Bare: true, JWKS: broker.url + "/.well-known/jwks.json"})
	if err != nil {
		return err
	}
	defer bare.stop()

	att, err := sim.NewAttester(sim.AttesterConfig{})
	if err != nil {
		return err
	}
	verified := 0
	var clientCPU []float64 // this process's CPU per release, broker runs
	// target attests afresh (a new TEE key and token for every run) and
	// returns the load for srv: the release request with the token, and a
	// check that decrypts a sampled release (the broker) or compares the
	// constant answer (the baseline).
	target := func(srv *child) (loadTarget, error) {
		s, err := (&keybroker.Client{BaseURL: broker.url}).Attest(ctx, att, nil)
		if err != nil {
			return loadTarget{}, fmt.Errorf("attest to the broker: %w", err)
		}
		u, err := url.Parse(srv.url)
		if err != nil {
			return loadTarget{}, err
		}
		req := fmt.Appendf(nil, "GET /kbs/v0/resource/%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kura-bench-kbs\r\nAuthorization: Bearer %s\r\n\r\n", resource, u.Host, s.Token)
		check := func(body []byte) error {
			if !bytes.Equal(body, []byte(`{"ok":true}`)) {
				return fmt.Errorf("baseline answered %.100q", body)
			}
			return nil
		}
		if srv == broker {
			check = func(body []byte) error {
				got, err := s.Decrypt(body)
				if err != nil {
					return fmt.Errorf("a release does not decrypt with the TEE key: %w", err)
				}
				if !bytes.Equal(got, value) {
					return errors.New("a release decrypts to another value than the stored one")
				}
				return nil
			}
		}
		return loadTarget{addr: u.Host, req: req, check: check}, nil
	}

	sat := Figure{Name: "key release, saturation", Baseline: "bare token check", Unit: "/s", Target: fmt.Sprintf("kura ≥ %d/s (moonshot 10000/s)", kbsTargetRate)}
	cpu := Figure{Name: "server CPU per release", Baseline: "bare token check", Unit: "ms"}
	saturate := func(srv *child, cpuInto *[]float64) Variant {
		return func(ctx context.Context) (float64, error) {
			t, err := target(srv)
			if err != nil {
				return 0, err
			}
			if cfg.Warmup > 0 {
				if _, err := runLoad(ctx, t, cfg.Conns, 0, cfg.Warmup); err != nil {
					return 0, srv.failed(err)
				}
			}
			// Without /proc (not Linux) the CPU figure is 0: left out.
			c0, cerr0 := srv.cpuTime()
			self0 := processCPU()
			r, err := runLoad(ctx, t, cfg.Conns, 0, cfg.Duration)
			if err != nil {
				return 0, srv.failed(err)
			}
			c1, cerr1 := srv.cpuTime()
			if cerr0 != nil || cerr1 != nil {
				c0, c1 = 0, 0
			}
			if srv == broker {
				verified += r.checked
				clientCPU = append(clientCPU, float64(processCPU()-self0)/float64(time.Millisecond)/float64(max(r.ok, 1)))
			}
			*cpuInto = append(*cpuInto, float64(c1-c0)/float64(time.Millisecond)/float64(max(r.ok, 1)))
			return float64(r.ok) / r.elapsed.Seconds(), nil
		}
	}
	if err := Alternate(ctx, &sat, cfg.Pairs, saturate(bare, &cpu.Base), saturate(broker, &cpu.Kura)); err != nil {
		return err
	}
	figs := []Figure{sat, cpu}
	rep := KBSReport{Rate: cfg.Rate, PacedRuns: cfg.PacedRuns, TargetP99ms: float64(kbsTargetP99) / float64(time.Millisecond),
		TargetRatio: medianOf(sat.Kura) / kbsTargetRate}

	if cfg.PacedRuns > 0 {
		paced := Figure{Name: fmt.Sprintf("key release p99 at %d/s", cfg.Rate), Baseline: "bare token check", Unit: "ms",
			Target: fmt.Sprintf("kura < %d ms in %d of %d runs", kbsTargetP99/time.Millisecond, cfg.PacedRuns, cfg.PacedRuns)}
		pace := func(srv *child) Variant {
			return func(ctx context.Context) (float64, error) {
				t, err := target(srv)
				if err != nil {
					return 0, err
				}
				if _, err := runLoad(ctx, t, cfg.Conns, cfg.Rate, time.Second); err != nil {
					return 0, srv.failed(err)
				}
				r, err := runLoad(ctx, t, cfg.Conns, cfg.Rate, cfg.PacedDuration)
				if err != nil {
					return 0, srv.failed(err)
				}
				if srv == broker {
					verified += r.checked
				}
				return float64(p99(r.lat)) / float64(time.Millisecond), nil
			}
		}
		if err := Alternate(ctx, &paced, cfg.PacedRuns, pace(bare), pace(broker)); err != nil {
			return err
		}
		for _, v := range paced.Kura {
			if v < rep.TargetP99ms {
				rep.PacedUnder++
			}
		}
		figs = append(figs, paced)
	}
	rep.Verified = verified
	rep.ClientCPUms = medianOf(clientCPU)
	if verified == 0 {
		return errors.New("no release was decrypted and checked")
	}
	if err := broker.stop(); err != nil {
		return fmt.Errorf("broker process: %w", err)
	}
	bare.stop()

	var table bytes.Buffer
	if err := WriteFigures(&table, figs, cfg.JSON); err != nil {
		return err
	}
	if cfg.JSON {
		rep.Figures = table.Bytes()
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(out, "kura bench kbs: broker and baseline in separate processes on loopback, %d connections, saturation %s after %s warm-up\n\n",
		cfg.Conns, cfg.Duration, cfg.Warmup)
	if _, err := out.Write(table.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(out, "saturation: kura %s releases/s, %.2f× the %d/s target\n", num(medianOf(sat.Kura)), rep.TargetRatio, kbsTargetRate)
	if cfg.PacedRuns > 0 {
		fmt.Fprintf(out, "paced %d/s: kura p99 < %d ms in %d of %d runs (latency from each request's scheduled time)\n",
			cfg.Rate, kbsTargetP99/time.Millisecond, rep.PacedUnder, cfg.PacedRuns)
	}
	_, err = fmt.Fprintf(out, "releases decrypted with the TEE key and checked: %d; server CPU from /proc/<pid>/stat, without the load generator's own %s ms per release\n",
		verified, num(rep.ClientCPUms))
	return err
}

// startKBSServer starts a server process and waits until it listens.
func startKBSServer(ctx context.Context, cfg KBSConfig, name string, sc KBSServerConfig) (*child, error) {
	// The broker logs every decision, as `kura kbs serve` does, to a pipe
	// whose end is kept for error messages.
	return startChild(ctx, name, cfg.Command, kbsServerArgs(sc), cfg.Env, kbsReadyPrefix)
}

// kbsServerArgs are the arguments that make a server process of cfg;
// ParseKBSServerArgs reads them back.
func kbsServerArgs(cfg KBSServerConfig) []string {
	args := []string{"--data", cfg.Dir, "--admin-keys", cfg.AdminKeys, "--jwks", cfg.JWKS, "--cpuprofile", cfg.CPUProfile, "--version", cfg.Version}
	if cfg.Bare {
		args = append(args, "--bare")
	}
	return args
}

// ParseKBSServerArgs reads the arguments `kura bench kbs` gives its server
// processes.
func ParseKBSServerArgs(args []string) (KBSServerConfig, error) {
	var cfg KBSServerConfig
	err := parseChildArgs("kbs server", args, func(fs *flag.FlagSet) {
		fs.StringVar(&cfg.Dir, "data", "", "")
		fs.StringVar(&cfg.AdminKeys, "admin-keys", "", "")
		fs.StringVar(&cfg.JWKS, "jwks", "", "")
		fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "")
		fs.StringVar(&cfg.Version, "version", "", "")
		fs.BoolVar(&cfg.Bare, "bare", false, "")
	})
	if err != nil {
		return cfg, err
	}
	if cfg.Bare && cfg.JWKS == "" || !cfg.Bare && cfg.Dir == "" {
		return cfg, usagef("the broker needs --data, the bare baseline --jwks")
	}
	return cfg, nil
}
