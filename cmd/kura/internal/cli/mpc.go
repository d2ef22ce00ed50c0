package cli

import "github.com/spf13/cobra"

// newMPCCmd is the group of the software secret-computation commands.
func newMPCCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "mpc", Short: "Secret computation without hardware trust: owners' PSI agents and secret-shared aggregation (Prio3)"}
	cmd.AddCommand(newMPCAgentCmd(g), newMPCRunCmd(g), newMPCTaskCmd(g), newMPCSubmitCmd(g), newMPCCollectCmd(g))
	return cmd
}
