package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/auditlog"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "The transparency log: verify it, list and show entries, create its key",
		Long: `kura's transparency log records every approval, key release, run, result and deletion receipt
(docs/spec/auditlog.md). Anyone with the log's verifier key checks it without trusting the operator:
'kura audit verify' checks the signed checkpoint, its consistency with the last one seen, inclusion
of entries or proofs, and with --full re-hashes every entry.`,
	}
	cmd.AddCommand(newAuditKeygenCmd(), newAuditVerifyCmd(g), newAuditLsCmd(g), newAuditShowCmd(g), newAuditAppendCmd(g), newAuditWitnessCmd(g))
	return cmd
}

func newAuditKeygenCmd() *cobra.Command {
	var out, origin string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "keygen -o FILE",
		Short: "Create a log (or witness) signing key (FILE, 0600) and its verifier key (FILE.pub)",
		Long: `Create an Ed25519 signed-note key named after the log's origin. FILE holds the private key
(mode 0600; the log server signs checkpoints with it); FILE.pub holds the verifier key, which is
public: give it to everyone who verifies the log. The verifier key is also printed; --json prints
{private_key_file, verifier_key_file, verifier_key}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("-o FILE is required")
			}
			k, vkey, err := auditlog.GenerateKey(origin)
			if err != nil {
				return usageError{err}
			}
			if err := k.WriteFile(out); err != nil {
				return err
			}
			if err := os.WriteFile(out+".pub", []byte(vkey+"\n"), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (secret) and %s (share it)\n", out, out+".pub")
			if asJSON {
				return printJSON(cmd.OutOrStdout(), logKeyFiles{PrivateKeyFile: out, VerifierKeyFile: out + ".pub", VerifierKey: vkey})
			}
			fmt.Fprintln(cmd.OutOrStdout(), vkey)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "private key file to create")
	cmd.Flags().StringVar(&origin, "origin", auditlog.DefaultOrigin, "the log's origin: the key name and the checkpoints' first line (no spaces or '+')")
	cmd.Flags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	return cmd
}

// logKeyFiles is what `kura audit keygen --json` prints.
type logKeyFiles struct {
	PrivateKeyFile  string `json:"private_key_file"`
	VerifierKeyFile string `json:"verifier_key_file"`
	VerifierKey     string `json:"verifier_key"`
}

// auditLogFlags are the flags that name a log and its verifier key.
type auditLogFlags struct {
	log, key string
	cl       clientFlags
}

func (f *auditLogFlags) register(g *globals, cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.log, "log", "", "the log: a directory or the http(s) URL it is served under (e.g. https://host/log/)")
	cmd.Flags().StringVar(&f.key, "key", "", "the log's verifier key: a file or the key text (name+hash+base64)")
	f.cl.g = g
	f.cl.addCA(cmd, false)
}

func (f *auditLogFlags) reader() (*auditlog.Reader, string, error) {
	if f.log == "" || f.key == "" {
		return nil, "", usagef("--log and --key are required")
	}
	text, err := keyText(f.key)
	if err != nil {
		return nil, "", err
	}
	v, err := auditlog.ParseVerifierKey(text)
	if err != nil {
		return nil, "", usagef("--key: %w", err)
	}
	hc, err := f.cl.resolve()
	if err != nil {
		return nil, "", err
	}
	r, err := auditlog.NewReader(f.log, v, hc)
	if err != nil {
		return nil, "", err
	}
	return r, text, nil
}

// keyText returns the key in a file, or s itself if no such file exists.
func keyText(s string) (string, error) {
	b, err := os.ReadFile(s)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if os.IsNotExist(err) && strings.Contains(s, "+") {
		return strings.TrimSpace(s), nil
	}
	return "", usagef("key %q: not a readable file nor a key text", s)
}

// defaultAuditState is where verify remembers a log's checkpoint:
// $XDG_STATE_HOME/kura/audit/<hash of the verifier key>/checkpoint.
func (g *globals) defaultAuditState(vkey string) (string, error) {
	base := g.env.Getenv("XDG_STATE_HOME")
	if base == "" {
		home := g.env.Getenv("HOME")
		if home == "" {
			return "", usagef("cannot find a state directory (set XDG_STATE_HOME or HOME, or pass --state FILE)")
		}
		base = filepath.Join(home, ".local", "state")
	}
	h := sha256.Sum256([]byte(vkey))
	return filepath.Join(base, "kura", "audit", hex.EncodeToString(h[:8]), "checkpoint"), nil
}

func newAuditVerifyCmd(g *globals) *cobra.Command {
	var (
		lf          auditLogFlags
		state       string
		noState     bool
		full        bool
		indexes     []uint
		proofs      []string
		witnessKeys []string
		threshold   int
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "verify --log DIR|URL --key KEY",
		Short: "Verify the log: checkpoint signature, consistency, inclusion, and with --full every entry",
		Long: `Verify the log without trusting its operator:
  - the checkpoint is signed by the log's key (--key);
  - it extends the checkpoint this machine saw last (kept under $XDG_STATE_HOME/kura/audit/,
    or --state FILE); the first time, the checkpoint is trusted on first use and remembered;
  - --witness-key K (repeatable) with --witness-threshold N: at least N of those witnesses
    cosigned it (C2SP tlog-cosignature);
  - --index N (repeatable): entry N is included; --proof FILE (repeatable): a proof from a result
    bundle or receipt verifies and its checkpoint is consistent with the log's;
  - --full: every entry is fetched and re-hashed to the signed root, so a modified or removed
    entry is detected.
Any failure is an error naming what failed (exit 9 when the log does not verify).

--json prints one document: {ok, error (when not ok), log, origin, size, root (hex),
signature_verified, witnesses: {checked, valid, required, keys}, consistency ("extends",
"first_use" or "not_checked"), previous_size, state (the file remembering the checkpoint),
included: [N...], proofs_verified, full_audit}; a failure still prints it, with ok false.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, vkey, err := lf.reader()
			if err != nil {
				return err
			}
			opts := auditlog.VerifyOptions{Full: full, WitnessThreshold: threshold}
			if !noState {
				if opts.StatePath = state; state == "" {
					if opts.StatePath, err = g.defaultAuditState(vkey); err != nil {
						return err
					}
				}
			}
			for _, k := range witnessKeys {
				text, err := keyText(k)
				if err != nil {
					return err
				}
				v, err := auditlog.ParseWitnessKey(text)
				if err != nil {
					return usagef("--witness-key: %w", err)
				}
				opts.Witnesses = append(opts.Witnesses, v)
			}
			if threshold > len(opts.Witnesses) || threshold < 0 {
				return usagef("--witness-threshold %d with %d --witness-key", threshold, len(opts.Witnesses))
			}
			if len(opts.Witnesses) > 0 && threshold == 0 {
				opts.WitnessThreshold = len(opts.Witnesses)
			}
			for _, i := range indexes {
				opts.Indexes = append(opts.Indexes, uint64(i))
			}
			for _, f := range proofs {
				b, err := readLimitedFile(f, auditlog.MaxProofSize)
				if err != nil {
					return err
				}
				p, err := auditlog.ParseProof(b)
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				opts.Proofs = append(opts.Proofs, p)
			}
			rep, err := r.Verify(cmd.Context(), opts)
			w := cmd.OutOrStdout()
			if asJSON {
				if perr := printJSON(w, auditVerificationOf(rep, opts, err)); perr != nil {
					return perr
				}
				if err != nil {
					return fmt.Errorf("audit log verification FAILED: %w", err)
				}
				return nil
			}
			if rep != nil {
				fmt.Fprintf(w, "log:          %s\norigin:       %s\nsize:         %d\nroot:         %x\nsignature:    ok\n", rep.Source, rep.Origin, rep.Size, rep.Root)
			}
			if err != nil {
				return fmt.Errorf("audit log verification FAILED: %w", err)
			}
			switch {
			case len(opts.Witnesses) > 0:
				fmt.Fprintf(w, "witnesses:    %d valid cosignatures (%d of %d required)\n", rep.Witnessed, opts.WitnessThreshold, len(opts.Witnesses))
			default:
				fmt.Fprintln(w, "witnesses:    not checked (no --witness-key)")
			}
			switch {
			case opts.StatePath == "":
				fmt.Fprintln(w, "consistency:  not checked (--no-state)")
			case rep.FirstUse:
				fmt.Fprintf(w, "consistency:  first use: this checkpoint is trusted on first use and remembered in %s\n", opts.StatePath)
			default:
				fmt.Fprintf(w, "consistency:  extends the checkpoint seen before (size %d)\n", rep.PreviousSize)
			}
			if len(rep.Included) > 0 {
				fmt.Fprintf(w, "included:     %s\n", joinUints(rep.Included))
			}
			if len(proofs) > 0 {
				fmt.Fprintf(w, "proofs:       %d verified, consistent with the log\n", rep.ProofsVerified)
			}
			if rep.FullAudit {
				fmt.Fprintf(w, "full audit:   all %d entries re-hashed to the signed root\n", rep.Size)
			} else {
				fmt.Fprintln(w, "full audit:   not run (--full re-hashes every entry)")
			}
			fmt.Fprintln(w, "OK")
			return nil
		},
	}
	lf.register(g, cmd)
	cmd.Flags().StringVar(&state, "state", "", "file remembering the last verified checkpoint (default under $XDG_STATE_HOME/kura/audit/)")
	cmd.Flags().BoolVar(&noState, "no-state", false, "do not remember or compare checkpoints")
	cmd.Flags().BoolVar(&full, "full", false, "re-hash every entry against the signed root")
	cmd.Flags().UintSliceVar(&indexes, "index", nil, "check that entry N is included (repeatable)")
	cmd.Flags().StringArrayVar(&proofs, "proof", nil, "verify a proof JSON file (repeatable)")
	cmd.Flags().StringArrayVar(&witnessKeys, "witness-key", nil, "a witness's verifier key, file or text (repeatable)")
	cmd.Flags().IntVar(&threshold, "witness-threshold", 0, "witness cosignatures required (default: all --witness-key)")
	cmd.Flags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	return cmd
}

