package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/mpc/agent"
	"github.com/kura-cc/kura/party"
)

// agentFlags are what both mpc agent commands need: the owner's identity,
// its datasets and keys, and its ledger.
type agentFlags struct {
	identity string
	datasets []string
	keys     []string
	ledger   string
}

func (f *agentFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.identity, "identity", "", "the owner's party identity directory (required)")
	cmd.Flags().StringArrayVar(&f.datasets, "dataset", nil, "ID=SEALED: the owner's sealed dataset with manifest id ID (repeatable; required)")
	cmd.Flags().StringArrayVar(&f.keys, "key-file", nil, "ID=FILE: the data key of dataset ID (repeatable; one per --dataset)")
	cmd.Flags().StringVar(&f.ledger, "ledger", "", "the agent's ledger of runs: replays, max_runs and privacy budgets (required; created if missing)")
}

// agent opens the ledger and keys and returns the agent; close releases
// the ledger and wipes the keys.
func (f *agentFlags) agent(g *globals, hc *http.Client) (a *agent.Agent, closeFn func(), err error) {
	if f.identity == "" || len(f.datasets) == 0 || f.ledger == "" {
		return nil, nil, usagef("--identity DIR, --dataset ID=SEALED, --key-file ID=FILE and --ledger FILE are required")
	}
	log, err := g.logger()
	if err != nil {
		return nil, nil, err
	}
	id, err := party.Load(f.identity)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, usagef("--identity: %w", err)
		}
		return nil, nil, err
	}
	keys := map[string]string{}
	for _, kv := range f.keys {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, nil, usagef("--key-file %q: want ID=FILE", kv)
		}
		keys[k] = v
	}
	var ds []agent.Dataset
	wipe := func() {
		for _, d := range ds {
			d.Key.Wipe()
		}
	}
	for _, kv := range f.datasets {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			wipe()
			return nil, nil, usagef("--dataset %q: want ID=SEALED", kv)
		}
		kf, ok := keys[k]
		if !ok {
			wipe()
			return nil, nil, usagef("--dataset %s has no --key-file %s=FILE", k, k)
		}
		key, err := dataset.ReadKeyFile(kf)
		if err != nil {
			wipe()
			return nil, nil, fmt.Errorf("--key-file %s: %w", k, err)
		}
		ds = append(ds, agent.Dataset{ID: k, Sealed: v, Key: key})
	}
	l, err := agent.OpenLedger(f.ledger)
	if err != nil {
		wipe()
		return nil, nil, err
	}
	cfg := agent.Config{Identity: id, Datasets: ds, Ledger: l, Logger: log, Client: hc}
	a, err = agent.New(cfg)
	if err != nil {
		l.Close()
		wipe()
		return nil, nil, err
	}
	return a, func() { l.Close(); wipe() }, nil
}

