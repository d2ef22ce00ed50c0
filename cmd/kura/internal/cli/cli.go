// Package cli implements the kura command line: one cobra command tree
// whose commands are thin wrappers over the domain packages. It is the only
// place besides main that reads flags and KURA_* environment variables, and
// it maps domain errors to exit codes once, in Run.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/timelock"
)

// Exit codes. They are part of the CLI's interface (docs/spec/attestation.md §9);
// exitCodes derives them from the kind of failure (internal/fault).
const (
	ExitOK          = 0
	ExitFailure     = 1  // anything not listed below
	ExitUsage       = 2  // bad flags or arguments (fault.BadRequest)
	ExitBadEvidence = 3  // bad signature or certificate chain, untrusted root, malformed evidence, binding mismatch; a result or receipt that does not verify (fault.Malformed, BadSignature, Untrusted)
	ExitCollateral  = 4  // collateral unavailable or expired; a drand chain unreachable (fault.Unavailable, Expired)
	ExitPolicy      = 5  // policy violation, or a wrong, expired or replayed nonce (fault.Denied, Stale)
	ExitDataAuth    = 6  // sealed data tampered with, truncated or malformed, docs/spec/dataset.md §6 (fault.Tampered)
	ExitWrongKey    = 7  // wrong data key, not a recipient, or an unusable key file (fault.WrongKey)
	ExitDataInvalid = 8  // input does not match the schema, or an invalid manifest or collaboration file (fault.Invalid)
	ExitAuditFailed = 9  // the transparency log does not verify: bad signature, tampered, inconsistent (forked) or entry not included
	ExitTooEarly    = 10 // a time-locked file or resource asked for before its release time (fault.TooEarly)
)

// Env is the process environment the CLI runs in.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// usageError marks errors in how the command was invoked. It is of kind
// fault.BadRequest and hides what it wraps from errors.Is: a file named by a
// flag that does not parse is a usage error, whatever its own kind.
type usageError struct{ error }

// Unwrap returns fault.BadRequest only.
func (usageError) Unwrap() error { return fault.BadRequest }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// errPolicy is returned when verification succeeded but a policy check failed.
var errPolicy = attestation.ErrPolicyDenied

// Run runs the kura command line and returns the process exit code.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	root := newRoot(&env)
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(env.Stderr, "kura: %v\n", err)
	if isUsage(err) {
		fmt.Fprintln(env.Stderr, "Run 'kura --help' for usage.")
	}
	return exitCode(err)
}

// isUsage reports whether err is about how kura was invoked (a usagef
// error or one of cobra's own), not a failure while running: only those
// are followed by the pointer to --help.
func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u) || (fault.Sentinel(err) == nil && isCobraUsage(err))
}

// exitCodes is the one table from kinds of failure (internal/fault) to exit
// codes.
var exitCodes = [...]int{
	fault.Internal:        ExitFailure,
	fault.Malformed:       ExitBadEvidence,
	fault.Invalid:         ExitDataInvalid,
	fault.BadRequest:      ExitUsage,
	fault.Unsupported:     ExitFailure,
	fault.BadSignature:    ExitBadEvidence,
	fault.Untrusted:       ExitBadEvidence,
	fault.Tampered:        ExitDataAuth,
	fault.WrongKey:        ExitWrongKey,
	fault.Expired:         ExitCollateral,
	fault.Stale:           ExitPolicy,
	fault.Denied:          ExitPolicy,
	fault.Unauthenticated: ExitFailure,
	fault.NotFound:        ExitFailure,
	fault.Conflict:        ExitFailure,
	fault.Unavailable:     ExitCollateral,
	fault.Busy:            ExitFailure,
	fault.RateLimited:     ExitFailure,
	fault.TooEarly:        ExitTooEarly,
}

// exitCode maps err to an exit code by the kind of its outermost sentinel
// (fault.Sentinel), except where the code names the object rather than the
// failure: any failure of the transparency log to verify is ExitAuditFailed,
// and a time-locked file that does not parse is damaged (ExitDataAuth), as
// a sealed dataset's header is. Unclassified cobra errors are usage errors.
func exitCode(err error) int {
	s := fault.Sentinel(err)
	switch {
	case s == nil:
		if isCobraUsage(err) {
			return ExitUsage
		}
		return ExitFailure
	case auditlog.IsVerificationFailure(s):
		return ExitAuditFailed
	case s == timelock.ErrMalformed:
		return ExitDataAuth
	}
	if k := fault.KindOf(s); int(k) < len(exitCodes) {
		return exitCodes[k]
	}
	return ExitFailure
}

// isCobraUsage recognises cobra's own argument and flag errors.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// globals are the flags every command shares.
type globals struct {
	env       *Env
	logLevel  string
	logFormat string
}

func (g *globals) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(g.env.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(g.env.Stderr, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", g.logFormat)
}

// envDefault returns the KURA_* environment value for name, or def.
func (g *globals) envDefault(name, def string) string {
	if v := g.env.Getenv(name); v != "" {
		return v
	}
	return def
}

func newRoot(env *Env) *cobra.Command {
	g := &globals{env: env}
	root := &cobra.Command{
		Use:           "kura",
		Short:         "kura: compute on data nobody else may see, and prove it",
		Long:          "kura is a confidential-computing platform: it verifies TEE attestation evidence and issues signed\nattestation results (EAR). Run 'kura demo' for a tour.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", g.envDefault("KURA_LOG_LEVEL", "info"), "log level: debug, info, warn or error (KURA_LOG_LEVEL)")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", g.envDefault("KURA_LOG_FORMAT", "text"), "log format: text or json (KURA_LOG_FORMAT)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newDemoCmd(g),
		newAttestCmd(g),
		newVerifierCmd(g),
		newServeCmd(g),
		newKBSCmd(g),
		newSecretCmd(g),
		newPolicyCmd(g),
		newDataCmd(g),
		newPartyCmd(g),
		newBenchCmd(g),
		newRunCmd(g),
		newCollabCmd(g),
		newAuditCmd(g),
		newWorkerCmd(g),
		newResultCmd(g),
		newReceiptCmd(g),
		newScenarioCmd(),
		newTimelockCmd(g),
		newAICmd(g),
		newBeaconCmd(g),
		newMPCCmd(g),
		newVersionCmd(),
	)
	requireSubcommand(root)
	return root
}

// Version is kura's version, reported in tokens and by `kura version`.
const Version = "0.1.0-dev"

// requireSubcommand makes every command group refuse an unknown subcommand
// as a usage error (cobra would print the group's help and exit 0).
func requireSubcommand(c *cobra.Command) {
	for _, sub := range c.Commands() {
		requireSubcommand(sub)
	}
	if c.Runnable() || !c.HasSubCommands() || c.Parent() == nil {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
		}
		return cmd.Help()
	}
}
