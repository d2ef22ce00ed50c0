package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/kek"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/server"
	"github.com/kura-cc/kura/timelock"
)

// kbsFlags configure a key broker, shared by `kbs serve` and `serve`.
type kbsFlags struct {
	store          string
	kekFile        string
	passphraseFile string
	adminKeys      string
	trustJWKS      []string
	trustCA        string
	trustKeys      []string
}

func (k *kbsFlags) register(cmd *cobra.Command, g *globals) {
	fs := cmd.Flags()
	fs.StringVar(&k.store, "store", g.envDefault("KURA_STORE", ""), "state: a SQLite file path, or a postgres:// URL (KURA_STORE); default <data>/kbs.db")
	fs.StringVar(&k.kekFile, "kek-file", g.envDefault("KURA_KEK_FILE", ""), "key-encryption key file, created 0600 if missing (KURA_KEK_FILE); default <data>/kek")
	fs.StringVar(&k.passphraseFile, "kek-passphrase-file", g.envDefault("KURA_KEK_PASSPHRASE_FILE", ""), "derive the KEK with Argon2id from the passphrase in this file instead (parameters kept in --kek-file)")
	fs.StringVar(&k.adminKeys, "admin-keys", g.envDefault("KURA_ADMIN_KEYS", ""), `authorized owner keys ("ed25519 <base64> <name> [repos=<r>,... | operator]" lines; without repos= a key owns the repository named like it); without it the admin API is off (KURA_ADMIN_KEYS)`)
	fs.StringArrayVar(&k.trustJWKS, "trust-jwks", nil, "also trust tokens from the verifier whose JWKS is at this URL (repeatable)")
	fs.StringVar(&k.trustCA, "trust-ca", "", "fetch --trust-jwks URLs trusting this PEM CA (a verifier behind a private CA) besides the system roots")
	fs.StringArrayVar(&k.trustKeys, "trust-key", nil, "also trust tokens signed by this PEM public key (repeatable)")
}

// jwksClient is the client that fetches --trust-jwks URLs.
func (k *kbsFlags) jwksClient() (*http.Client, error) {
	if k.trustCA == "" {
		return nil, nil
	}
	hc, err := clientTLS(k.trustCA, 4)
	if err != nil {
		return nil, fmt.Errorf("--trust-ca: %w", err)
	}
	return hc, nil
}

// trust reads the pinned verifier keys (--trust-key); nil when none.
func (k *kbsFlags) trust() (jwk.Set, error) {
	if len(k.trustKeys) == 0 {
		return nil, nil
	}
	return pemKeySet(k.trustKeys)
}

func newKBSCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "kbs", Short: "Key broker: release secrets only to attested, approved workloads"}
	cmd.AddCommand(newKBSServeCmd(g), newKBSRotateCmd(g), newKBSAdminKeyCmd(g), newKBSGetResourceCmd(g), newKBSAuditCmd(g))
	return cmd
}

func newKBSServeCmd(g *globals) *cobra.Command {
	f := &serveFlags{roles: []server.Role{server.RoleKBS}}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the KBS protocol and the owner API, with a built-in verifier",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runServe(cmd.Context(), g, f, cmd) },
	}
	f.register(cmd, g)
	return cmd
}

