package verifier

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
)

// unavailableTEE fails as a TEE verifier does when it cannot fetch
// collateral: the cause names the URL it tried and the cache path.
type unavailableTEE struct{}

func (unavailableTEE) Verify(context.Context, *attestation.Bundle) (*attestation.Result, error) {
	return nil, fmt.Errorf("%w: fetching the VCEK from %s: %w", attestation.ErrCollateralUnavailable,
		"https://kdsintf.amd.com/vcek/v1/Milan/abc", fmt.Errorf("open /var/cache/kura/collateral/kdsintf.amd.com/vcek: permission denied"))
}

// TestCollateralUnavailableIsSafe: a verify whose collateral cannot be
// fetched is answered 503 collateral-unavailable with Retry-After, and the
// answer names no URL or local path; the cause goes to the log.
func TestCollateralUnavailableIsSafe(t *testing.T) {
	ctx := context.Background()
	ap, err := appraisal.New(ctx, appraisal.Config{DevMode: true})
	if err != nil {
		t.Fatal(err)
	}
	logs := new(bytes.Buffer)
	log := slog.New(slog.NewJSONHandler(logs, nil))
	svc, err := New(Config{TEEs: map[attestation.TEE]attestation.Verifier{attestation.Sim: unavailableTEE{}}, Appraiser: ap, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Register(mux, log)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	nonce, _, err := svc.Nonce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(&attestation.Bundle{Version: 1, TEE: attestation.Sim, Evidence: []byte("{}"), RuntimeData: attestation.RuntimeData{Nonce: nonce}})
	resp, err := srv.Client().Post(srv.URL+"/v1/attestation/verify", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var p struct{ Type, Detail string }
	json.Unmarshal(answer, &p)
	if resp.StatusCode != http.StatusServiceUnavailable || p.Type != "https://kura.dev/problems/collateral-unavailable" || resp.Header.Get("Retry-After") != "10" {
		t.Fatalf("answer %d (Retry-After %q): %s", resp.StatusCode, resp.Header.Get("Retry-After"), answer)
	}
	for _, leak := range []string{"kdsintf", "https://kdsintf", "/var/cache", "permission denied"} {
		if strings.Contains(string(answer), leak) {
			t.Errorf("answer names %q: %s", leak, answer)
		}
	}
	if p.Detail != "collateral unavailable; retry later" {
		t.Errorf("detail %q", p.Detail)
	}
	if !strings.Contains(logs.String(), "kdsintf.amd.com") {
		t.Errorf("cause not logged: %s", logs)
	}
}
