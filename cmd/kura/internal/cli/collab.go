package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/kura-cc/kura/analysis"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/party"
)

func newCollabCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "collab", Short: "Clean-room collaborations: manifests, their history and the parties' approvals"}
	cmd.AddCommand(newCollabCreateCmd(g), newCollabUpdateCmd(g), newCollabShowCmd(), newCollabApproveCmd(g), newCollabStatusCmd(), newCollabPushCmd(g), newCollabPullCmd(g), newCollabRevokeCmd(g), newCollabBudgetCmd(g))
	return cmd
}

func newCollabCreateCmd(g *globals) *cobra.Command {
	var out string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create MANIFEST.yaml -o FILE",
		Short: "Validate a manifest and start a collaboration file with it as version 1",
		Long: `Validate a manifest (docs/spec/manifest.md), inline the party cards (card_file) and dataset
descriptors (descriptor_file) it names, relative to the manifest, and write a collaboration
file holding it as version 1. Refuses to overwrite FILE, and refuses (exit 8) a manifest whose
analyses the worker would refuse (docs/spec/analysis.md §4): custom SQL that outputs identity
or join columns, reads files, uses * or is not a single SELECT, naming the offending expression.
Warns about weak output policies. Every data provider then approves with kura collab approve.`,
		Example: `  kura collab create airline-carrier.yaml -o airline-carrier.collab.json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("give the collaboration file to write with -o FILE")
			}
			m, err := loadManifestArg(args[0])
			if err != nil {
				return err
			}
			c, err := collab.New(m)
			if err != nil {
				return err
			}
			if err := checkAnalyses(cmd, g, m, "collaboration refused"); err != nil {
				return err
			}
			if err := writeCollab(out, c, false); err != nil {
				return err
			}
			if log, err := g.logger(); err == nil {
				log.Info("collaboration created", "collaboration", c.ID, "manifest", m.Hash(), "file", out)
			}
			if asJSON {
				st := collabStateOf(c, out)
				st.Parties = c.Status()
				return printJSON(cmd.OutOrStdout(), st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created %s: collaboration %s version 1 %s\n", out, c.ID, collab.DisplayHash(m.Hash()))
			printStatus(cmd.OutOrStdout(), c)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "collaboration file to write (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, collabJSONHelp+", and each party's state (parties, as collab status --json)")
	return cmd
}

// checkAnalyses runs the static check of m's analyses (analysis.Check)
// before anything is written, logging a refusal with its reason, and
// prints warnings about weak output policies to stderr.
func checkAnalyses(cmd *cobra.Command, g *globals, m *collab.Manifest, refused string) error {
	if err := analysis.Check(cmd.Context(), m); err != nil {
		if log, lerr := g.logger(); lerr == nil {
			log.Warn(refused, "collaboration", m.ID, "reason", err)
		}
		return err
	}
	for _, w := range analysis.PolicyWarnings(m) {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
	}
	warnSimMeasurement(cmd.ErrOrStderr(), m)
	return nil
}

func loadManifestArg(path string) (*collab.Manifest, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, usagef("%s: %w", path, err)
	}
	m, err := collab.LoadManifest(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

func newCollabUpdateCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "update FILE MANIFEST.yaml",
		Short: "Append a new manifest version, chained to the current one",
		Long: `Validate MANIFEST.yaml and append it to the collaboration as the next version, chained to the
current one by its hash (previous: may be left out; when given it must be the current hash).
Prints which parties must approve again: those whose data the change touches. Refuses (exit 8)
analyses the worker would refuse and warns about weak output policies, as create does.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := readCollab(args[0])
			if err != nil {
				return err
			}
			m, err := loadManifestArg(args[1])
			if err != nil {
				return err
			}
			if m.Previous == "" {
				m.Previous = c.Current().Hash()
			}
			if err := c.AddVersion(m); err != nil {
				return err
			}
			if err := checkAnalyses(cmd, g, m, "manifest version refused"); err != nil {
				return err
			}
			if err := writeCollab(args[0], c, true); err != nil {
				return err
			}
			if log, err := g.logger(); err == nil {
				log.Info("collaboration updated", "collaboration", c.ID, "version", len(c.Versions), "manifest", m.Hash())
			}
			if asJSON {
				st := collabStateOf(c, args[0])
				st.Parties = c.Status()
				return printJSON(cmd.OutOrStdout(), st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "updated %s: collaboration %s version %d %s\n", args[0], c.ID, len(c.Versions), collab.DisplayHash(m.Hash()))
			printStatus(cmd.OutOrStdout(), c)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, collabJSONHelp+", and each party's state (parties, as collab status --json)")
	return cmd
}