// auditVerification is what `kura audit verify --json` prints.
type auditVerification struct {
	OK                bool             `json:"ok"`
	Error             string           `json:"error,omitempty"`
	Log               string           `json:"log,omitempty"`
	Origin            string           `json:"origin,omitempty"`
	Size              uint64           `json:"size"`
	Root              string           `json:"root,omitempty"`
	SignatureVerified bool             `json:"signature_verified"`
	Witnesses         witnessesChecked `json:"witnesses"`
	Consistency       string           `json:"consistency,omitempty"`
	PreviousSize      uint64           `json:"previous_size,omitempty"`
	State             string           `json:"state,omitempty"`
	Included          []uint64         `json:"included"`
	ProofsVerified    int              `json:"proofs_verified"`
	FullAudit         bool             `json:"full_audit"`
}

// witnessesChecked is the witness part of auditVerification.
type witnessesChecked struct {
	Checked  bool `json:"checked"`
	Valid    int  `json:"valid"`
	Required int  `json:"required"`
	Keys     int  `json:"keys"`
}

// auditVerificationOf describes a verification: rep is nil when the
// checkpoint could not be verified at all; err is why it failed.
func auditVerificationOf(rep *auditlog.Report, opts auditlog.VerifyOptions, err error) auditVerification {
	v := auditVerification{OK: err == nil, Included: []uint64{}}
	if err != nil {
		v.Error = err.Error()
	}
	if rep == nil {
		return v
	}
	v.Log, v.Origin, v.Size, v.Root, v.SignatureVerified = rep.Source, rep.Origin, rep.Size, hex.EncodeToString(rep.Root), true
	if err != nil {
		return v // what follows the signature is unknown
	}
	v.Witnesses = witnessesChecked{Checked: len(opts.Witnesses) > 0, Valid: rep.Witnessed, Required: opts.WitnessThreshold, Keys: len(opts.Witnesses)}
	switch {
	case opts.StatePath == "":
		v.Consistency = "not_checked"
	case rep.FirstUse:
		v.Consistency, v.State = "first_use", opts.StatePath
	default:
		v.Consistency, v.State, v.PreviousSize = "extends", opts.StatePath, rep.PreviousSize
	}
	if rep.Included != nil {
		v.Included = rep.Included
	}
	v.ProofsVerified, v.FullAudit = rep.ProofsVerified, rep.FullAudit
	return v
}

