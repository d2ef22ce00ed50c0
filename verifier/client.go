package verifier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/web"
)

// Client calls a verifier's HTTP API.
type Client struct {
	// BaseURL is the verifier's address, e.g. "https://verifier.example:8443".
	BaseURL string
	// HTTP is the client to use; nil means http.DefaultClient.
	HTTP *http.Client
}

// maxResponse bounds what the client reads from a verifier.
const maxResponse = 4 << 20

// Nonce asks the verifier for a fresh nonce.
func (c *Client) Nonce(ctx context.Context) (*NonceResponse, error) {
	var out NonceResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/attestation/nonce", nil, &out)
}

// Verify sends a bundle and returns the verifier's answer.
func (c *Client) Verify(ctx context.Context, b *attestation.Bundle) (*VerifyResponse, error) {
	body, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	var out VerifyResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/attestation/verify", body, &out)
}

// JWKS fetches the verifier's token signing keys.
func (c *Client) JWKS(ctx context.Context) ([]byte, error) {
	var raw json.RawMessage
	err := c.do(ctx, http.MethodGet, "/.well-known/jwks.json", nil, &raw)
	return raw, err
}

// Attest runs the whole attestation round trip for an attester: get a
// nonce, bind it with the public key and context into evidence, and have
// the verifier appraise it.
func (c *Client) Attest(ctx context.Context, a attestation.Attester, publicKey, context []byte) (*VerifyResponse, error) {
	n, err := c.Nonce(ctx)
	if err != nil {
		return nil, err
	}
	rd := attestation.RuntimeData{Nonce: n.Nonce, PublicKey: publicKey, Context: context}
	b, err := a.Attest(ctx, rd.ReportData())
	if err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	b.RuntimeData = rd
	return c.Verify(ctx, b)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
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
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("verifier: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("verifier: %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var p web.Problem
		if json.Unmarshal(data, &p) == nil && p.Status != 0 {
			return fmt.Errorf("verifier: %s %s: %d %s: %w", method, path, p.Status, p.Title, remoteError(&p))
		}
		return fmt.Errorf("verifier: %s %s: %s", method, path, resp.Status)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("verifier: %s %s: decode: %w", method, path, err)
	}
	return nil
}

// remoteError turns a verifier problem back into the sentinel it came from,
// so callers can test remote failures with errors.Is.
func remoteError(p *web.Problem) error {
	sentinel := map[string]error{
		"malformed-evidence":     attestation.ErrMalformed,
		"invalid-nonce":          attestation.ErrNonce,
		"bad-signature":          attestation.ErrBadSignature,
		"untrusted-root":         attestation.ErrUntrustedRoot,
		"binding-mismatch":       attestation.ErrBinding,
		"collateral-expired":     attestation.ErrCollateralExpired,
		"collateral-unavailable": attestation.ErrCollateralUnavailable,
	}[strings.TrimPrefix(p.Type, web.ProblemTypeBase)]
	if sentinel == nil {
		return errors.New(p.Detail)
	}
	return fmt.Errorf("%w: %s", sentinel, strings.TrimPrefix(p.Detail, sentinel.Error()+": "))
}
