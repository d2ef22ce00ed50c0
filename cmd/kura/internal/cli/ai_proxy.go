package cli

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/inference/proxy"
	inferencetrust "github.com/kura-cc/kura/inference/trust"
	"github.com/kura-cc/kura/internal/web"
)

func newAIProxyCmd(g *globals) *cobra.Command {
	var to, policyFile, addr string
	cmd := &cobra.Command{
		Use:   "proxy --to GATEWAY --policy FILE",
		Short: "Offer a local OpenAI-compatible endpoint that verifies the gateway and encrypts every request to it",
		Long: `Listen on --addr (loopback) as an OpenAI-compatible API, so that any OpenAI client (curl, the
Python and JavaScript SDKs, editors) gets end-to-end encryption unchanged: point its base URL at
http://ADDR/v1. Before anything is sent, the proxy fetches the gateway's key configurations and
attestation document and checks them under --policy (docs/spec/inference.md §8: trusted verifiers,
allowed measurements, the GPU, the build's logged approval); it checks again when that answer
expires, and after a key rotation. A gateway that fails the check gets nothing: the request fails.
Each request's body is sealed to the gateway's verified key, only the method and path travel in
the clear (Authorization and cookies are dropped), and answers, streams included, are opened frame
by frame. With an https gateway, its TLS key must be the one its attestation binds.

GET /v1/kura/status answers what was verified (JSON: tee, measurement, gpu, build, expiry), or why
not.`,
		Example: `  kura ai proxy --to https://gateway.example:8443 --policy policy.yaml --addr 127.0.0.1:8080
  curl http://127.0.0.1:8080/v1/chat/completions -d '{"model":"m","messages":[{"role":"user","content":"hi"}]}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if to == "" || policyFile == "" {
				return usagef("--to GATEWAY and --policy FILE are required")
			}
			gw, err := url.Parse(to)
			if err != nil || (gw.Scheme != "http" && gw.Scheme != "https") || gw.Host == "" || strings.Trim(gw.Path, "/") != "" {
				return usagef("--to %q: want the gateway's origin, http(s)://HOST[:PORT]", to)
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			policy, err := inferencetrust.LoadPolicy(policyFile)
			if err != nil {
				return usageError{err}
			}
			p, err := proxy.New(ctx, proxy.Config{Gateway: gw, Policy: policy, Logger: log})
			if err != nil {
				return err
			}
			if _, err := p.Check(ctx); err != nil {
				return fmt.Errorf("the gateway at %s is not trusted: %w", gw, err)
			}
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on --addr %s: %w", addr, err)
			}
			if ta, ok := l.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
				l.Close()
				return usagef("--addr %s is not a loopback address: the proxy's clients speak to it in plaintext", addr)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "kura listening on http://%s\n", l.Addr())
			return web.Serve(ctx, l, p, log, 5*time.Second)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the gateway's origin, e.g. https://gateway.example:8443 (required)")
	cmd.Flags().StringVar(&policyFile, "policy", "", "the policy that says which gateways to trust (required; docs/spec/inference.md §8)")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "loopback address to serve the OpenAI-compatible API on")
	return cmd
}