func joinUints(xs []uint64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatUint(x, 10)
	}
	return strings.Join(s, ", ")
}

func readLimitedFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

// loggedEntry is one line of `kura audit ls --json`.
type loggedEntry struct {
	Index uint64          `json:"index"`
	Entry *auditlog.Entry `json:"entry"`
}

func newAuditLsCmd(g *globals) *cobra.Command {
	var (
		lf                    auditLogFlags
		kind, collab, partyFP string
		since, until          string
		brokerSeq             int64
		asJSON                bool
	)
	cmd := &cobra.Command{
		Use:   "ls --log DIR|URL --key KEY",
		Short: "List entries (all of them are fetched and checked against the signed root first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, _, err := lf.reader()
			if err != nil {
				return err
			}
			f := auditlog.Filter{Kind: auditlog.Kind(kind), Collaboration: collab, Party: partyFP, BrokerSeq: brokerSeq}
			if kind != "" && !isKind(f.Kind) {
				return usagef("--kind %q: want one of %v", kind, auditlog.Kinds())
			}
			for _, t := range []struct {
				flag, v string
				to      *time.Time
			}{{"since", since, &f.Since}, {"until", until, &f.Until}} {
				if t.v == "" {
					continue
				}
				if *t.to, err = time.Parse(time.RFC3339, t.v); err != nil {
					return usagef("--%s %q: want RFC 3339, e.g. 2026-05-01T00:00:00Z", t.flag, t.v)
				}
			}
			_, cp, err := r.Checkpoint(cmd.Context())
			if err != nil {
				return fmt.Errorf("audit log verification FAILED: %w", err)
			}
			var hits []loggedEntry
			var bad error
			err = r.Audit(cmd.Context(), cp, func(i uint64, raw []byte) error {
				e, err := auditlog.ParseEntry(raw)
				if err != nil {
					if bad == nil {
						bad = fmt.Errorf("entry %d: %w", i, err)
					}
					return nil
				}
				if f.Match(e) {
					hits = append(hits, loggedEntry{Index: i, Entry: e})
				}
				return nil
			})
			if err == nil {
				err = bad
			}
			if err != nil {
				return fmt.Errorf("audit log verification FAILED: %w", err)
			}
			w := cmd.OutOrStdout()
			for _, h := range hits {
				if asJSON {
					b, err := json.Marshal(h)
					if err != nil {
						return err
					}
					fmt.Fprintf(w, "%s\n", b)
					continue
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", h.Index, h.Entry.Time.Format(time.RFC3339), h.Entry.Kind, summary(h.Entry))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d of %d entries; all %d verified against the signed checkpoint\n", len(hits), cp.Size, cp.Size)
			return nil
		},
	}
	lf.register(g, cmd)
	cmd.Flags().StringVar(&kind, "kind", "", "only entries of this kind")
	cmd.Flags().StringVar(&collab, "collab", "", "only entries of this collaboration (its manifest versions, approvals, runs, results, receipts and the key releases to its runs)")
	cmd.Flags().StringVar(&partyFP, "party", "", "only entries of this party (fingerprint)")
	cmd.Flags().StringVar(&since, "since", "", "only entries at or after this time (RFC 3339)")
	cmd.Flags().StringVar(&until, "until", "", "only entries before this time (RFC 3339)")
	cmd.Flags().Int64Var(&brokerSeq, "broker-seq", 0, "only the key-release entry of this broker decision (the Kura-Audit-Seq header of its answer)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line: {\"index\":N,\"entry\":{...}}")
	return cmd
}

