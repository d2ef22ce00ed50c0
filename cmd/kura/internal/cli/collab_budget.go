package cli

import (
	"fmt"
	"math/big"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/mpc/agent"
	"github.com/kura-cc/kura/privacy"
)

// budgetLine is one dataset's privacy budget in `kura collab budget
// --json`.
type budgetLine struct {
	Dataset   string `json:"dataset"`
	Owner     string `json:"owner"`
	Broker    string `json:"broker"`
	Resource  string `json:"resource"`
	Budget    string `json:"budget"`
	Spent     string `json:"spent"`
	Remaining string `json:"remaining"`
	Runs      int    `json:"runs"`
}

// budgetAnalysis is one private analysis in `kura collab budget --json`:
// its ε per run, and how many more runs the budgets shown allow.
type budgetAnalysis struct {
	Analysis string `json:"analysis"`
	Epsilon  string `json:"epsilon"`
	RunsLeft int64  `json:"runs_left"`
}

func newCollabBudgetCmd(g *globals) *cobra.Command {
	var base, broker, ledger, owner string
	var asJSON bool
	cf := &clientFlags{g: g, url: &base}
	cmd := &cobra.Command{
		Use:   "budget FILE|ID [--broker URL] [--json]",
		Short: "Show how much of each dataset's privacy budget the runs spent",
		Long: `For each dataset of the collaboration's current version with a privacy_budget, ask the key broker
that holds its key how much ε the runs of the collaboration spent (GET /kbs/v0/kura/budget,
docs/spec/cleanroom.md §3.2), and print the budget, spent, remaining (exact: budget − spent) and the
number of runs charged; then, for each analysis under privacy, its ε per run and how many more runs
the remaining budgets allow. A run that would overspend is refused by the broker, with the numbers.

With --broker, only the datasets whose key is at that broker are shown. Analyses on the
cryptographic backend (backend: mpc) are charged by the owners' agents, not by brokers: --ledger
FILE --owner NAME reads what the ledger of NAME's agent (kura mpc agent --ledger) recorded, for
NAME's datasets, without stopping the agent. FILE is a collaboration
file; an ID is fetched from the coordinator (--url) first. With --json, prints
{"collaboration", "datasets": [{"dataset", "owner", "broker", "resource", "budget", "spent",
"remaining", "runs"}], "analyses": [{"analysis", "epsilon", "runs_left"}]}.`,
		Example: `  kura collab budget airline-carrier.collab.json
  kura collab budget airline-carrier --url https://kura.example:8080 --broker https://kbs.airline.example --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			hc, err := cf.resolve()
			if err != nil {
				return err
			}
			var c *collab.Collaboration
			if _, err := os.Stat(args[0]); err == nil {
				c, err = readCollab(args[0])
				if err != nil {
					return err
				}
			} else if c, err = fetchCollab(cmd.Context(), hc, base, args[0]); err != nil {
				return err
			}
			if err := c.Verify(); err != nil {
				return fmt.Errorf("%s does not verify: %w", args[0], err)
			}
			m := c.Current()
			if (ledger == "") != (owner == "") {
				return usagef("give --ledger FILE and --owner NAME together")
			}
			var snap *agent.Ledger
			if ledger != "" {
				if snap, err = agent.ReadLedger(ledger); err != nil {
					return usagef("--ledger: %w", err)
				}
			}
			lines := []budgetLine{}
			remaining := map[string]*big.Rat{}
			for _, d := range m.Datasets {
				total, ok := d.Budget()
				url := d.Descriptor.KeyBroker.URL
				if !ok || broker != "" && strings.TrimSuffix(url, "/") != strings.TrimSuffix(broker, "/") || snap != nil && d.Owner != owner {
					continue
				}
				var got *keybroker.Budget
				if snap != nil {
					spent, runs, err := snap.Spent(m.ID, d.ID)
					if err != nil {
						return err
					}
					url, got = "ledger "+ledger, &keybroker.Budget{Spent: spent.String(), Runs: runs}
				} else if got, err = (&keybroker.Client{BaseURL: url, HTTP: hc}).Budget(cmd.Context(), m.ID, d.Descriptor.KeyBroker.Resource); err != nil {
					return fmt.Errorf("dataset %q: key broker %s: %w", d.ID, url, err)
				}
				var spent privacy.Epsilon
				if err := spent.UnmarshalText([]byte(got.Spent)); err != nil {
					return fmt.Errorf("dataset %q: key broker %s: spent: %w", d.ID, url, err)
				}
				left := new(big.Rat).Sub(total.Rat(), spent.Rat())
				remaining[d.ID] = left
				lines = append(lines, budgetLine{Dataset: d.ID, Owner: d.Owner, Broker: url, Resource: d.Descriptor.KeyBroker.Resource,
					Budget: total.String(), Spent: spent.String(), Remaining: ratString(left), Runs: got.Runs})
			}
			if len(lines) == 0 {
				if broker != "" {
					return usagef("no dataset of %s with a privacy_budget keeps its key at %s", m.ID, broker)
				}
				return usagef("no dataset of %s has a privacy_budget", m.ID)
			}
			analyses := []budgetAnalysis{}
			for i := range m.Analyses {
				a := &m.Analyses[i]
				eps, ok := a.Epsilon()
				if !ok {
					continue
				}
				ba := budgetAnalysis{Analysis: a.ID, Epsilon: eps.String(), RunsLeft: -1}
				for _, id := range collab.ReadsOf(a) {
					left, ok := remaining[id]
					if !ok {
						continue
					}
					n := int64(0)
					if left.Sign() > 0 {
						q := new(big.Rat).Quo(left, eps.Rat())
						n = new(big.Int).Quo(q.Num(), q.Denom()).Int64()
					}
					if ba.RunsLeft < 0 || n < ba.RunsLeft {
						ba.RunsLeft = n
					}
				}
				if ba.RunsLeft >= 0 {
					analyses = append(analyses, ba)
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, struct {
					Collaboration string           `json:"collaboration"`
					Datasets      []budgetLine     `json:"datasets"`
					Analyses      []budgetAnalysis `json:"analyses"`
				}{m.ID, lines, analyses})
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DATASET\tOWNER\tBUDGET\tSPENT\tREMAINING\tRUNS\tKEY BROKER")
			for _, l := range lines {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", l.Dataset, l.Owner, l.Budget, l.Spent, l.Remaining, l.Runs, l.Broker)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, a := range analyses {
				fmt.Fprintf(out, "analysis %s spends ε %s per run: %d more run(s) fit\n", a.Analysis, a.Epsilon, a.RunsLeft)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "url", g.envDefault("KURA_URL", ""), urlHelp("the kura server whose coordinator keeps the collaboration, when given by ID", "KURA_URL"))
	cmd.Flags().StringVar(&broker, "broker", "", "ask only this key broker, about the datasets whose key it holds (default: each dataset's own broker)")
	cmd.Flags().StringVar(&ledger, "ledger", "", "read the spends of the mpc backend from this agent ledger instead of asking brokers (with --owner)")
	cmd.Flags().StringVar(&owner, "owner", "", "the party whose agent keeps --ledger: its datasets are shown")
	cmd.Flags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	cf.addCA(cmd, false)
	return cmd
}

// ratString writes r exactly, as privacy.Epsilon does; a negative r (a
// budget lowered below what was spent) as "-" and its magnitude.
func ratString(r *big.Rat) string {
	sign := ""
	if r.Sign() < 0 {
		sign, r = "-", new(big.Rat).Neg(r)
	}
	var e privacy.Epsilon
	if err := e.UnmarshalText([]byte(r.RatString())); err != nil {
		return sign + r.RatString()
	}
	return sign + e.String()
}
