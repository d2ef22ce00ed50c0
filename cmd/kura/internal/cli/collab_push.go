package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/collab"
)

func newCollabPushCmd(g *globals) *cobra.Command {
	var base string
	cmd := &cobra.Command{
		Use:   "push FILE --url URL",
		Short: "Publish a collaboration file to a kura coordinator, which logs its new versions and approvals",
		Long: `Send a collaboration file to the coordinator of a kura server. The coordinator accepts it only if it
verifies and extends the copy it holds (the same versions first, no approval dropped), and records
every new manifest version and approval in the transparency log; the command prints what was logged.`,
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
			resp, err := pushCollaboration(cmd.Context(), http.DefaultClient, base, c.ID, data)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pushed %s: %d versions, %d approvals; %d new log entries\n", c.ID, resp.Versions, resp.Approvals, len(resp.Logged))
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "url", g.envDefault("KURA_URL", "http://127.0.0.1:8080"), "the kura server (KURA_URL)")
	return cmd
}

// pushCollaboration PUTs a collaboration file to a coordinator.
func pushCollaboration(ctx context.Context, hc *http.Client, base, id string, data []byte) (*PutResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimSuffix(base, "/")+"/v1/collaborations/"+url.PathEscape(id), bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		var p struct{ Detail string }
		json.Unmarshal(body, &p)
		if res.StatusCode == http.StatusConflict {
			return nil, fmt.Errorf("%w: coordinator: %s", collab.ErrBrokenChain, p.Detail)
		}
		return nil, fmt.Errorf("coordinator: %s: %s", res.Status, p.Detail)
	}
	var out PutResponse
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	return &out, nil
}
