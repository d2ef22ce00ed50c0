package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/auditlog/intake"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/timelock"
	"github.com/kura-cc/kura/timelock/beacon"
)

// chainFlags select the drand chain of the timelock commands.
type chainFlags struct {
	urls []string
	hash string
	dev  bool
}

func (c *chainFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&c.urls, "chain-url", nil, "drand HTTP API root of the chain (repeatable; default: quicknet's public endpoints)")
	cmd.Flags().StringVar(&c.hash, "chain-hash", "", "chain hash to pin (default: quicknet "+timelock.QuicknetHash[:16]+"…)")
	cmd.Flags().BoolVar(&c.dev, "dev", false, "accept an INSECURE local dev beacon (kura beacon serve --dev)")
}

func (c *chainFlags) chain() (timelock.Chain, error) {
	q := timelock.Quicknet()
	switch {
	case c.hash == "" && len(c.urls) == 0:
		return q, nil
	case c.hash == "":
		return timelock.Chain{}, usagef("--chain-url needs --chain-hash: the hash pins the chain the URL must serve")
	case c.hash == timelock.QuicknetHash:
		if len(c.urls) > 0 {
			q.URLs = c.urls
		}
		return q, nil
	case len(c.urls) == 0:
		return timelock.Chain{}, usagef("--chain-hash %s needs --chain-url: only quicknet's endpoints are built in", c.hash)
	}
	return timelock.Chain{Hash: c.hash, URLs: c.urls}, nil
}

// parseUntil reads an RFC 3339 time or a duration from now ("90s", "72h").
func parseUntil(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usagef("--until %q: want an RFC 3339 time (2030-01-01T00:00:00Z) or a duration from now (72h)", s)
	}
	return t, nil
}

func newTimelockCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "timelock",
		Short: "Seal files nobody can open before a set time (drand tlock)",
		Long: "Time-lock files to a future round of a drand beacon: nobody can open them before the beacon\n" +
			"publishes that round. With --to, only the given parties can open them after that time.\n" +
			"Format and threat model: docs/spec/timelock.md.",
	}
	cmd.AddCommand(newTimelockSealCmd(g), newTimelockOpenCmd(g), newTimelockInspectCmd(), newTimelockVerifyCmd())
	return cmd
}