func newMPCAgentCmd(g *globals) *cobra.Command {
	var f agentFlags
	var addr, certFile, keyFile string
	cmd := &cobra.Command{
		Use:   "agent --identity DIR --dataset ID=SEALED --key-file ID=FILE --ledger FILE [--addr ADDR]",
		Short: "Serve a data owner's agent for analyses on the cryptographic backend (backend: mpc)",
		Long: `Run a data owner's agent next to its own sealed datasets and keys, answering the other owner's
agent (kura mpc run) for analyses approved with backend: mpc (docs/spec/mpc.md). For each run it
checks the collaboration file, that the analysis is approved for the mpc backend, every owner's
approval, that the initiator's statement is signed by the other owner's card, and records the run
in its ledger (refusing replays, runs past max_runs and runs that would overspend this owner's
privacy budget, with the numbers); then it decrypts its own dataset into memory, applies the
analysis's filters on its own columns and answers the private set intersection with blinded
identifiers only. No key, row or identifier leaves the agent; every decision is logged.

Serve it over TLS (--tls-cert, --tls-key) when the other owner reaches it across a network: the
messages are signed end to end, but the collaboration file they carry is the parties' business.`,
		Example: `  kura mpc agent --identity carrier --dataset visits=visits.kura --key-file visits=visits.kura.key \
    --ledger carrier-mpc.ledger --addr :8445 --tls-cert agent.crt --tls-key agent.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			a, closeAgent, err := f.agent(g, nil)
			if err != nil {
				return err
			}
			defer closeAgent()
			var tlsCfg *tls.Config
			if (certFile == "") != (keyFile == "") {
				return usagef("give both --tls-cert and --tls-key, or neither")
			}
			if certFile != "" {
				cert, err := tls.LoadX509KeyPair(certFile, keyFile)
				if err != nil {
					return usagef("--tls-cert/--tls-key: %w", err)
				}
				tlsCfg = serverTLSConfig(cert)
			}
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on --addr %s: %w", addr, err)
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			scheme := "http"
			if tlsCfg != nil {
				scheme = "https"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "kura listening on %s://%s\n", scheme, l.Addr())
			return (&web.Server{Handler: a.Handler(), Logger: log, TLS: tlsCfg, Drain: 10 * time.Second}).Serve(ctx, l)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8445", "address to serve the agent's API on")
	cmd.Flags().StringVar(&certFile, "tls-cert", "", "serve HTTPS with this PEM certificate (chain)")
	cmd.Flags().StringVar(&keyFile, "tls-key", "", "the certificate's PEM private key")
	return cmd
}

func newMPCRunCmd(g *globals) *cobra.Command {
	var f agentFlags
	var analysisID, out, receiptOut, logURL string
	var peers []string
	var asJSON bool
	cl := &clientFlags{g: g}
	cmd := &cobra.Command{
		Use:   "run COLLABORATION --analysis ID --peer URL --identity DIR --dataset ID=SEALED --key-file ID=FILE --ledger FILE -o RESULT",
		Short: "Run an analysis on the cryptographic backend with the other owner's agent",
		Long: `Start and complete a run of an analysis approved with backend: mpc, as the owner of the dataset
that holds its group-by columns (the initiator; docs/spec/mpc.md), with the other owner's agent
(kura mpc agent) at --peer — or, for an analysis among three or more owners (counts only), with
each other owner's agent, --peer DATASET=URL repeated. The agents check the approvals and record
the run in their ledgers;
this one sends its identifiers blinded and grouped, learns each group's intersection count, applies
the output policy (suppression, and noise where the analysis sets privacy), encrypts the result to
the analysis's receivers and writes the signed result bundle and deletion receipt, which carry both
owners' signed statements instead of an attestation. Receivers open it with kura result open.

With --log, the bundle and receipt are recorded in the transparency log of the kura server at that
URL, with their inclusion proofs embedded.`,
		Example: `  kura mpc run airline-carrier.collab.json --analysis visitors_mpc --peer https://carrier.example:8445 \
    --identity airline --dataset flights=flights.kura --key-file flights=flights.kura.key \
    --ledger airline-mpc.ledger -o result.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if analysisID == "" || len(peers) == 0 || out == "" {
				return usagef("--analysis ID, --peer URL and -o RESULT are required")
			}
			chain := map[string]string{}
			for _, p := range peers {
				if ds, url, ok := strings.Cut(p, "="); ok {
					chain[ds] = url
				}
			}
			if len(chain) > 0 && len(chain) != len(peers) || len(chain) == 0 && len(peers) > 1 {
				return usagef("--peer: give one URL (two owners), or DATASET=URL for each other owner's dataset (three or more)")
			}
			hc, err := cl.resolve()
			if err != nil {
				return err
			}
			c, err := readCollab(args[0])
			if err != nil {
				return err
			}
			a, closeAgent, err := f.agent(g, hc)
			if err != nil {
				return err
			}
			defer closeAgent()
			var o *agent.Output
			if len(chain) > 0 {
				o, err = a.RunChain(ctx, c, analysisID, chain)
			} else {
				o, err = a.Run(ctx, c, analysisID, peers[0])
			}
			if err != nil {
				return err
			}
			if logURL != "" {
				if err := publishRun(ctx, hc, logURL, o.Bundle, o.Receipt); err != nil {
					return err
				}
			}
			if receiptOut == "" {
				receiptOut = strings.TrimSuffix(out, ".json") + ".receipt.json"
			}
			if err := writeEnvelopeFile(out, o.Bundle); err != nil {
				return err
			}
			if err := writeEnvelopeFile(receiptOut, o.Receipt); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), workerRunReport{RunID: o.RunID, Rows: len(o.Result.Rows), Suppressed: o.Result.SuppressedRows, Result: out, Receipt: receiptOut})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "run %s (mpc, with %s): %d rows, %d suppressed by the output policy\nresult bundle: %s\ndeletion receipt: %s\n",
				o.RunID, strings.Join(peers, ", "), len(o.Result.Rows), o.Result.SuppressedRows, out, receiptOut)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&analysisID, "analysis", "", "analysis id (required)")
	cmd.Flags().StringArrayVar(&peers, "peer", nil, "the other owner's agent, e.g. https://carrier.example:8445 (required); with three or more owners, DATASET=URL for each other owner's dataset (repeat)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the signed result bundle here (required)")
	cmd.Flags().StringVar(&receiptOut, "receipt", "", "write the signed deletion receipt here (default: RESULT with .receipt.json)")
	cmd.Flags().StringVar(&logURL, "log", g.envDefault("KURA_LOG_URL", ""), "record the result and receipt in the transparency log of the kura server at this URL (KURA_LOG_URL)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print {run_id, rows, suppressed, result, receipt}")
	cl.addCA(cmd, false)
	return cmd
}
