package aggregator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kura-cc/kura/internal/httpsig"
	"github.com/kura-cc/kura/mpc/prio"
	"github.com/kura-cc/kura/party"
)

// ParseMeasurement parses a contributor's value for a task of type typ:
// 0 or 1 (count), an integer (sum), a bucket index (histogram), or
// comma-separated integers (sumvec).
func ParseMeasurement(typ prio.Type, s string) (prio.Measurement, error) {
	if typ == prio.TypeSumVec {
		var v []uint64
		for _, f := range strings.Split(s, ",") {
			x, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
			if err != nil {
				return prio.Measurement{}, fmt.Errorf("%w: value %q: want comma-separated integers", prio.ErrMeasurement, s)
			}
			v = append(v, x)
		}
		return prio.Vector(v), nil
	}
	x, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return prio.Measurement{}, fmt.Errorf("%w: value %q: want a non-negative integer", prio.ErrMeasurement, s)
	}
	switch typ {
	case prio.TypeCount:
		if x > 1 {
			return prio.Measurement{}, fmt.Errorf("%w: a count is 0 or 1, not %d", prio.ErrMeasurement, x)
		}
		return prio.Count(x == 1), nil
	case prio.TypeSum:
		return prio.Sum(x), nil
	case prio.TypeHistogram:
		return prio.Bucket(x), nil
	}
	return prio.Measurement{}, fmt.Errorf("%w: type %v", prio.ErrTask, typ)
}

// Client is a contributor: it shards measurements, seals each helper
// share to the helper's card, and uploads the reports to the leader.
type Client struct {
	// Task is the task, public or not (the verify key is not used).
	Task *Task
	// HTTP reaches the leader (default http.DefaultClient).
	HTTP *http.Client
}

// NewReport shards m into a report for t with a fresh nonce.
func NewReport(t *Task, c *prio.Client, m prio.Measurement) (Report, error) {
	nonce := prio.NewNonce()
	r, err := c.Shard(m, nonce)
	if err != nil {
		return Report{}, err
	}
	sealed, err := t.Helper.SealTo(r.Inputs[1], HelperShareInfo(t.Prio.ID, nonce, r.Public))
	if err != nil {
		return Report{}, err
	}
	return Report{Nonce: nonce[:], PublicShare: r.Public, LeaderShare: r.Inputs[0], HelperShare: sealed}, nil
}

// Submit uploads one report of each measurement and returns how many the
// leader accepted. It sends as few uploads as MaxBody and
// MaxReportsPerUpload allow, and stops at the first refused one.
func (c *Client) Submit(ctx context.Context, ms []prio.Measurement) (int, error) {
	pc, err := prio.NewClient(c.Task.Prio.Public())
	if err != nil {
		return 0, err
	}
	accepted := 0
	var batch []Report
	size := 0
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		body, err := json.Marshal(UploadRequest{Reports: batch})
		if err != nil {
			return err
		}
		var res UploadResponse
		url := endpoint(c.Task.LeaderURL, "/v1/prio/tasks/"+c.Task.ID()+"/reports")
		if err := post(ctx, c.httpClient(), url, body, "leader", nil, &res); err != nil {
			return err
		}
		accepted += res.Accepted
		batch, size = batch[:0], 0
		return nil
	}
	for _, m := range ms {
		r, err := NewReport(c.Task, pc, m)
		if err != nil {
			return accepted, err
		}
		n := 4*(len(r.Nonce)+len(r.PublicShare)+len(r.LeaderShare)+len(r.HelperShare))/3 + 128
		if len(batch) == MaxReportsPerUpload || (len(batch) > 0 && size+n > MaxBody*9/10) {
			if err := send(); err != nil {
				return accepted, err
			}
		}
		batch = append(batch, r)
		size += n
	}
	return accepted, send()
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// Result is a collected aggregate.
type Result struct {
	// Aggregate has one entry for count and sum, Length entries for
	// histogram and sumvec.
	Aggregate []uint64 `json:"aggregate"`
	// Reports is the number of reports aggregated.
	Reports uint64 `json:"reports"`
}

// Collect is the collector's step: it asks the leader, then the helper,
// for their aggregate shares, signed by id (the task's collector), opens
// them and returns the aggregate. Each aggregator answers once per task.
func Collect(ctx context.Context, hc *http.Client, t *Task, id *party.Identity) (*Result, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	var shares [prio.Aggregators][]byte
	var counts [prio.Aggregators]uint64
	for i, base := range []string{t.LeaderURL, t.HelperURL} {
		body := []byte("{}")
		var res CollectResponse
		service := [...]string{"leader", "helper"}[i]
		err := post(ctx, hc, endpoint(base, "/v1/prio/tasks/"+t.ID()+"/collect"), body, service, func(r *http.Request) {
			httpsig.Sign(r, body, CollectContext, id.Card().Fingerprint, id.Sign, time.Now())
		}, &res)
		if err != nil {
			return nil, err
		}
		if res.TaskID != t.ID() || res.Aggregator != uint8(i) {
			return nil, fmt.Errorf("%w: the %s answered for task %.64q, aggregator %d", ErrMismatch, service, res.TaskID, res.Aggregator)
		}
		if shares[i], err = id.Open(res.AggregateShare, AggregateShareInfo(t.Prio.ID, uint8(i))); err != nil {
			return nil, fmt.Errorf("the %s's aggregate share: %w", service, err)
		}
		counts[i] = res.Reports
	}
	if counts[0] != counts[1] {
		return nil, fmt.Errorf("%w: the leader aggregated %d reports, the helper %d", ErrMismatch, counts[0], counts[1])
	}
	agg, err := prio.Unshard(t.Prio.Public(), shares[0], shares[1], counts[0])
	if err != nil {
		if errors.Is(err, prio.ErrMismatch) || errors.Is(err, prio.ErrTask) || errors.Is(err, prio.ErrMalformed) {
			return nil, fmt.Errorf("%w: %w", ErrMismatch, err)
		}
		return nil, err
	}
	return &Result{Aggregate: agg, Reports: counts[0]}, nil
}