func newCollabShowCmd() *cobra.Command {
	var version int
	var asJSON, asYAML bool
	cmd := &cobra.Command{
		Use:   "show FILE [--version N] [--json|--yaml]",
		Short: "Print a manifest version and its hash",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON && asYAML {
				return usagef("give --json or --yaml, not both")
			}
			c, err := readCollab(args[0])
			if err != nil {
				return err
			}
			if version == 0 {
				version = len(c.Versions)
			}
			m := c.Version(version)
			if m == nil {
				return usagef("--version %d: the collaboration has versions 1 to %d", version, len(c.Versions))
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					Version  int              `json:"version"`
					Hash     string           `json:"hash"`
					Manifest *collab.Manifest `json:"manifest"`
				}{version, m.Hash(), m})
			}
			y, err := manifestYAML(m)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "# collaboration %s, version %d of %d\n# %s\n", c.ID, version, len(c.Versions), collab.DisplayHash(m.Hash()))
			_, err = out.Write(y)
			return err
		},
	}
	cmd.Flags().IntVar(&version, "version", 0, "version to show (default: the current one)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print {version, hash, manifest} as JSON")
	cmd.Flags().BoolVar(&asYAML, "yaml", false, "print the manifest as YAML (the default)")
	return cmd
}

// manifestYAML renders a manifest as block YAML in field order.
func manifestYAML(m *collab.Manifest) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return nil, err
	}
	var plain func(*yaml.Node)
	plain = func(n *yaml.Node) {
		if n.Kind != yaml.ScalarNode {
			n.Style = 0
		} else if n.Style == yaml.DoubleQuotedStyle {
			n.Style = 0 // the encoder quotes where needed
		}
		for _, c := range n.Content {
			plain(c)
		}
	}
	plain(&n)
	return yaml.Marshal(&n)
}

