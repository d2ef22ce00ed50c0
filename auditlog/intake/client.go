package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/internal/web"
)

// Client posts files to a kura server's log intake.
type Client struct {
	// BaseURL is the kura server, e.g. https://kura.example:8080.
	BaseURL string
	// HTTP is the client to use (default http.DefaultClient).
	HTTP *http.Client
}

// Submit posts body — a signed run start, result bundle or receipt, or a
// time-lock registration, as kind says — and returns the inclusion proof
// of its log entry, checked to parse.
func (c *Client) Submit(ctx context.Context, kind auditlog.Kind, body []byte) ([]byte, error) {
	route, ok := routes[kind]
	if !ok {
		return nil, fmt.Errorf("intake: the log takes no %s entries from clients", kind)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.BaseURL, "/")+route, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("transparency log: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, auditlog.MaxProofSize+1))
	if err != nil {
		return nil, fmt.Errorf("transparency log: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("transparency log: %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	if _, err := auditlog.ParseProof(data); err != nil {
		return nil, fmt.Errorf("transparency log: %w", err)
	}
	return data, nil
}

// UploadDataset PUTs a sealed file of size bytes whose SHA-256 is digest
// (lower-case hex), signed by sign (a key broker tenant's signature,
// keybroker.AdminClient.SignBody with a nil body).
func (c *Client) UploadDataset(ctx context.Context, file io.Reader, size int64, digest string, sign func(*http.Request)) (*DatasetResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimSuffix(c.BaseURL, "/")+"/v1/datasets/"+digest, file)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	sign(req)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dataset upload: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("dataset upload: %w", err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return nil, web.ReadProblem("dataset upload", resp.StatusCode, data)
	}
	var out DatasetResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("dataset upload: %w", err)
	}
	return &out, nil
}