func newTimelockSealCmd(g *globals) *cobra.Command {
	var (
		cf                         chainFlags
		until, out, sealer, logURL string
		to                         []string
		asJSON                     bool
	)
	cl := &clientFlags{g: g}
	cmd := &cobra.Command{
		Use:   "seal IN -o OUT --until TIME",
		Short: "Time-lock a file; writes OUT and OUT.registration.json",
		Long: `Time-lock IN to the first round of the drand chain published at or after --until, and write
OUT and its registration OUT.registration.json (the sealed file's SHA-256, round and release time;
signed by --sealer). --json prints {output, registration, proof (with --log), format,
sealed_sha256, sealed_size, chain_hash, round, release_time, recipients: [fingerprint...], sealer}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			if out == "" {
				return usagef("-o OUT is required")
			}
			if until == "" {
				return usagef("--until is required")
			}
			hc, err := cl.resolve()
			if err != nil {
				return err
			}
			now := time.Now()
			u, err := parseUntil(until, now)
			if err != nil {
				return err
			}
			chain, err := cf.chain()
			if err != nil {
				return err
			}
			var cards []*party.Card
			for _, p := range to {
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				c, err := party.ParseCard(data)
				if err != nil {
					return fmt.Errorf("--to %s: %w", p, err)
				}
				cards = append(cards, c)
			}
			var sealerID *party.Identity
			if sealer != "" {
				if sealerID, err = party.Load(sealer); err != nil {
					return fmt.Errorf("--sealer: %w", err)
				}
			}
			in, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			var reg *timelock.Registration
			err = writeAtomic(out, 0o644, func(w io.Writer) error {
				reg, err = timelock.Seal(cmd.Context(), w, in, timelock.SealOptions{
					Until: u, Chain: chain, Recipients: cards, AllowInsecure: cf.dev, Logger: log,
					Network: timelock.NewHTTPNetwork(chain, hc, log),
					Now:     func() time.Time { return now },
				})
				return err
			})
			if err != nil {
				return err
			}
			if sealerID != nil {
				if err := reg.Sign(sealerID); err != nil {
					return err
				}
			}
			data, err := reg.Marshal()
			if err != nil {
				return err
			}
			if err := writeAtomic(out+".registration.json", 0o644, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
				return err
			}
			sealed := sealedTimelock{Output: out, Registration: out + ".registration.json", Format: reg.Format,
				SealedSHA256: reg.SealedSHA256, SealedSize: reg.SealedSize, ChainHash: reg.ChainHash, Round: reg.Round,
				ReleaseTime: reg.ReleaseTime, Recipients: reg.Recipients, Sealer: reg.Sealer}
			if sealed.Recipients == nil {
				sealed.Recipients = []string{}
			}
			if !asJSON {
				fmt.Fprintf(cmd.OutOrStdout(), "sealed %s: opens at %s (round %d of chain %s)\nregistration: %s\n",
					out, reg.ReleaseTime.Format(time.RFC3339), reg.Round, reg.ChainHash, out+".registration.json")
			}
			if logURL != "" {
				proof, err := (&intake.Client{BaseURL: logURL, HTTP: hc}).Submit(cmd.Context(), auditlog.KindTimelockRegistration, data)
				if err != nil {
					return err
				}
				if err := writeAtomic(out+".registration.proof.json", 0o644, func(w io.Writer) error { _, err := w.Write(proof); return err }); err != nil {
					return err
				}
				sealed.Proof = out + ".registration.proof.json"
				if !asJSON {
					fmt.Fprintf(cmd.OutOrStdout(), "logged: inclusion proof %s\n", sealed.Proof)
				}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), sealed)
			}
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&until, "until", "", "earliest opening time: RFC 3339 or a duration from now (72h)")
	cmd.Flags().StringArrayVar(&to, "to", nil, "party card of a recipient (repeatable); without it anyone can open the file after the time")
	cmd.Flags().StringVarP(&out, "output", "o", "", "sealed file to write")
	cmd.Flags().StringVar(&sealer, "sealer", "", "your party directory, to record your fingerprint in the registration")
	cmd.Flags().StringVar(&logURL, "log", g.envDefault("KURA_LOG_URL", ""), "record the registration in the transparency log of the kura server at this URL and write its inclusion proof to OUT.registration.proof.json (KURA_LOG_URL)")
	cmd.Flags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	cl.addCA(cmd, false)
	return cmd
}

// sealedTimelock is what `kura timelock seal --json` prints.
type sealedTimelock struct {
	Output       string    `json:"output"`
	Registration string    `json:"registration"`
	Proof        string    `json:"proof,omitempty"`
	Format       string    `json:"format"`
	SealedSHA256 string    `json:"sealed_sha256"`
	SealedSize   int64     `json:"sealed_size"`
	ChainHash    string    `json:"chain_hash"`
	Round        uint64    `json:"round"`
	ReleaseTime  time.Time `json:"release_time"`
	Recipients   []string  `json:"recipients"`
	Sealer       string    `json:"sealer,omitempty"`
}

func newTimelockOpenCmd(g *globals) *cobra.Command {
	var (
		cf            chainFlags
		out, identity string
	)
	cl := &clientFlags{g: g, identity: &identity}
	cmd := &cobra.Command{
		Use:   "open IN -o OUT",
		Short: "Open a time-locked file once its time has come",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			if out == "" {
				return usagef("-o OUT is required")
			}
			chain, err := cf.chain()
			if err != nil {
				return err
			}
			hc, err := cl.resolve()
			if err != nil {
				return err
			}
			var id *party.Identity
			if identity != "" {
				if id, err = party.Load(identity); err != nil {
					return fmt.Errorf("--identity: %w", err)
				}
			}
			in, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			err = writeAtomic(out, 0o600, func(w io.Writer) error {
				_, err := timelock.Open(cmd.Context(), w, in, timelock.OpenOptions{Identity: id, Chain: chain, AllowInsecure: cf.dev, Logger: log, Network: timelock.NewHTTPNetwork(chain, hc, log)})
				return err
			})
			var early *timelock.TooEarlyError
			switch {
			case errors.As(err, &early):
				return fmt.Errorf("%w: try again after %s", err, early.ReleaseTime.Local().Format(time.RFC1123))
			case errors.Is(err, timelock.ErrWrongChain) && cf.hash == "":
				return fmt.Errorf("%w (pass --chain-hash and --chain-url for the file's chain; 'kura timelock inspect' shows it)", err)
			case errors.Is(err, timelock.ErrNotRecipient) && id == nil:
				return fmt.Errorf("%w: pass --identity DIR", err)
			case err != nil:
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "opened %s\n", out)
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVarP(&out, "output", "o", "", "plaintext file to write (mode 0600; written only if the whole file authenticates)")
	cmd.Flags().StringVar(&identity, "identity", g.envDefault("KURA_IDENTITY", ""), "your party directory, for files sealed to recipients (KURA_IDENTITY; client.yaml identity)")
	cl.addCA(cmd, false)
	return cmd
}

func newTimelockInspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect IN",
		Short: "Show what a time-locked file is locked to, without opening it",
		Long: `Read a time-locked file's header, without opening it or any network: its format, chain, round,
release time and recipients. --json prints {file, format, chain_hash, round, release_time (null
when the chain's schedule is not known offline), recipients: [fingerprint...] (empty: anyone),
header_size}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			in, err := timelock.Inspect(f)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				v := inspectedTimelock{File: args[0], Format: in.Format, ChainHash: in.ChainHash, Round: in.Round,
					Recipients: in.Recipients, HeaderSize: in.HeaderSize}
				if !in.ReleaseTime.IsZero() {
					v.ReleaseTime = &in.ReleaseTime
				}
				if v.Recipients == nil {
					v.Recipients = []string{}
				}
				return printJSON(w, v)
			}
			fmt.Fprintf(w, "format:       %s\n", in.Format)
			fmt.Fprintf(w, "chain:        %s\n", in.ChainHash)
			fmt.Fprintf(w, "round:        %d\n", in.Round)
			if in.ReleaseTime.IsZero() {
				fmt.Fprintln(w, "release time: unknown offline (not a built-in chain)")
			} else {
				fmt.Fprintf(w, "release time: %s\n", in.ReleaseTime.Format(time.RFC3339))
			}
			if len(in.Recipients) == 0 {
				fmt.Fprintln(w, "recipients:   anyone, after the release time")
			}
			for _, r := range in.Recipients {
				fmt.Fprintf(w, "recipient:    %s\n", r)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	return cmd
}

// inspectedTimelock is what `kura timelock inspect --json` prints.
type inspectedTimelock struct {
	File        string     `json:"file"`
	Format      string     `json:"format"`
	ChainHash   string     `json:"chain_hash"`
	Round       uint64     `json:"round"`
	ReleaseTime *time.Time `json:"release_time"`
	Recipients  []string   `json:"recipients"`
	HeaderSize  int        `json:"header_size"`
}

func newTimelockVerifyCmd() *cobra.Command {
	var regPath, logKey, proofPath string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify IN --registration REG.json",
		Short: "Check a time-locked file against the registration made when it was sealed",
		Long: `Check that IN is the file the registration describes (its SHA-256 and header), and with
--log-key that the registration is in the transparency log, and whether the log recorded it before
the release time.

--json prints {ok, error (when not ok), file, registration, file_verified, sealed_sha256,
chain_hash, round, release_time, logged (with --log-key: {origin, index, logged_at,
before_release, proof})}; a failed check still prints it, with ok false, and exits with its code.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if regPath == "" {
				regPath = args[0] + ".registration.json"
			}
			data, err := readInput("--registration", regPath)
			if err != nil {
				return err
			}
			rep := timelockVerification{File: args[0], Registration: regPath}
			fail := func(err error) error {
				if asJSON {
					rep.Error = err.Error()
					if perr := printJSON(cmd.OutOrStdout(), rep); perr != nil {
						return perr
					}
				}
				return err
			}
			reg, err := timelock.ParseRegistration(data)
			if err != nil {
				return fail(err)
			}
			rep.SealedSHA256, rep.ChainHash, rep.Round, rep.ReleaseTime = reg.SealedSHA256, reg.ChainHash, reg.Round, &reg.ReleaseTime
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if err := reg.Verify(f); err != nil {
				return fail(err)
			}
			rep.FileVerified = true
			if !asJSON {
				fmt.Fprintf(cmd.OutOrStdout(), "OK: %s is the file registered (sha256 %s), round %d of chain %s, release %s\n",
					args[0], reg.SealedSHA256, reg.Round, reg.ChainHash, reg.ReleaseTime.Format(time.RFC3339))
			}
			if logKey != "" {
				if proofPath == "" {
					proofPath = regPath[:len(regPath)-len(".json")] + ".proof.json"
				}
				if rep.Logged, err = registrationLogged(proofPath, logKey, reg); err != nil {
					return fail(err)
				}
				if !asJSON {
					fmt.Fprintf(cmd.OutOrStdout(), "OK: %s\n", rep.Logged)
				}
			}
			rep.OK = true
			if asJSON {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&regPath, "registration", "", "registration file (default IN.registration.json)")
	cmd.Flags().StringVar(&logKey, "log-key", "", "also check the registration's transparency-log inclusion proof against this log verifier key (file or key text)")
	cmd.Flags().StringVar(&proofPath, "proof", "", "the inclusion proof (default REG.proof.json, as seal --log writes it)")
	cmd.Flags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	return cmd
}

// timelockVerification is what `kura timelock verify --json` prints.
type timelockVerification struct {
	OK           bool                `json:"ok"`
	Error        string              `json:"error,omitempty"`
	File         string              `json:"file"`
	Registration string              `json:"registration"`
	FileVerified bool                `json:"file_verified"`
	SealedSHA256 string              `json:"sealed_sha256,omitempty"`
	ChainHash    string              `json:"chain_hash,omitempty"`
	Round        uint64              `json:"round,omitempty"`
	ReleaseTime  *time.Time          `json:"release_time,omitempty"`
	Logged       *loggedRegistration `json:"logged,omitempty"`
}

// loggedRegistration is where and when the transparency log recorded a
// time-lock registration.
type loggedRegistration struct {
	Origin        string    `json:"origin"`
	Index         uint64    `json:"index"`
	LoggedAt      time.Time `json:"logged_at"`
	BeforeRelease bool      `json:"before_release"`
	Proof         string    `json:"proof"`
}

func (l *loggedRegistration) String() string {
	when := "before"
	if !l.BeforeRelease {
		when = "AFTER"
	}
	return fmt.Sprintf("registered in transparency log %s at index %d on %s, %s its release time", l.Origin, l.Index, l.LoggedAt.Format(time.RFC3339), when)
}

// writeAtomic writes path through a temporary file in its directory,
// renamed into place only when write succeeds.
func writeAtomic(path string, mode os.FileMode, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if err = write(tmp); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func newBeaconCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "beacon",
		Short: "Local drand beacons for development",
	}
	var (
		dev    bool
		addr   string
		period time.Duration
	)
	serve := &cobra.Command{
		Use:   "serve --dev",
		Short: "Serve an INSECURE single-key drand beacon (quicknet scheme) for development",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			if !dev {
				return usagef("beacon serve runs only an INSECURE dev beacon: pass --dev to confirm")
			}
			b, err := beacon.New(beacon.Config{Period: period, Logger: log})
			if err != nil {
				return usageError{err}
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "INSECURE dev beacon\nchain hash: %s\nurl: http://%s\n", b.ChainHash(), ln.Addr())
			return b.Serve(cmd.Context(), ln)
		},
	}
	serve.Flags().BoolVar(&dev, "dev", false, "required: confirm this beacon is INSECURE")
	serve.Flags().StringVar(&addr, "addr", "127.0.0.1:8090", "listen address")
	serve.Flags().DurationVar(&period, "period", time.Second, "time between rounds (whole seconds)")
	cmd.AddCommand(serve)
	return cmd
}

// verifyRegistrationProof checks, offline, that the registration's sealed
// file digest and release time are in the transparency log, and says when
// the log recorded them.
func verifyRegistrationProof(proofPath, logKey string, reg *timelock.Registration) (string, error) {
	l, err := registrationLogged(proofPath, logKey, reg)
	if err != nil {
		return "", err
	}
	return l.String(), nil
}

// registrationLogged is verifyRegistrationProof's finding, as data.
func registrationLogged(proofPath, logKey string, reg *timelock.Registration) (*loggedRegistration, error) {
	data, err := readInput("--proof", proofPath)
	if err != nil {
		return nil, err
	}
	v, err := loadLogKey(logKey)
	if err != nil {
		return nil, err
	}
	p, cp, e, err := verifyLoggedEntry(v, data)
	if err != nil {
		return nil, err
	}
	if e.Kind != auditlog.KindTimelockRegistration || e.Subject != "sha256:"+reg.SealedSHA256 || !e.NotBefore.Equal(reg.ReleaseTime) {
		return nil, fmt.Errorf("%w: the logged entry (%s, %s, not before %s) is not this registration", auditlog.ErrNotIncluded, e.Kind, e.Subject, e.NotBefore.Format(time.RFC3339))
	}
	return &loggedRegistration{Origin: cp.Origin, Index: p.Index, LoggedAt: e.Time, BeforeRelease: e.Time.Before(reg.ReleaseTime), Proof: proofPath}, nil
}

// loadLogKey reads a log's verifier key from a file or the key text.
func loadLogKey(logKey string) (note.Verifier, error) {
	text := logKey
	if data, err := os.ReadFile(logKey); err == nil {
		text = strings.TrimSpace(string(data))
	}
	v, err := auditlog.ParseVerifierKey(text)
	if err != nil {
		return nil, usagef("--log-key: %w", err)
	}
	return v, nil
}

// verifyLoggedEntry checks, offline, an inclusion proof against the log
// key v and returns the proof, its checkpoint and the entry.
func verifyLoggedEntry(v note.Verifier, proof []byte) (*auditlog.Proof, *flog.Checkpoint, *auditlog.Entry, error) {
	p, err := auditlog.ParseProof(proof)
	if err != nil {
		return nil, nil, nil, err
	}
	cp, err := auditlog.VerifyProof(p, v)
	if err != nil {
		return nil, nil, nil, err
	}
	e, err := auditlog.ParseEntry(p.Entry)
	if err != nil {
		return nil, nil, nil, err
	}
	return p, cp, e, nil
}
