package cli

import (
	"crypto/tls"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/internal/web"
)

func newAuditWitnessCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "witness",
		Short: "Run a witness that cosigns a log's checkpoints only while its history stays consistent",
	}
	var key, state, addr, tlsCert, tlsKey string
	var logs []string
	serve := &cobra.Command{
		Use:   "serve --key FILE --log VKEY --state DIR",
		Short: "Serve the C2SP tlog-witness protocol (POST /add-checkpoint)",
		Long: `Serve a witness (C2SP tlog-witness): a log server configured with this witness sends it each new
checkpoint with a consistency proof from the last one the witness cosigned, and the witness cosigns
(C2SP tlog-cosignature) only if the new checkpoint is signed by the log's key and consistent with
that history. Anyone checking a log with 'kura audit verify --witness-key' then knows that showing
them a different history would need the witnesses' collusion.

--key is the witness's signing key ('kura audit keygen --origin NAME -o FILE'); give FILE.pub to
the log operator (--log-witness URL=VKEY) and to verifiers (--witness-key). --log (repeatable) is a
followed log's verifier key, file or text. --state keeps the last cosigned checkpoint of each log:
back it up; a witness that forgets its state can be shown a fork. Plain HTTP is served on loopback
addresses only; elsewhere give --tls-cert and --tls-key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if key == "" || state == "" || len(logs) == 0 {
				return usagef("--key, --state and at least one --log are required")
			}
			k, err := auditlog.LoadSignerKey(key)
			if err != nil {
				return keyFileError("--key", err)
			}
			var vs []note.Verifier
			for _, l := range logs {
				text := l
				if data, err := os.ReadFile(l); err == nil {
					text = strings.TrimSpace(string(data))
				}
				v, err := auditlog.ParseVerifierKey(text)
				if err != nil {
					return usagef("--log %s: %w", l, err)
				}
				vs = append(vs, v)
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			w, err := auditlog.NewWitness(auditlog.WitnessConfig{Key: k, Logs: vs, StateDir: state, Logger: log})
			if err != nil {
				return err
			}
			var tlsCfg *tls.Config
			if tlsCert != "" || tlsKey != "" {
				cert, err := loadTLSFlags(tlsCert, tlsKey)
				if err != nil {
					return err
				}
				tlsCfg = serverTLSConfig(cert)
			}
			l, err := (&serveFlags{}).listen(addr, "--addr", tlsCfg)
			if err != nil {
				return err
			}
			scheme := "http"
			if tlsCfg != nil {
				scheme = "https"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "kura listening on %s://%s\nwitness verifier key %s\n", scheme, l.Addr(), w.VerifierKey())
			return (&web.Server{Handler: w.Handler(), Logger: log, TLS: tlsCfg}).Serve(ctx, l)
		},
	}
	serve.Flags().StringVar(&key, "key", "", "the witness's signing key file")
	serve.Flags().StringArrayVar(&logs, "log", nil, "verifier key of a log to witness, file or text (repeatable)")
	serve.Flags().StringVar(&state, "state", "", "directory keeping the last cosigned checkpoint of each log")
	serve.Flags().StringVar(&addr, "addr", "127.0.0.1:8090", "listen address HOST:PORT")
	serve.Flags().StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (chain) file")
	serve.Flags().StringVar(&tlsKey, "tls-key", "", "the PEM private key file of --tls-cert")
	cmd.AddCommand(serve)
	return cmd
}
