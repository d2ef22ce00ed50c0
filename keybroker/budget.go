package keybroker

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/privacy"
)

// BudgetPath is where the broker says how much of a dataset's privacy
// budget the runs of a collaboration spent (GET, docs/spec/cleanroom.md
// §3.2): ?collaboration=ID&resource=REPO/TYPE/TAG.
const BudgetPath = "/kbs/v0/kura/budget"

// Budget is what the broker's audit trail says a collaboration's runs spent
// of one dataset key's privacy budget: Spent is the exact sum of the ε of
// the distinct runs the key was released to, Runs their number. The budget
// itself is in the manifest, not here.
type Budget struct {
	Collaboration string `json:"collaboration"`
	Resource      string `json:"resource"`
	Spent         string `json:"spent"`
	Runs          int    `json:"runs"`
}

// spent sums the ε of the runs that got resource released for
// collaboration, from the audit trail, leaving out the run except (a run
// asking again is not charged twice). A run recorded with several ε
// (which an honest worker never causes) is charged the largest.
func (b *Broker) spent(ctx context.Context, collaboration, resource, except string) (privacy.Epsilon, int, error) {
	spends, err := b.store.RunSpends(ctx, collaboration, resource)
	if err != nil {
		return privacy.Epsilon{}, 0, err
	}
	per := map[string]privacy.Epsilon{}
	for _, s := range spends {
		if s.RunID == except {
			continue
		}
		var e privacy.Epsilon
		if err := e.UnmarshalText([]byte(s.Epsilon)); err != nil {
			return privacy.Epsilon{}, 0, fmt.Errorf("audit trail: run %s: %w", s.RunID, err)
		}
		if old, ok := per[s.RunID]; !ok || e.Cmp(old) > 0 {
			per[s.RunID] = e
		}
	}
	var total privacy.Epsilon
	for _, e := range per {
		total = total.Add(e)
	}
	return total, len(per), nil
}

// checkBudget refuses a run whose ε would take the dataset's privacy
// budget past its total: the ε of the other runs this broker released the
// key to, plus this run's. Release holds runMu, so two runs cannot both
// take the last of a budget from one broker.
func (b *Broker) checkBudget(ctx context.Context, run *RunView, resource string) error {
	if run.Epsilon == "" || run.PrivacyBudget == "" {
		return nil
	}
	eps, err := privacy.ParseEpsilon(run.Epsilon)
	if err != nil {
		return fmt.Errorf("%w: analysis %q: %w", ErrDenied, run.Analysis, err)
	}
	budget, err := privacy.ParseEpsilon(run.PrivacyBudget)
	if err != nil {
		return fmt.Errorf("%w: dataset %q: %w", ErrDenied, run.Dataset, err)
	}
	spent, runs, err := b.spent(ctx, run.Collaboration, resource, run.RunID)
	if err != nil {
		return err
	}
	if spent.Add(eps).Cmp(budget) > 0 {
		return fmt.Errorf("%w: privacy budget of dataset %q exhausted: %s of %s spent by %d run(s), this run needs %s",
			ErrDenied, run.Dataset, spent, budget, runs, eps)
	}
	return nil
}

// handleBudget answers GET BudgetPath. It needs no authentication: it says
// how much ε the runs of a collaboration spent, which the transparency log
// already shows to anyone (each release's epsilon), and never a key or a
// budget.
func (b *Broker) handleBudget(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	collaboration, resource := q.Get("collaboration"), q.Get("resource")
	if collaboration == "" || len(collaboration) > 256 {
		return fmt.Errorf("%w: give ?collaboration=ID (at most 256 bytes)", ErrBadRequest)
	}
	if _, err := ParsePath(resource); err != nil {
		return fmt.Errorf("%w: ?resource=REPOSITORY/TYPE/TAG: %w", ErrBadRequest, err)
	}
	spent, runs, err := b.spent(r.Context(), collaboration, resource, "")
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, &Budget{Collaboration: collaboration, Resource: resource, Spent: spent.String(), Runs: runs})
}

// Budget asks the broker how much of resource's privacy budget the runs
// of collaboration spent.
func (c *Client) Budget(ctx context.Context, collaboration, resource string) (*Budget, error) {
	var out Budget
	q := url.Values{"collaboration": {collaboration}, "resource": {resource}}.Encode()
	if err := c.roundTrip(ctx, http.MethodGet, BudgetPath+"?"+q, nil, &out, "budget"); err != nil {
		return nil, err
	}
	var e privacy.Epsilon
	if err := e.UnmarshalText([]byte(out.Spent)); err != nil {
		return nil, fmt.Errorf("key broker: budget answer: spent: %w", err)
	}
	return &out, nil
}
