package coordinator

import (
	"bytes"
	"context"
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
		var p struct{ Detail string }
		json.Unmarshal(body, &p)
		if res.StatusCode == http.StatusConflict {
			return nil, fmt.Errorf("%w: coordinator: %s", collab.ErrBrokenChain, p.Detail)
		}
		return nil, fmt.Errorf("coordinator: %s: %s", res.Status, p.Detail)
	}
	return body, nil
}