func isKind(k auditlog.Kind) bool {
	for _, x := range auditlog.Kinds() {
		if x == k {
			return true
		}
	}
	return false
}

// summary is the one-line description ls prints after the kind.
func summary(e *auditlog.Entry) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("decision", e.Decision)
	add("resource", e.Resource)
	add("reason", e.Reason)
	add("collab", e.Collaboration)
	add("run", e.Run)
	add("analysis", e.Analysis)
	add("manifest", e.Manifest)
	add("party", e.Party)
	add("subject", e.Subject)
	add("policy", e.PolicyID)
	return strings.Join(parts, " ")
}

func newAuditShowCmd(g *globals) *cobra.Command {
	var (
		lf       auditLogFlags
		proofOut string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "show --log DIR|URL --key KEY INDEX",
		Short: "Show one entry with its verified inclusion proof",
		Long: `Show entry INDEX of the log, after checking the signed checkpoint and the entry's inclusion
proof against it (exit 9 when they do not verify).

--json prints {index, log_size, proof_hashes, entry (the entry as logged, docs/spec/auditlog.md §2),
proof_file (with --proof-out)}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil {
				return usagef("INDEX %q: want an entry number", args[0])
			}
			r, _, err := lf.reader()
			if err != nil {
				return err
			}
			raw, cp, err := r.Checkpoint(cmd.Context())
			if err == nil {
				var p *auditlog.Proof
				if p, err = r.Prove(cmd.Context(), i, raw, cp); err == nil {
					return showProof(cmd, p, cp.Size, proofOut, asJSON)
				}
			}
			return fmt.Errorf("audit log verification FAILED: %w", err)
		},
	}
	lf.register(g, cmd)
	cmd.Flags().StringVar(&proofOut, "proof-out", "", "also write the proof JSON to this file (for 'kura audit verify --proof')")
	cmd.Flags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	return cmd
}

// shownEntry is what `kura audit show --json` prints.
type shownEntry struct {
	Index       uint64          `json:"index"`
	LogSize     uint64          `json:"log_size"`
	ProofHashes int             `json:"proof_hashes"`
	Entry       json.RawMessage `json:"entry"`
	ProofFile   string          `json:"proof_file,omitempty"`
}

func showProof(cmd *cobra.Command, p *auditlog.Proof, size uint64, out string, asJSON bool) error {
	w := cmd.OutOrStdout()
	if out != "" {
		b, err := p.MarshalJSON()
		if err != nil {
			return err
		}
		if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if asJSON {
		return printJSON(w, shownEntry{Index: p.Index, LogSize: size, ProofHashes: len(p.Inclusion), Entry: p.Entry, ProofFile: out})
	}
	fmt.Fprintf(w, "index:     %d\nincluded:  yes, in the signed checkpoint of size %d (%d proof hashes)\nentry:     %s\n", p.Index, size, len(p.Inclusion), p.Entry)
	return nil
}

func newAuditAppendCmd(g *globals) *cobra.Command {
	var (
		dir, keyFile, proofOut string
		asJSON                 bool
	)
	cmd := &cobra.Command{
		Use:   "append --log DIR --signer KEYFILE ENTRY.json",
		Short: "Append an entry to a local log (operator tool; the server appends its own entries)",
		Long: `Append one entry (JSON, docs/spec/auditlog.md §2; "-" reads stdin) to the log in DIR, signing
checkpoints with the private key in KEYFILE (mode 0600), wait until a checkpoint covers it and print
its index. For events recorded by hand, e.g. a reference_values_change. Do not run it while a
server writes the same directory. --json prints {log, index, proof_file (with --proof-out)}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" || keyFile == "" {
				return usagef("--log DIR and --signer KEYFILE are required")
			}
			var b []byte
			var err error
			if args[0] == "-" {
				b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), auditlog.MaxEntrySize+1))
			} else {
				b, err = readLimitedFile(args[0], auditlog.MaxEntrySize)
			}
			if err != nil {
				return err
			}
			e, err := auditlog.DecodeEntryJSON(b)
			if err != nil {
				return usagef("%s: %w", args[0], err)
			}
			k, err := auditlog.LoadSignerKey(keyFile)
			if err != nil {
				return err
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			l, err := auditlog.Open(cmd.Context(), auditlog.Config{Dir: dir, Key: k, Logger: log})
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			p, err := l.AppendAndProve(ctx, e)
			closeCtx, cancelClose := context.WithTimeout(context.WithoutCancel(cmd.Context()), 30*time.Second)
			defer cancelClose()
			if cerr := l.Close(closeCtx); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if proofOut != "" {
				pb, err := p.MarshalJSON()
				if err != nil {
					return err
				}
				if err := os.WriteFile(proofOut, append(pb, '\n'), 0o644); err != nil {
					return err
				}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), appendedEntry{Log: dir, Index: p.Index, ProofFile: proofOut})
			}
			fmt.Fprintln(cmd.OutOrStdout(), p.Index)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "log", "", "log directory (created if missing)")
	cmd.Flags().StringVar(&keyFile, "signer", "", "the log's private key file (from 'kura audit keygen')")
	cmd.Flags().StringVar(&proofOut, "proof-out", "", "also write the entry's proof JSON to this file")
	cmd.Flags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	return cmd
}

// appendedEntry is what `kura audit append --json` prints.
type appendedEntry struct {
	Log       string `json:"log"`
	Index     uint64 `json:"index"`
	ProofFile string `json:"proof_file,omitempty"`
}
