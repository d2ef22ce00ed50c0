package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/party"
)

func newCollabRevokeCmd(g *globals) *cobra.Command {
	var base, identity, reason string
	var brokers []string
	cf := &clientFlags{g: g, url: &base, identity: &identity}
	cmd := &cobra.Command{
		Use:   "revoke FILE|ID --identity DIR [--reason TEXT] --url URL [--kbs URL ...]",
		Short: "Withdraw your approval of a collaboration, at its key brokers and its coordinator",
		Long: `Sign, with the party identity in DIR, a revocation of every approval of yours of the collaboration
signed until now (docs/spec/manifest.md §5.4), and deliver it to the key brokers that hold your
dataset keys and to the coordinator. The brokers are what enforces it: from then on they refuse
your keys to every run relying on an approval of yours signed before the revocation, whatever
collaboration file the run presents. The coordinator logs it, adds it to its file and refuses
runs of your data at submission. Approving again (kura collab approve, then push) restores.

FILE is a collaboration file, into which the revocation is also written, so that kura collab
status FILE shows your approval revoked; an ID is fetched from the coordinator and verified
first. --kbs names the brokers to tell (repeat it); by default, the brokers named by your own
datasets in the collaboration. Prints where it was accepted; exits non-zero, with the kind of
the first refusal, unless every broker and the coordinator accepted it.`,
		Example: `  kura collab revoke airline-carrier.collab.json --identity airline --reason "audit pending" --url https://kura.example:8080`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			hc, err := cf.resolve()
			if err != nil {
				return err
			}
			if identity == "" {
				return usagef("--identity DIR is required: a revocation is signed by a party of the collaboration")
			}
			id, err := party.Load(identity)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return usagef("--identity: %w", err)
				}
				return err
			}
			file := ""
			var c *collab.Collaboration
			if _, err := os.Stat(args[0]); err == nil {
				file = args[0]
				if c, err = readCollab(file); err != nil {
					return err
				}
			} else if c, err = fetchCollab(cmd.Context(), hc, base, args[0]); err != nil {
				return err
			}
			if err := c.Verify(); err != nil {
				return fmt.Errorf("%s does not verify; not signing: %w", args[0], err)
			}
			rev, err := c.Revoke(id, time.Now(), reason)
			if errors.Is(err, collab.ErrMalformedRevocation) {
				return usagef("--reason: %w", err) // the only field given by hand
			}
			if err != nil {
				return err
			}
			statement, err := rev.Marshal()
			if err != nil {
				return err
			}
			data, err := c.Marshal()
			if err != nil {
				return err
			}
			if file != "" {
				if err := writeCollab(file, c, true); err != nil {
					return err
				}
			}
			if len(brokers) == 0 {
				brokers = ownBrokers(c, id.Card().SigningKey)
			}
			log, _ := g.logger()
			if log != nil {
				log.Info("approval revocation signed", "collaboration", c.ID, "party", id.Name(), "revoked_at", rev.RevokedAt, "manifest", rev.ManifestHash)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s revoked its approval of %s at %s (version %d %s)\n", id.Name(), c.ID, rev.RevokedAt.Format(time.RFC3339), len(c.Versions), collab.DisplayHash(rev.ManifestHash))
			if file != "" {
				fmt.Fprintf(out, "written to %s\n", file)
			}
			var failed []error
			report := func(target string, detail string, err error) {
				if err != nil {
					fmt.Fprintf(out, "  %s: NOT accepted: %v\n", target, err)
					failed = append(failed, fmt.Errorf("%s: %w", target, err))
				} else {
					fmt.Fprintf(out, "  %s: accepted%s\n", target, detail)
				}
				if log != nil {
					log.Info("approval revocation delivered", "collaboration", c.ID, "to", target, "accepted", err == nil, "err", err)
				}
			}
			for _, u := range brokers {
				resp, err := (&keybroker.Client{BaseURL: u, HTTP: hc}).Revoke(cmd.Context(), statement, data)
				detail := ""
				if err == nil {
					detail = ": withholds " + strings.Join(resp.Resources, ", ")
				}
				report("key broker "+u, detail, err)
			}
			resp, err := (&coordinator.Client{BaseURL: base, HTTP: hc}).Revoke(cmd.Context(), statement)
			detail := ""
			if err == nil {
				detail = fmt.Sprintf(": %d new log entries", len(resp.Logged))
			}
			report("coordinator "+base, detail, err)
			if len(brokers) == 0 {
				fmt.Fprintf(out, "warning: no key broker named: no dataset of %s in %s names one; give them with --kbs\n", id.Name(), c.ID)
			}
			if len(failed) > 0 {
				return fmt.Errorf("the revocation was refused by %d of %d (run kura collab revoke again once they answer): %w", len(failed), len(brokers)+1, failed[0])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "url", g.envDefault("KURA_URL", ""), urlHelp("the kura server whose coordinator keeps the collaboration", "KURA_URL"))
	cmd.Flags().StringVar(&identity, "identity", g.envDefault("KURA_IDENTITY", ""), "the party directory whose signing key signs the revocation (kura party init; KURA_IDENTITY; client.yaml identity)")
	cmd.Flags().StringVar(&reason, "reason", "", fmt.Sprintf("why, signed with it and public (at most %d bytes, one line)", collab.MaxReasonSize))
	cmd.Flags().StringArrayVar(&brokers, "kbs", nil, "a key broker to deliver it to (repeat; default: the brokers your datasets in the collaboration name)")
	cf.addCA(cmd, false)
	return cmd
}

// fetchCollab fetches collaboration id from the coordinator at base and
// verifies it is that collaboration.
func fetchCollab(ctx context.Context, hc *http.Client, base, id string) (*collab.Collaboration, error) {
	data, err := (&coordinator.Client{BaseURL: base, HTTP: hc}).Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("%s is no file; fetching collaboration %s from %s: %w", id, id, base, err)
	}
	c, err := collab.ParseCollaboration(data)
	if err != nil {
		return nil, fmt.Errorf("the coordinator's file for %s: %w", id, err)
	}
	if c.ID != id {
		return nil, fmt.Errorf("%w: asked for collaboration %q, the coordinator sent %q", collab.ErrBrokenChain, id, c.ID)
	}
	return c, nil
}

// ownBrokers returns the key-broker URLs of the datasets owned, in any
// version of c, by the party whose card has key.
func ownBrokers(c *collab.Collaboration, key []byte) []string {
	var out []string
	for _, m := range c.Versions {
		for _, d := range m.Datasets {
			if o := m.Party(d.Owner); o != nil && o.Card != nil && bytes.Equal(o.Card.SigningKey, key) && !slices.Contains(out, d.Descriptor.KeyBroker.URL) {
				out = append(out, d.Descriptor.KeyBroker.URL)
			}
		}
	}
	return out
}