func newCollabApproveCmd(g *globals) *cobra.Command {
	var identity, reviewed string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "approve FILE --identity DIR [--hash sha256:HEX]",
		Short: "Sign your approval of the collaboration's current version",
		Long: `Sign, with the party identity in DIR (kura party init), an approval of the current manifest
version: its hash and your scope digest (everything that touches your data). Read the manifest
first (kura collab show FILE). The approval is written into FILE. Refuses to sign (exit 8) a
version whose analyses the worker would refuse, naming the offending expression. With --hash,
the hash kura collab show, status or create printed for the version you reviewed, refuses
(exit 5) unless the current version is that one: a file pulled or changed since is not signed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := (&clientFlags{g: g, identity: &identity}).fill(); err != nil {
				return err
			}
			if identity == "" {
				return usagef("--identity DIR is required (the directory of kura party init)")
			}
			id, err := party.Load(identity)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return usagef("--identity: %w", err)
				}
				return err
			}
			c, err := readCollab(args[0])
			if err != nil {
				return err
			}
			if err := c.Verify(); err != nil {
				return fmt.Errorf("%s does not verify; not signing: %w", args[0], err)
			}
			if err := checkReviewed(c, reviewed); err != nil {
				if log, lerr := g.logger(); lerr == nil {
					log.Warn("approval refused", "collaboration", c.ID, "party", id.Name(), "version", len(c.Versions), "reason", err)
				}
				return fmt.Errorf("%s: not signing: %w", args[0], err)
			}
			if err := analysis.Check(cmd.Context(), c.Current()); err != nil {
				if log, lerr := g.logger(); lerr == nil {
					log.Warn("approval refused", "collaboration", c.ID, "party", id.Name(), "version", len(c.Versions), "reason", err)
				}
				return fmt.Errorf("%s: not signing: %w", args[0], err)
			}
			a, err := c.Approve(id, time.Now())
			if err != nil {
				return err
			}
			if err := writeCollab(args[0], c, true); err != nil {
				return err
			}
			if log, err := g.logger(); err == nil {
				log.Info("approval signed", "collaboration", c.ID, "party", a.Party, "version", a.Version, "manifest", a.ManifestHash, "scope", a.ScopeDigest)
			}
			if asJSON {
				st := collabStateOf(c, args[0])
				st.Approval = a
				return printJSON(cmd.OutOrStdout(), st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s approved %s version %d %s (scope sha256:%s)\n", a.Party, c.ID, a.Version, collab.DisplayHash(a.ManifestHash), a.ScopeDigest)
			return nil
		},
	}
	cmd.Flags().StringVar(&identity, "identity", g.envDefault("KURA_IDENTITY", ""), "party identity directory (kura party init -o DIR; KURA_IDENTITY; client.yaml identity)")
	cmd.Flags().BoolVar(&asJSON, "json", false, collabJSONHelp+", and the approval signed (approval)")
	cmd.Flags().StringVar(&reviewed, "hash", "", "sign only if the current manifest's hash is this one, the one you reviewed (sha256:HEX, as kura collab show prints)")
	return cmd
}

// checkReviewed returns collab.ErrNotReviewed unless reviewed is empty or
// the hash of c's current manifest, with or without its sha256: prefix.
func checkReviewed(c *collab.Collaboration, reviewed string) error {
	if reviewed == "" {
		return nil
	}
	cur := c.Current().Hash()
	if strings.TrimPrefix(strings.ToLower(reviewed), "sha256:") == cur {
		return nil
	}
	for i, m := range c.Versions {
		if strings.TrimPrefix(strings.ToLower(reviewed), "sha256:") == m.Hash() {
			return fmt.Errorf("%w: you reviewed version %d; the current version is %d %s: read it (kura collab show) and approve its hash", collab.ErrNotReviewed, i+1, len(c.Versions), collab.DisplayHash(cur))
		}
	}
	return fmt.Errorf("%w: --hash %s is no version of collaboration %s; the current version is %d %s", collab.ErrNotReviewed, reviewed, c.ID, len(c.Versions), collab.DisplayHash(cur))
}

func newCollabStatusCmd() *cobra.Command {
	var requireAll, asJSON bool
	cmd := &cobra.Command{
		Use:   "status FILE [--require-all]",
		Short: "Show which parties approved the current version",
		Long: `Verify the collaboration (hash chain and every approval's signature) and print, per party,
whether its approval covers the current version: approved (via which version), stale (since
which version, because what changed), revoked (the party withdrew it, kura collab revoke, and
has not approved since) or missing. Data providers' approvals are required for any key
release. With --require-all, exits 5 unless every data provider approved.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := readCollab(args[0])
			if err != nil {
				return err
			}
			if err := c.Verify(); err != nil {
				return err
			}
			var missing []string
			if asJSON {
				st := c.Status()
				for _, s := range st {
					if s.Required && s.State != collab.Approved {
						missing = append(missing, s.Party)
					}
				}
				out := collabStateOf(c, "")
				out.Parties, out.Missing = st, append([]string{}, missing...)
				if err := printJSON(cmd.OutOrStdout(), out); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "collaboration %s version %d %s\n", c.ID, len(c.Versions), collab.DisplayHash(c.Current().Hash()))
				missing = printStatus(cmd.OutOrStdout(), c)
			}
			if requireAll && len(missing) > 0 {
				return fmt.Errorf("%w: %w: %s", errPolicy, collab.ErrNotApproved, strings.Join(missing, ", "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&requireAll, "require-all", false, "exit 5 unless every data provider approved the current version")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {file, collaboration, version, manifest_hash, parties: [{party, required, state, via, stale_since, changes, revoked_at, reason, invalid}], missing: [data providers not approved, absent when none]}`)
	return cmd
}

// collabState is what the collab commands print with --json: the
// collaboration a file holds after the command, and the command's own
// fields.
type collabState struct {
	File          string               `json:"file,omitempty"`
	Collaboration string               `json:"collaboration"`
	Version       int                  `json:"version"`
	ManifestHash  string               `json:"manifest_hash"`
	Parties       []collab.PartyStatus `json:"parties,omitempty"`
	Missing       []string             `json:"missing,omitempty"`
	Approval      *collab.Approval     `json:"approval,omitempty"`
}

func collabStateOf(c *collab.Collaboration, file string) *collabState {
	return &collabState{File: file, Collaboration: c.ID, Version: len(c.Versions), ManifestHash: collab.DisplayHash(c.Current().Hash())}
}

// collabJSONHelp documents --json on the commands that write a
// collaboration file.
const collabJSONHelp = "print {file, collaboration, version, manifest_hash} of the file written"

// printStatus prints each party's approval state and returns the data
// providers whose approval does not cover the current version.
func printStatus(w io.Writer, c *collab.Collaboration) []string {
	var missing []string
	for _, s := range c.Status() {
		req := ""
		if s.Required {
			req = " (data provider: required)"
		}
		switch s.State {
		case collab.Approved:
			fmt.Fprintf(w, "  %-12s approved, via version %d%s\n", s.Party, s.Via, req)
		case collab.Stale:
			fmt.Fprintf(w, "  %-12s stale: approved version %d; version %d changed %s — must approve again%s\n", s.Party, s.Via, s.StaleSince, strings.Join(s.Changes, ", "), req)
		case collab.Revoked:
			why := ""
			if s.Reason != "" {
				why = fmt.Sprintf(" (%q)", s.Reason)
			}
			fmt.Fprintf(w, "  %-12s revoked at %s%s: approved version %d, then withdrew it — must approve again%s\n", s.Party, s.RevokedAt.Format(time.RFC3339), why, s.Via, req)
		default:
			fmt.Fprintf(w, "  %-12s missing%s\n", s.Party, req)
		}
		if s.Required && s.State != collab.Approved {
			missing = append(missing, s.Party)
		}
	}
	return missing
}

func readCollab(path string) (*collab.Collaboration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usagef("%s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, collab.MaxCollaborationSize+1))
	if err != nil {
		return nil, err
	}
	c, err := collab.ParseCollaboration(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// writeCollab writes the collaboration file atomically; without replace it
// refuses an existing file.
func writeCollab(path string, c *collab.Collaboration, replace bool) error {
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	if !replace {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s already exists: choose another file, or use kura collab update", path)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
