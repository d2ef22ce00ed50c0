package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/party"
)

func newCollabPushCmd(g *globals) *cobra.Command {
	var base, identity string
	var asJSON bool
	cf := &clientFlags{g: g, url: &base, identity: &identity}
	cmd := &cobra.Command{
		Use:   "push FILE --url URL --identity DIR",
		Short: "Publish a collaboration file to a kura coordinator, which logs its new versions and approvals",
		Long: `Send a collaboration file to the coordinator of a kura server. The coordinator accepts it only if it
verifies and extends the copy it holds (the same versions first, no approval dropped), and records
every new manifest version and approval in the transparency log; the command prints what was logged.
A push is signed with --identity, the key of a party of the collaboration: a collaboration id
belongs to its parties, so no one else can create or extend it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readInput("FILE", args[0])
			if err != nil {
				return err
			}
			c, err := collab.ParseCollaboration(data)
			if err != nil {
				return err
			}
			hc, err := cf.resolve()
			if err != nil {
				return err
			}
			if identity == "" {
				return usagef("--identity DIR is required: a push is signed by a party of the collaboration")
			}
			id, err := party.Load(identity)
			if err != nil {
				return fmt.Errorf("--identity: %w", err)
			}
			resp, err := (&coordinator.Client{BaseURL: base, Identity: id, HTTP: hc}).Push(cmd.Context(), data)
			if errors.Is(err, collab.ErrBrokenChain) {
				return fmt.Errorf("%w\nthe coordinator's copy has moved on: fetch it with kura collab pull %s --url %s -o %s, make your change to it (approve it again, or update it), and push again", err, c.ID, base, args[0])
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), struct {
					Collaboration string `json:"collaboration"`
					*coordinator.PutResponse
				}{c.ID, resp})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pushed %s: %d versions, %d approvals; %d new log entries\n", c.ID, resp.Versions, resp.Approvals, len(resp.Logged))
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "url", g.envDefault("KURA_URL", ""), urlHelp("the kura server", "KURA_URL"))
	cmd.Flags().BoolVar(&asJSON, "json", false, "print {collaboration, versions, approvals, revocations, logged: [inclusion proofs of the new log entries]}")
	cmd.Flags().StringVar(&identity, "identity", g.envDefault("KURA_IDENTITY", ""), "the party directory whose signing key signs the push (kura party init; KURA_IDENTITY; client.yaml identity)")
	cf.addCA(cmd, false)
	return cmd
}
