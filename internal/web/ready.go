package web

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Readiness answers GET /readyz: ready when every registered check passes
// and the server is not draining. Register checks before serving.
type Readiness struct {
	mu       sync.Mutex
	checks   []readyCheck
	draining string
}

type readyCheck struct {
	name  string
	check func(context.Context) error
}

// ReadyResponse is the body of GET /readyz.
type ReadyResponse struct {
	// Status is "ready" or "not ready".
	Status string `json:"status"`
	// Reasons says, per failed check, why not ("draining: shutting down",
	// "store: ..."). Causes are summarised for operators; they hold no
	// secrets.
	Reasons []string `json:"reasons,omitempty"`
}

// AddCheck registers a named check; it must be quick and honour ctx.
func (r *Readiness) AddCheck(name string, check func(ctx context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks = append(r.checks, readyCheck{name, check})
}

// SetDraining marks the server not ready for good, with reason.
func (r *Readiness) SetDraining(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.draining = reason
}

// Check runs every check and returns the reasons the server is not ready;
// none means ready.
func (r *Readiness) Check(ctx context.Context) []string {
	r.mu.Lock()
	checks, draining := slices.Clone(r.checks), r.draining
	r.mu.Unlock()
	var reasons []string
	if draining != "" {
		reasons = append(reasons, "draining: "+draining)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for _, c := range checks {
		if err := c.check(ctx); err != nil {
			reasons = append(reasons, c.name+": "+err.Error())
		}
	}
	return reasons
}

// Handler serves the readiness state: 200 {"status":"ready"}, or 503 with
// the reasons.
func (r *Readiness) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if reasons := r.Check(req.Context()); len(reasons) > 0 {
			WriteJSON(w, http.StatusServiceUnavailable, ReadyResponse{Status: "not ready", Reasons: reasons})
			return
		}
		WriteJSON(w, http.StatusOK, ReadyResponse{Status: "ready"})
	})
}
