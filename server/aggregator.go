package server

import (
	"context"
	"fmt"
	"net/http"

	"github.com/kura-cc/kura/mpc/aggregator"
	"github.com/kura-cc/kura/party"
)

// Aggregator configures the aggregator role.
type Aggregator struct {
	// TaskFiles are the aggregator's task files (mpc/aggregator), refused
	// if group or others can read or write them. At least one.
	TaskFiles []string
	// IdentityDir holds the aggregator's party identity (party.Load): the
	// leader's or the helper's card of every task.
	IdentityDir string
	// HTTP reaches the helpers of the tasks this server leads (default
	// http.DefaultClient).
	HTTP *http.Client
	// BatchSize is the reports per aggregation job (default
	// aggregator.DefaultBatchSize).
	BatchSize int
}

// buildAggregator serves the Prio3 aggregator API for the configured tasks,
// remembering report nonces and collected batches in the store.
func (b *build) buildAggregator(ctx context.Context) error {
	c := b.cfg.Aggregator
	if len(c.TaskFiles) == 0 || c.IdentityDir == "" {
		return fmt.Errorf("%w: the aggregator needs task files and its party identity", ErrConfig)
	}
	id, err := party.Load(c.IdentityDir)
	if err != nil {
		return fmt.Errorf("aggregator identity: %w", err)
	}
	var tasks []*aggregator.Task
	for _, f := range c.TaskFiles {
		t, err := aggregator.LoadTask(f)
		if err != nil {
			return err
		}
		b.log.Info("prio task loaded", "task", t.ID(), "role", t.Role, "type", t.Prio.Type.String(),
			"min_batch_size", t.MinBatchSize, "collector", t.Collector.Fingerprint)
		tasks = append(tasks, t)
	}
	s, err := aggregator.New(ctx, aggregator.Config{Tasks: tasks, Identity: id, State: b.state.Ephemeral(), HTTP: c.HTTP,
		BatchSize: c.BatchSize, Uploads: b.uploads, Logger: b.log})
	if err != nil {
		return err
	}
	s.Register(b.mux)
	return nil
}
