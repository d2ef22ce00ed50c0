package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/internal/httpsig"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/party"
)

// Client talks to a coordinator.
type Client struct {
	// BaseURL is the kura server, e.g. https://kura.example:8080.
	BaseURL string
	// HTTP is the client to use (default http.DefaultClient).
	HTTP *http.Client
	// Identity signs pushes: a party of the collaboration.
	Identity *party.Identity
}

// maxAnswer bounds a coordinator's answer: a collaboration file, or the
// inclusion proofs of what one push logged.
const maxAnswer = 2 * collab.MaxCollaborationSize

// Push sends a collaboration file, signed by Identity. A refusal (the file
// does not extend the stored one, or another push won a race) wraps
// collab.ErrBrokenChain.
func (c *Client) Push(ctx context.Context, file []byte) (*PutResponse, error) {
	col, err := collab.ParseCollaboration(file)
	if err != nil {
		return nil, err
	}
	if c.Identity == nil {
		return nil, errors.New("coordinator: a push must be signed by a party's identity")
	}
	body, err := c.do(ctx, http.MethodPut, col.ID, file)
	if err != nil {
		return nil, err
	}
	var out PutResponse
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	return &out, nil
}

// Get fetches the stored collaboration file.
func (c *Client) Get(ctx context.Context, id string) ([]byte, error) {
	return c.do(ctx, http.MethodGet, id, nil)
}

func (c *Client) do(ctx context.Context, method, id string, file []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+"/v1/collaborations/"+url.PathEscape(id), bytes.NewReader(file))
	if err != nil {
		return nil, err
	}
	if file != nil {
		req.Header.Set("Content-Type", "application/json")
		httpsig.Sign(req, file, SigningContext, c.Identity.Card().Fingerprint, c.Identity.Sign, time.Now())
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		re := web.ReadProblem("coordinator", res.StatusCode, body)
		if res.StatusCode == http.StatusConflict {
			return nil, fmt.Errorf("%w: coordinator: %s", collab.ErrBrokenChain, re.Detail)
		}
		return nil, re
	}
	return body, nil
}

// Revoke delivers a party's signed revocation of its approval
// (collab.Revocation, as Marshal encodes it) to the coordinator, which
// adds it to the stored collaboration file and logs it. It needs no
// Identity: the revocation is signed.
func (c *Client) Revoke(ctx context.Context, revocation []byte) (*PutResponse, error) {
	r, err := collab.ParseRevocation(revocation)
	if err != nil {
		return nil, err
	}
	var out PutResponse
	err = c.call(ctx, http.MethodPost, "/v1/collaborations/"+url.PathEscape(r.Collaboration)+"/revocations", revocation, nil, &out)
	return &out, err
}

// SubmitRun queues a run of analysis in collaboration, signed by Identity.
func (c *Client) SubmitRun(ctx context.Context, collaboration, analysis string) (*RunStatus, error) {
	if c.Identity == nil {
		return nil, errors.New("coordinator: a run is submitted signed by a party's identity")
	}
	body, err := json.Marshal(SubmitRequest{Collaboration: collaboration, Analysis: analysis})
	if err != nil {
		return nil, err
	}
	var out RunStatus
	err = c.call(ctx, http.MethodPost, "/v1/runs", body, func(req *http.Request) {
		httpsig.Sign(req, body, RunSigningContext, c.Identity.Card().Fingerprint, c.Identity.Sign, time.Now())
	}, &out)
	return &out, err
}

// GetRun returns a run's status.
func (c *Client) GetRun(ctx context.Context, id string) (*RunStatus, error) {
	var out RunStatus
	err := c.call(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(id), nil, nil, &out)
	return &out, err
}

// ListRuns returns the runs of a collaboration ("" all), newest first.
func (c *Client) ListRuns(ctx context.Context, collaboration string) ([]*RunStatus, error) {
	var out struct {
		Runs []*RunStatus `json:"runs"`
	}
	err := c.call(ctx, http.MethodGet, "/v1/runs?collaboration="+url.QueryEscape(collaboration), nil, nil, &out)
	return out.Runs, err
}

// WorkerClient is a worker's side of the run queue.
type WorkerClient struct {
	Client
	// Key is the worker's queue key: made inside the TEE, bound into the
	// evidence it registers with, never stored.
	Key ed25519.PrivateKey
}

// Register admits this worker's key with an attestation token whose
// evidence bound the key's public half under WorkerSigningContext.
func (w *WorkerClient) Register(ctx context.Context, tok []byte) (*Registration, error) {
	body, err := json.Marshal(RegisterRequest{Token: string(tok)})
	if err != nil {
		return nil, err
	}
	var out Registration
	return &out, w.call(ctx, http.MethodPost, "/v1/workers", body, w.sign(body), &out)
}

func (w *WorkerClient) sign(body []byte) func(*http.Request) {
	return func(req *http.Request) {
		httpsig.Sign(req, body, WorkerSigningContext, WorkerKeyID(w.Key.Public().(ed25519.PublicKey)),
			func(msg []byte) []byte { return ed25519.Sign(w.Key, msg) }, time.Now())
	}
}

// Claim takes the next queued run (or one whose worker's lease lapsed);
// nil when there is none.
func (w *WorkerClient) Claim(ctx context.Context) (*RunStatus, error) {
	var out RunStatus
	body := []byte("{}")
	found := false
	err := w.call(ctx, http.MethodPost, "/v1/runs/claim", body, w.sign(body), &out, &found)
	if err != nil || !found {
		return nil, err
	}
	return &out, nil
}

// Renew extends the lease on a claimed run.
func (w *WorkerClient) Renew(ctx context.Context, id string) error {
	body := []byte("{}")
	return w.call(ctx, http.MethodPost, "/v1/runs/"+url.PathEscape(id)+"/renew", body, w.sign(body), nil)
}

// Finish reports how a claimed run ended.
func (w *WorkerClient) Finish(ctx context.Context, id string, f FinishRequest) error {
	body, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return w.call(ctx, http.MethodPost, "/v1/runs/"+url.PathEscape(id)+"/finish", body, w.sign(body), nil)
}

// call sends a request and decodes a JSON answer into out (when not nil);
// found, when given, reports whether the answer had a body (204: none).
func (c *Client) call(ctx context.Context, method, path string, body []byte, sign func(*http.Request), out any, found ...*bool) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if sign != nil {
		sign(req)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	if res.StatusCode >= 300 {
		return web.ReadProblem("coordinator", res.StatusCode, data)
	}
	if len(found) > 0 {
		*found[0] = res.StatusCode != http.StatusNoContent
	}
	if out == nil || res.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	return nil
}
