package token

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// MaxJWKSSize bounds a fetched JWKS document.
const MaxJWKSSize = 1 << 20

// FetchJWKS fetches a verifier's JWKS from url with hc (nil:
// http.DefaultClient) and parses it, keeping only public keys.
func FetchJWKS(ctx context.Context, hc *http.Client, url string) (jwk.Set, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("verifier JWKS URL %q: %w", url, err)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch verifier JWKS %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch verifier JWKS %s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("fetch verifier JWKS %s: %w", url, err)
	}
	if len(data) > MaxJWKSSize {
		return nil, fmt.Errorf("verifier JWKS %s: larger than %d bytes", url, MaxJWKSSize)
	}
	s, err := ParseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("verifier JWKS %s: %w", url, err)
	}
	return s, nil
}