func newKBSRotateCmd(g *globals) *cobra.Command {
	var k kbsFlags
	var newKEK, newPass, data string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rotate-kek",
		Short: "Re-wrap every stored DEK under a new key-encryption key",
		Long: `Re-wrap every resource's data-encryption key under a new KEK. The sealed values are not
touched. Run it against the broker's store, then restart brokers with --kek-file set to the new KEK
and keep the old one until the command reports success. --json prints {rewrapped, from_kek, to_kek}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			if newKEK == "" {
				return usagef("--new-kek-file is required")
			}
			ctx := cmd.Context()
			storeSpec, kekPath := k.store, k.kekFile
			if storeSpec == "" {
				storeSpec = filepath.Join(data, "kbs.db")
			}
			if kekPath == "" {
				kekPath = filepath.Join(data, "kek")
			}
			old, err := server.OpenKEK(kekPath, k.passphraseFile, log)
			if err != nil {
				return err
			}
			next, err := server.OpenKEK(newKEK, newPass, log)
			if err != nil {
				return err
			}
			if next.ID() == old.ID() {
				return usagef("the new KEK is the current one (%s)", old.ID())
			}
			ring, err := kek.NewKeyring(next, old)
			if err != nil {
				return err
			}
			st, err := server.OpenStore(ctx, storeSpec, log)
			if err != nil {
				return err
			}
			defer st.Close()
			n, err := keybroker.RotateKEK(ctx, st, ring)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), kekRotation{Rewrapped: n, FromKEK: old.ID(), ToKEK: next.ID()})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "re-wrapped %d keys from %s to %s\n", n, old.ID(), next.ID())
			return nil
		},
	}
	k.register(cmd, g)
	cmd.Flags().StringVar(&newKEK, "new-kek-file", "", "the new KEK file (created if missing)")
	cmd.Flags().StringVar(&newPass, "new-kek-passphrase-file", "", "derive the new KEK from this passphrase file")
	cmd.Flags().StringVar(&data, "data", g.envDefault("KURA_DATA", defaultDataDir(g)), "data directory (KURA_DATA)")
	cmd.Flags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	return cmd
}

// kekRotation is what `kura kbs rotate-kek --json` prints.
type kekRotation struct {
	Rewrapped int    `json:"rewrapped"`
	FromKEK   string `json:"from_kek"`
	ToKEK     string `json:"to_kek"`
}

func newKBSAdminKeyCmd(g *globals) *cobra.Command {
	var (
		out, name string
		repos     []string
		operator  bool
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "admin-key",
		Short: "Create an owner (admin) signing key and print its authorized-keys line",
		Long: `Create an owner (admin) signing key and print its authorized-keys line. On a broker shared by
several owners, each key owns repositories: those of --repos, or the one named like the key
(--name). An --operator key owns none: it manages the default release policy and lists the
tenants. --json prints {private_key_file, authorized_key_line}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("-o FILE is required")
			}
			if operator && len(repos) > 0 {
				return usagef("--operator and --repos: an operator key owns no repository")
			}
			if _, err := keybroker.NewAdmins([]keybroker.AdminKey{{Name: name, Public: make(ed25519.PublicKey, ed25519.PublicKeySize), Repos: repos, Operator: operator}}, nil); err != nil {
				return usagef("%v", err)
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			der, err := x509.MarshalPKCS8PrivateKey(priv)
			if err != nil {
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("create admin key: %w", err)
			}
			if err := errors.Join(pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}), f.Close()); err != nil {
				return err
			}
			line := keybroker.AuthorizedKeyLine(pub, name, repos...)
			if operator {
				line = keybroker.OperatorKeyLine(pub, name)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), adminKeyFile{PrivateKeyFile: out, AuthorizedKeyLine: line})
			}
			fmt.Fprintln(cmd.OutOrStdout(), line)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the private key here (mode 0600)")
	cmd.Flags().StringVar(&name, "name", "owner", "name recorded with every write this key makes")
	cmd.Flags().StringSliceVar(&repos, "repos", nil, "repositories the key owns (default: the one named like the key)")
	cmd.Flags().BoolVar(&operator, "operator", false, "the platform operator's key: owns no repository")
	cmd.Flags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	return cmd
}

// adminKeyFile is what `kura kbs admin-key --json` prints.
type adminKeyFile struct {
	PrivateKeyFile    string `json:"private_key_file"`
	AuthorizedKeyLine string `json:"authorized_key_line"`
}

// loadAdminKey reads an Ed25519 private key in PKCS #8 PEM, from a file
// that only its owner can read.
func loadAdminKey(path string) (ed25519.PrivateKey, error) {
	if path == "" {
		return nil, usagef("--admin-key FILE is required (create one with 'kura kbs admin-key -o FILE')")
	}
	data, err := readKeyFile("--admin-key", path)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, usagef("--admin-key %s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, usagef("--admin-key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, usagef("--admin-key %s: %T, want Ed25519", path, k)
	}
	return priv, nil
}

