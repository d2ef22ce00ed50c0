package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/mpc/aggregator"
	"github.com/kura-cc/kura/mpc/prio"
	"github.com/kura-cc/kura/party"
)

func newMPCTaskCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "task", Short: "Secret-shared aggregation tasks"}
	cmd.AddCommand(newMPCTaskNewCmd(g))
	return cmd
}

func newMPCTaskNewCmd(_ *globals) *cobra.Command {
	var (
		typ, leader, helper, leaderCard, helperCard, collectorCard, out string
		bits, length                                                    uint
		minBatch                                                        uint64
	)
	cmd := &cobra.Command{
		Use:   "new",
		Short: "Create a Prio3 aggregation task: the two aggregators' task files and the public one",
		Long: `Create a secret-shared aggregation task (docs/spec/prio.md): a random task id and verify key,
the measurement type, the two aggregators (URL and party card), the collector's card and the
output threshold --min-batch. Writes into -o DIR:

  leader.json  the leader's task file (holds the verify key: mode 0600; give it to the leader only)
  helper.json  the helper's task file (the same verify key: mode 0600; give it to the helper only)
  task.json    the public task file, for contributors (kura mpc submit) and the collector (kura mpc collect)

Types: count (each value 0 or 1), sum (--bits: each value below 2^bits), histogram (--length:
each value a bucket index), sumvec (--bits and --length: comma-separated values).
Prints the task id.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" || leader == "" || helper == "" || leaderCard == "" || helperCard == "" || collectorCard == "" {
				return usagef("-o, --leader, --helper, --leader-card, --helper-card and --collector-card are required")
			}
			pt, err := aggregator.ParseType(typ)
			if err != nil {
				return usageError{err}
			}
			p, err := prio.NewTask(nil, pt, bits, length)
			if err != nil {
				return usageError{err}
			}
			t := &aggregator.Task{Prio: p, LeaderURL: leader, HelperURL: helper, MinBatchSize: minBatch}
			for _, c := range []struct {
				flag, path string
				dst        **party.Card
			}{{"--leader-card", leaderCard, &t.Leader}, {"--helper-card", helperCard, &t.Helper}, {"--collector-card", collectorCard, &t.Collector}} {
				data, err := os.ReadFile(c.path)
				if err != nil {
					return usagef("%s: %w", c.flag, err)
				}
				if *c.dst, err = party.ParseCard(data); err != nil {
					return fmt.Errorf("%s %s: %w", c.flag, c.path, err)
				}
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			files := []struct {
				name string
				task *aggregator.Task
				mode os.FileMode
			}{{"leader.json", withRole(t, aggregator.RoleLeader), 0o600}, {"helper.json", withRole(t, aggregator.RoleHelper), 0o600}, {"task.json", t.Public(), 0o644}}
			for _, f := range files {
				data, err := f.task.Marshal()
				if err != nil {
					return usageError{err}
				}
				path := filepath.Join(out, f.name)
				w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
				if errors.Is(err, os.ErrExist) {
					return fmt.Errorf("%s already exists: choose another directory", path)
				}
				if err != nil {
					return err
				}
				if err := errors.Join(writeAllTo(w, data), w.Close()); err != nil {
					return err
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), t.ID())
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&typ, "type", "", "measurement type: count, sum, histogram or sumvec")
	fs.UintVar(&bits, "bits", 0, "bit length of a sum value, or of each sumvec entry")
	fs.UintVar(&length, "length", 0, "buckets of a histogram, entries of a sumvec")
	fs.StringVar(&leader, "leader", "", "the leader's base URL (its kura serve --roles aggregator)")
	fs.StringVar(&helper, "helper", "", "the helper's base URL; another organisation than the leader's")
	fs.StringVar(&leaderCard, "leader-card", "", "the leader's party card")
	fs.StringVar(&helperCard, "helper-card", "", "the helper's party card (contributors encrypt its shares to it)")
	fs.StringVar(&collectorCard, "collector-card", "", "the collector's party card: the only party that may collect")
	fs.Uint64Var(&minBatch, "min-batch", 100, "the output threshold: the aggregate is not released with fewer reports")
	fs.StringVarP(&out, "out", "o", "", "directory to write leader.json, helper.json and task.json into")
	return cmd
}

// withRole returns t as the aggregator role's task file.
func withRole(t *aggregator.Task, r aggregator.Role) *aggregator.Task {
	c := *t
	c.Role = r
	return &c
}

// readPublicTask reads a task file given as an argument.
func readPublicTask(path string) (*aggregator.Task, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("task file: %w", err)
	}
	t, err := aggregator.ParseTask(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t.Public(), nil
}

func newMPCSubmitCmd(g *globals) *cobra.Command {
	var value string
	var count int
	c := &clientFlags{g: g}
	cmd := &cobra.Command{
		Use:   "submit TASKFILE --value V",
		Short: "Contribute a value to a task: shard it and send the report to the leader",
		Long: `Shard a value into two secret shares, encrypt the helper's share to the helper's card, and send
the report to the task's leader. Neither aggregator alone learns the value. --count N sends N
reports of the same value (load tests). Prints how many reports were accepted.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := readPublicTask(args[0])
			if err != nil {
				return err
			}
			if value == "" || count < 1 {
				return usagef("--value is required, and --count must be at least 1")
			}
			m, err := aggregator.ParseMeasurement(t.Prio.Type, value)
			if err != nil {
				return usagef("--value: %w", err)
			}
			hc, err := c.resolve()
			if err != nil {
				return err
			}
			ms := make([]prio.Measurement, count)
			for i := range ms {
				ms[i] = m
			}
			n, err := (&aggregator.Client{Task: t, HTTP: hc}).Submit(cmd.Context(), ms)
			if errors.Is(err, prio.ErrMeasurement) {
				return usagef("--value: %w", err)
			}
			if err != nil {
				return fmt.Errorf("%d of %d reports accepted: %w", n, count, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d reports accepted by %s\n", n, t.LeaderURL)
			return nil
		},
	}
	cmd.Flags().StringVar(&value, "value", "", "the value: 0 or 1 (count), an integer (sum), a bucket index (histogram), comma-separated integers (sumvec)")
	cmd.Flags().IntVar(&count, "count", 1, "send this many reports of the value")
	c.addCA(cmd, false)
	return cmd
}

func newMPCCollectCmd(g *globals) *cobra.Command {
	var identity string
	var asJSON bool
	c := &clientFlags{g: g, identity: &identity}
	cmd := &cobra.Command{
		Use:   "collect TASKFILE --identity DIR",
		Short: "Collect a task's aggregate, as its collector (once)",
		Long: `Ask both aggregators for their aggregate shares (signed with the collector's identity), decrypt
them and print the aggregate and the number of reports. Each aggregator answers once per task,
and only with at least min_batch_size reports. --json prints {task_id, type, reports, aggregate}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := readPublicTask(args[0])
			if err != nil {
				return err
			}
			hc, err := c.resolve()
			if err != nil {
				return err
			}
			if identity == "" {
				return usagef("--identity is required: the collector's directory from 'kura party init'")
			}
			id, err := party.Load(identity)
			if err != nil {
				return fmt.Errorf("--identity: %w", err)
			}
			if fp := id.Card().Fingerprint; fp != t.Collector.Fingerprint {
				return usagef("--identity is %s (%s); the task's collector is %s (%s)", id.Name(), fp, t.Collector.Name, t.Collector.Fingerprint)
			}
			res, err := aggregator.Collect(cmd.Context(), hc, t, id)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), struct {
					TaskID string `json:"task_id"`
					Type   string `json:"type"`
					*aggregator.Result
				}{t.ID(), t.Prio.Type.String(), res})
			}
			vals := make([]string, len(res.Aggregate))
			for i, v := range res.Aggregate {
				vals[i] = strconv.FormatUint(v, 10)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "task:      %s\nreports:   %d\naggregate: %s\n", t.ID(), res.Reports, strings.Join(vals, ","))
			return nil
		},
	}
	cmd.Flags().StringVar(&identity, "identity", g.envDefault("KURA_IDENTITY", ""), "the collector's party directory (KURA_IDENTITY; client.yaml identity)")
	cmd.Flags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	c.addCA(cmd, false)
	return cmd
}
