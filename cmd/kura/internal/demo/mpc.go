package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/mpc/agent"
	"github.com/kura-cc/kura/result"
)

// secretComputation is the clean room's question answered with no TEE at
// all: the owners approve an analysis on the cryptographic backend, the
// carrier's agent serves, the airline's agent runs a private set
// intersection with it, the carrier verifies the result; then a private
// analysis spends the owners' privacy budgets until a run is refused.
func (d *demo) secretComputation(ctx context.Context, c *CleanRoom, log *slog.Logger) error {
	d.section("Secret computation: the same question with no TEE, by the owners' own agents (PSI over ristretto255)")
	analysis := &collab.Analysis{ID: "travellers_mpc", Kind: collab.KindAggregate, Backend: collab.BackendMPC, Aggregate: &collab.Aggregate{
		From:    "flights",
		Joins:   []collab.Join{{Dataset: "visits", Left: "flights.phone", Right: "visits.phone"}},
		GroupBy: []string{"flights.home_prefecture"},
		Measures: []collab.Measure{
			{Func: collab.AggCountDistinctIdentities, Dataset: "visits", As: "travellers"},
			{Func: collab.AggAvg, Column: "visits.stay_days", As: "avg_stay_days", Clip: &collab.Clip{Min: 1, Max: 30}},
		},
	}}
	if err := c.newVersion(func(m *collab.Manifest) { m.Analyses = []collab.Analysis{*analysis} }); err != nil {
		return err
	}
	d.say("version %d replaces the analyses with %q: backend mpc — no worker, no key broker: each owner's agent reads its own data with its own key", len(c.Collab.Versions), analysis.ID)
	d.detail("the carrier's subscribers among the airline's passengers, by home prefecture (the airline's dimension), counted over the phone numbers both hold, and their average stay (the carrier's values, each subscriber's total clipped to 1–30 days); both owners approve it")

	agents := map[string]*agent.Agent{}
	for _, name := range []string{Airline, Carrier} {
		id := "flights"
		if name == Carrier {
			id = "visits"
		}
		sealed := filepath.Join(c.Dir, id+".kura")
		key, err := dataset.ReadKeyFile(sealed + ".key")
		if err != nil {
			return err
		}
		defer key.Wipe()
		l, err := agent.OpenLedger(filepath.Join(c.Dir, name+"-mpc.ledger"))
		if err != nil {
			return err
		}
		defer l.Close()
		if agents[name], err = agent.New(agent.Config{Identity: c.Parties[name], Datasets: []agent.Dataset{{ID: id, Sealed: sealed, Key: key}}, Ledger: l, Logger: log}); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { web.Serve(sctx, ln, agents[Carrier].Handler(), log, time.Second); close(done) }()
	defer func() { stop(); <-done }()
	peer := "http://" + ln.Addr().String()
	d.say("the carrier runs its agent (kura mpc agent) at %s, next to visits.kura and its key; the airline's agent (kura mpc run) starts the run", peer)

	out, err := agents[Airline].Run(ctx, c.Collab, analysis.ID, peer)
	if err != nil {
		return err
	}
	var stmts []*result.AgentStatement
	b, err := result.VerifyBundle(ctx, out.Bundle, c.Trust(Carrier))
	if err != nil {
		return err
	}
	for i, env := range b.Bundle.Agents {
		p := c.Collab.Current().Party([]string{Airline, Carrier}[i])
		s, err := result.VerifyAgent(env, p.Card)
		if err != nil {
			return err
		}
		stmts = append(stmts, s)
	}
	d.say("both agents checked the collaboration, the mpc backend and both approvals, and recorded run %s in their ledgers; the airline sent %d blinded identifiers grouped by prefecture, the carrier answered with them reblinded and its own %d, blinded",
		out.RunID[:8], stmts[0].Identifiers, stmts[1].Identifiers)
	d.detail("the carrier's stays travelled encrypted under a key the two agents share; the airline added up each prefecture's ciphertexts and the carrier helped decrypt only those totals")
	d.detail("no phone number, no row, no stay and no key crossed the wire in clear; the carrier learned the groups' sizes only; the airline learned each group's count and total, not which of its passengers matched")
	plain, err := b.Open(c.Parties[Carrier])
	if err != nil {
		return err
	}
	d.say("the carrier verifies the result bundle (no attestation here: both owners' signed statements instead) and opens its copy:")
	for _, check := range b.Checks {
		d.detail("ok  %s", check)
	}
	if err := d.printTable(plain); err != nil {
		return err
	}

	// A private analysis: budgets of ε 1 per dataset, 0.5 per run.
	// The private analysis releases the counts only: at ε 0.5 an average
	// of stays clipped to 30 days would drown in its noise.
	private := *analysis
	private.ID, private.Privacy = "travellers_private", &collab.Privacy{Epsilon: "0.5"}
	private.Aggregate = &collab.Aggregate{From: analysis.Aggregate.From, Joins: analysis.Aggregate.Joins,
		GroupBy: analysis.Aggregate.GroupBy, Measures: analysis.Aggregate.Measures[:1]}
	if err := c.newVersion(func(m *collab.Manifest) {
		m.Analyses = []collab.Analysis{private}
		for i := range m.Datasets {
			m.Datasets[i].OutputPolicy.PrivacyBudget = "1"
		}
	}); err != nil {
		return err
	}
	d.say("version %d gives each dataset a privacy budget of ε 1 and the analysis %q (the counts) ε 0.5 per run, released with discrete Laplace noise; both approve", len(c.Collab.Versions), private.ID)
	for i := range 2 {
		out, err := agents[Airline].Run(ctx, c.Collab, private.ID, peer)
		if err != nil {
			return err
		}
		rel := out.Result.Privacy
		d.say("private run %d: %d groups pass the noisy threshold; ε %s (δ %.1e) charged to flights by the airline's agent and to visits by the carrier's", i+1, len(out.Result.Rows), rel.Epsilon, rel.Delta)
		if i == 0 {
			d.detail("the first rows, noisy: %s", firstRows(out.Result.Rows, 3))
		}
		snap, err := agent.ReadLedger(filepath.Join(c.Dir, Carrier+"-mpc.ledger"))
		if err != nil {
			return err
		}
		spent, runs, err := snap.Spent(c.Collab.ID, "visits")
		if err != nil {
			return err
		}
		d.detail("kura collab budget --ledger: visits has spent ε %s of 1 in %d run(s)", spent, runs)
	}
	_, err = agents[Airline].Run(ctx, c.Collab, private.ID, peer)
	if !errors.Is(err, agent.ErrBudget) {
		return fmt.Errorf("a run past the privacy budget was not refused: %v", err)
	}
	d.say("a third run is refused before any data is read:")
	d.detail("%s", lastClause(err))
	return nil
}

// newVersion adds a version of the collaboration edited by edit and has
// both owners approve it.
func (c *CleanRoom) newVersion(edit func(*collab.Manifest)) error {
	m := *c.Collab.Current()
	m.Previous = m.Hash()
	m.Datasets = append([]collab.Dataset(nil), m.Datasets...)
	edit(&m)
	if err := c.Collab.AddVersion(&m); err != nil {
		return err
	}
	return c.Approve(Airline, Carrier)
}

// printTable prints a decrypted result as the command line does.
func (d *demo) printTable(plain []byte) error {
	var table strings.Builder
	if err := d.cfg.PrintResult(&table, plain); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(table.String(), "\n"), "\n") {
		d.detail("%s", line)
	}
	return nil
}

// firstRows formats up to n rows.
func firstRows(rows [][]any, n int) string {
	var parts []string
	for _, r := range rows[:min(n, len(rows))] {
		parts = append(parts, strings.TrimSpace(fmt.Sprintln(r...)))
	}
	return strings.Join(parts, ", ")
}