func newKBSGetResourceCmd(g *globals) *cobra.Command {
	var url, tee, out, contextFile, beaconURL, beaconHash, logKey string
	cf := &clientFlags{g: g, url: &url}
	cmd := &cobra.Command{
		Use:   "get-resource REPOSITORY/TYPE/TAG",
		Short: "Workload side: attest to a key broker, fetch a resource and decrypt it",
		Long: `Attest to a key broker with this machine's TEE (or --tee sim in dev mode), fetch the resource
encrypted to an ephemeral key that never leaves this process, decrypt it, and print it or write it
to a file with mode 0600.

With --log-key the broker answers only once the release is in its transparency log, with the
inclusion proof, which is checked against that log key before the resource is output (the wait
is up to about two checkpoint intervals).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if _, err := keybroker.ParsePath(args[0]); err != nil {
				return usageError{err}
			}
			if logKey != "" && beaconURL != "" {
				return usagef("--log-key and --beacon-url cannot be used together")
			}
			hc, err := cf.resolve()
			if err != nil {
				return err
			}
			var logVerifier note.Verifier
			if logKey != "" {
				v, err := loadLogKey(logKey)
				if err != nil {
					return err
				}
				logVerifier = v
			}
			a, err := attester(ctx, tee, teeDevice{})
			if err != nil {
				return err
			}
			var bound []byte
			if contextFile != "" {
				if bound, err = readInput("--context", contextFile); err != nil {
					return err
				}
			}
			s, err := (&keybroker.Client{BaseURL: url, HTTP: hc}).Attest(ctx, a, bound)
			if err != nil {
				return err
			}
			var value []byte
			if beaconURL != "" {
				// A time-released resource: present the chain's latest round
				// and its signature; the broker checks it against the chain
				// key the owner pinned (docs/spec/timelock.md §7).
				if beaconHash == "" {
					return usagef("--beacon-url needs --beacon-chain-hash")
				}
				b, err := timelock.NewHTTPNetwork(timelock.Chain{Hash: beaconHash, URLs: []string{beaconURL}}, hc, nil).Beacon(ctx, 0)
				if err != nil {
					return err
				}
				value, err = s.ResourceWithBeacon(ctx, args[0], b.Round, b.Signature)
				if err != nil {
					return err
				}
			} else if logKey != "" {
				var proof []byte
				if value, proof, err = s.ResourceWithProof(ctx, args[0]); err != nil {
					return err
				}
				defer clear(value)
				at, err := verifyReleaseProof(logVerifier, proof, args[0], s.Token)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.ErrOrStderr(), at)
			} else if value, err = s.Resource(ctx, args[0]); err != nil {
				return err
			}
			defer clear(value)
			if out == "" {
				_, err = cmd.OutOrStdout().Write(value)
				return err
			}
			return writeSecretFile(out, value)
		},
	}
	cmd.Flags().StringVar(&url, "url", g.envDefault("KURA_KBS_URL", ""), urlHelp("key broker URL", "KURA_KBS_URL"))
	cmd.Flags().StringVar(&tee, "tee", "auto", "auto, snp, tdx, az-snp-vtpm, az-tdx-vtpm, tpm or sim")
	cf.addCA(cmd, false)
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the resource to this file (mode 0600) instead of standard output")
	cmd.Flags().StringVar(&contextFile, "context", "", "file whose bytes are bound into the evidence as context")
	cmd.Flags().StringVar(&beaconURL, "beacon-url", "", "for a time-released resource: fetch the latest round of the drand chain at this URL and present its signature")
	cmd.Flags().StringVar(&beaconHash, "beacon-chain-hash", "", "the chain hash of --beacon-url")
	cmd.Flags().StringVar(&logKey, "log-key", "", "require the release's inclusion proof in the broker's transparency log, checked against this log verifier key (file or key text)")
	return cmd
}

// verifyReleaseProof checks that proof shows this release (path, to the
// session's token) in the log with key v, and says where.
func verifyReleaseProof(v note.Verifier, proof []byte, path, token string) (string, error) {
	if proof == nil {
		return "", fmt.Errorf("%w: the broker sent no inclusion proof (it has no transparency log, or logging lagged; its %s header finds the decision later)", auditlog.ErrNotIncluded, keybroker.AuditSeqHeader)
	}
	p, cp, e, err := verifyLoggedEntry(v, proof)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(token))
	if e.Kind != auditlog.KindKeyRelease || e.Decision != "released" || e.Resource != path || e.TokenDigest != hex.EncodeToString(sum[:]) {
		return "", fmt.Errorf("%w: the logged entry (%s %s of %s) is not this release", auditlog.ErrNotIncluded, e.Kind, e.Decision, e.Resource)
	}
	return fmt.Sprintf("release logged: %s entry %d (broker_seq %d), checkpoint size %d", cp.Origin, p.Index, e.BrokerSeq, cp.Size), nil
}

// writeSecretFile writes data to path with mode 0600 via a temporary file.
func writeSecretFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kura-secret-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func newSecretCmd(g *globals) *cobra.Command {
	var url, keyPath string
	cf := &clientFlags{g: g, url: &url, adminKey: &keyPath}
	client := func() (*keybroker.AdminClient, error) {
		hc, err := cf.resolve()
		if err != nil {
			return nil, err
		}
		key, err := loadAdminKey(keyPath)
		if err != nil {
			return nil, err
		}
		return &keybroker.AdminClient{BaseURL: url, Key: key, HTTP: hc}, nil
	}
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Manage a key broker's secrets (signed owner requests)",
		Long: `Manage a key broker's secrets through its owner API (requests signed with --admin-key). No
command prints a secret's value. With --json each prints one JSON document:
  put, rm       {path, version}: the version stored (for rm, the tombstone's)
  ls            [{path, version, created_at, created_by, policy, metadata, kek_id, sealed_sha256}]
  policy SCOPE  {scope, version, rego, created_at, created_by}
  policy SCOPE FILE
                {scope, version, log_index (when the change was logged)}`,
	}
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	cmd.PersistentFlags().StringVar(&url, "url", g.envDefault("KURA_KBS_URL", ""), urlHelp("key broker URL", "KURA_KBS_URL"))
	cmd.PersistentFlags().StringVar(&keyPath, "admin-key", g.envDefault("KURA_ADMIN_KEY", ""), "owner signing key file (KURA_ADMIN_KEY; client.yaml admin_key)")
	cf.addCA(cmd, true)

	var valueFile, policy string
	var meta []string
	put := &cobra.Command{
		Use:   "put REPOSITORY/TYPE/TAG",
		Short: "Store a new version of a secret (read from --value-file, or standard input)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			var value []byte
			if valueFile == "" || valueFile == "-" {
				value, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), keybroker.MaxResourceSize+1))
			} else {
				value, err = readInput("--value-file", valueFile)
			}
			if err != nil {
				return err
			}
			md := map[string]string{}
			for _, kv := range meta {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return usagef("--metadata %q: want KEY=VALUE", kv)
				}
				md[k] = v
			}
			v, err := c.Put(cmd.Context(), args[0], value, md, policy)
			clear(value)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), secretVersion{Path: args[0], Version: v})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "stored %s version %d\n", args[0], v)
			return nil
		},
	}
	put.Flags().StringVar(&valueFile, "value-file", "", "file holding the secret; - or empty: standard input (never a flag value)")
	put.Flags().StringArrayVar(&meta, "metadata", nil, "KEY=VALUE metadata, visible to owners and policies (repeatable)")
	put.Flags().StringVar(&policy, "policy", "", "bind this stored policy scope to the secret")

	ls := &cobra.Command{
		Use:   "ls [PREFIX]",
		Short: "List secrets (metadata only)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			ms, err := c.List(cmd.Context(), prefix)
			if err != nil {
				return err
			}
			if asJSON {
				if ms == nil {
					ms = []keybroker.Meta{}
				}
				return printJSON(cmd.OutOrStdout(), ms)
			}
			for _, m := range ms {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\tv%d\t%s\t%s\n", m.Path, m.Version, m.CreatedAt.Format(time.RFC3339), m.CreatedBy)
			}
			return nil
		},
	}
	rm := &cobra.Command{
		Use:   "rm REPOSITORY/TYPE/TAG",
		Short: "Delete a secret (a tombstone version; earlier versions stay sealed for audit)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			v, err := c.Delete(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), secretVersion{Path: args[0], Version: v})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s (version %d)\n", args[0], v)
			return nil
		},
	}
	pol := &cobra.Command{
		Use:   "policy SCOPE [FILE]",
		Short: "Show, or with FILE set, the release policy of a scope: default, repo/R or resource/R/T/G",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				p, err := c.Policy(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), p)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "# %s version %d by %s at %s\n%s", p.Scope, p.Version, p.CreatedBy, p.CreatedAt.Format(time.RFC3339), p.Rego)
				return nil
			}
			src, err := readInput("FILE", args[1])
			if err != nil {
				return err
			}
			v, err := c.SetPolicy(cmd.Context(), args[0], string(src))
			if err != nil {
				return err
			}
			stored := storedPolicy{Scope: args[0], Version: v.Version}
			if p, err := auditlog.ParseProof(v.LogProof); err == nil {
				stored.LogIndex = &p.Index
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), stored)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "stored policy %s version %d\n", args[0], v.Version)
			if stored.LogIndex != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "policy change logged at index %d\n", *stored.LogIndex)
			}
			return nil
		},
	}
	cmd.AddCommand(put, ls, rm, pol)
	return cmd
}

// secretVersion is what `kura secret put|rm --json` print.
type secretVersion struct {
	Path    string `json:"path"`
	Version int64  `json:"version"`
}

// storedPolicy is what `kura secret policy SCOPE FILE --json` prints.
type storedPolicy struct {
	Scope    string  `json:"scope"`
	Version  int64   `json:"version"`
	LogIndex *uint64 `json:"log_index,omitempty"`
}

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Work with release policies"}
	var policyFile, inputFile string
	var explain, asJSON bool
	eval := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate a release policy on an input, to debug a denial",
		Long: `Evaluate a release policy (Rego; default: kura's built-in policy) on an input document as the
key broker builds it (docs/spec/keybroker.md §5: token, request, resource, dev_mode). Prints the
decision and every deny reason; --explain adds OPA's evaluation trace. Exits 5 when denied.
--json prints the decision as {policy_id, allow, deny: [reason...]}, denied or not (the trace, with
--explain, then goes to stderr).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if inputFile == "" {
				return usagef("--input FILE is required")
			}
			src := keybroker.DefaultReleasePolicy
			if policyFile != "" {
				data, err := readInput("--policy", policyFile)
				if err != nil {
					return err
				}
				src = string(data)
			}
			data, err := readInput("--input", inputFile)
			if err != nil {
				return err
			}
			var in keybroker.PolicyInput
			if err := json.Unmarshal(data, &in); err != nil {
				return usagef("--input %s: %w", inputFile, err)
			}
			var trace io.Writer
			if explain {
				trace = cmd.OutOrStdout()
				if asJSON {
					trace = cmd.ErrOrStderr()
				}
			}
			d, err := keybroker.EvaluatePolicy(cmd.Context(), src, &in, trace)
			if err != nil {
				return usageError{err}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if d.Deny == nil {
					d.Deny = []string{}
				}
				if err := printJSON(out, d); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "policy:  %s\nallow:   %v\n", d.PolicyID, d.Allow)
				for _, r := range d.Deny {
					fmt.Fprintf(out, "deny:    %s\n", r)
				}
			}
			if !d.Allow {
				return fmt.Errorf("%w: %s", errPolicy, strings.Join(d.Deny, "; "))
			}
			return nil
		},
	}
	eval.Flags().StringVar(&policyFile, "policy", "", "release policy file (Rego)")
	eval.Flags().StringVar(&inputFile, "input", "", "input document (JSON)")
	eval.Flags().BoolVar(&explain, "explain", false, "print OPA's evaluation trace")
	eval.Flags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	cmd.AddCommand(eval)
	return cmd
}
