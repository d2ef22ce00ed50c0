package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/coordinator"
)

func newCollabPullCmd(g *globals) *cobra.Command {
	var base, out string
	var asJSON bool
	cf := &clientFlags{g: g, url: &base}
	cmd := &cobra.Command{
		Use:   "pull ID --url URL -o FILE",
		Short: "Fetch a collaboration file from a kura coordinator",
		Long: `Fetch the collaboration file the coordinator holds for ID (GET /v1/collaborations/{id}), verify
it (its id is ID, its manifest versions form a hash chain, every approval's signature verifies) and
write it to FILE. FILE may already hold the same collaboration (pull after a refused push); a file
of another collaboration is not replaced. Nothing is written when the fetched file does not verify.`,
		Example: `  kura collab pull airline-carrier-2026 --url https://kura.example:8080 -o airline-carrier.collab.json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if out == "" {
				return usagef("give the collaboration file to write with -o FILE")
			}
			local, err := os.ReadFile(out)
			switch {
			case errors.Is(err, os.ErrNotExist):
				local = nil
			case err != nil:
				return usagef("-o %s: %w", out, err)
			}
			if local != nil {
				lc, err := collab.ParseCollaboration(local)
				if err != nil {
					return usagef("-o %s holds no collaboration file (%w): not replacing it", out, err)
				}
				if lc.ID != id {
					return usagef("-o %s holds collaboration %q, not %q: not replacing it", out, lc.ID, id)
				}
			}
			hc, err := cf.resolve()
			if err != nil {
				return err
			}
			data, err := (&coordinator.Client{BaseURL: base, HTTP: hc}).Get(cmd.Context(), id)
			if err != nil {
				return err
			}
			c, err := collab.ParseCollaboration(data)
			if err != nil {
				return fmt.Errorf("the coordinator's file for %s: %w", id, err)
			}
			if c.ID != id {
				return fmt.Errorf("%w: asked for collaboration %q, the coordinator sent %q: nothing written", collab.ErrBrokenChain, id, c.ID)
			}
			if err := c.Verify(); err != nil {
				return fmt.Errorf("the coordinator's file for %s does not verify, nothing written: %w", id, err)
			}
			if log, err := g.logger(); err == nil {
				log.Info("collaboration pulled", "collaboration", c.ID, "versions", len(c.Versions), "approvals", len(c.Approvals), "manifest", c.Current().Hash(), "url", base)
			}
			same := bytes.Equal(local, data)
			if !same {
				if err := writeCollab(out, c, true); err != nil {
					return err
				}
			}
			if asJSON {
				st := collabStateOf(c, out)
				st.Parties = c.Status()
				return printJSON(cmd.OutOrStdout(), st)
			}
			if same {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is up to date: collaboration %s version %d %s\n", out, c.ID, len(c.Versions), collab.DisplayHash(c.Current().Hash()))
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "pulled %s: collaboration %s version %d %s\n", out, c.ID, len(c.Versions), collab.DisplayHash(c.Current().Hash()))
			}
			printStatus(cmd.OutOrStdout(), c)
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "url", g.envDefault("KURA_URL", ""), urlHelp("the kura server", "KURA_URL"))
	cmd.Flags().StringVarP(&out, "output", "o", "", "collaboration file to write (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, collabJSONHelp+", and each party's state (parties, as collab status --json)")
	cf.addCA(cmd, false)
	return cmd
}
