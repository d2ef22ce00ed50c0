package worker_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/worker"
)

// brokenTEE is a TEE whose evidence device fails.
type brokenTEE struct{}

func (brokenTEE) TEE() attestation.TEE { return attestation.SNP }
func (brokenTEE) Attest(context.Context, [attestation.ReportDataSize]byte) (*attestation.Bundle, error) {
	return nil, errors.New("open /dev/sev-guest: no such file or directory")
}

// TestServeAttestsFirst: a worker whose TEE gives no evidence stops before
// it registers or claims a run (which it could only fail, using up the
// run's attempts).
func TestServeAttestsFirst(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/attestation/nonce" {
			w.Write([]byte(`{"nonce":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"}`))
			return
		}
		t.Errorf("the worker called the coordinator: %s %s", r.Method, r.URL.Path)
	}))
	defer srv.Close()
	err := worker.Serve(context.Background(), worker.ServeConfig{
		Queue:   &coordinator.Client{BaseURL: srv.URL},
		Run:     worker.Config{Attester: brokenTEE{}},
		Publish: func(context.Context, *worker.Output) error { return nil },
	})
	if err == nil || !strings.Contains(err.Error(), "attesting to register") || !strings.Contains(err.Error(), "sev-guest") {
		t.Fatalf("Serve with a broken TEE: %v", err)
	}
}
