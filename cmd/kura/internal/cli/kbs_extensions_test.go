package cli

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/cmd/kura/internal/demo"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/timelock/beacon"
)

// TestGetResourceWithBeacon: a secret released not before round R is
// refused to kura kbs get-resource without a beacon, and released with
// --beacon-url once round R is out.
func TestGetResourceWithBeacon(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	ctx := context.Background()
	b, err := beacon.New(beacon.Config{Period: time.Second, Genesis: time.Now().Add(-10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	bs := httptest.NewServer(b.Handler())
	defer bs.Close()
	dir := t.TempDir()
	srv, err := demo.StartServer(ctx, filepath.Join(dir, "kbs"), "owner", Version, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	meta := map[string]string{
		keybroker.MetaNotBeforeRound:  strconv.FormatUint(b.Current(), 10),
		keybroker.MetaBeaconChainHash: b.ChainHash(),
		keybroker.MetaBeaconPublicKey: hex.EncodeToString(b.PublicKey()),
	}
	if _, err := srv.Admin.Put(ctx, "owner/key/embargo", []byte("embargoed"), meta, ""); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		var out, errOut strings.Builder
		code := Run(ctx, append([]string{"kbs", "get-resource", "owner/key/embargo", "--url", srv.URL, "--tee", "sim"}, args...), Env{Stdout: &out, Stderr: &errOut, Getenv: os.Getenv})
		return code, out.String() + errOut.String()
	}
	if code, out := run(); code == 0 || !strings.Contains(out, "beacon") {
		t.Errorf("without a beacon: exit %d\n%s", code, out)
	}
	if code, out := run("--beacon-url", bs.URL, "--beacon-chain-hash", b.ChainHash()); code != 0 || out != "embargoed" {
		t.Errorf("with the beacon: exit %d\n%s", code, out)
	}
}

// TestPolicyChangeLogged: a release-policy version stored through the owner
// API is recorded in the server's transparency log, and the answer carries
// the inclusion proof.
func TestPolicyChangeLogged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "kbs")
	srv, err := demo.StartServer(ctx, dir, "owner", Version, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	resp, err := srv.Admin.SetPolicy(ctx, "repo/owner", keybroker.DefaultReleasePolicy)
	if err != nil {
		t.Fatal(err)
	}
	v, err := loadLogKey(filepath.Join(dir, "log-key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	// The answer carries the proof; it verifies offline against the log key.
	_, _, e, err := verifyLoggedEntry(v, resp.LogProof)
	if err != nil {
		t.Fatalf("the answer's log proof: %v", err)
	}
	if e.Kind != auditlog.KindPolicyChange || e.PolicyID != "repo/owner@1" || !strings.HasPrefix(e.Subject, "sha256:") {
		t.Errorf("logged entry %+v, want the policy_change of repo/owner@1", e)
	}
	other, _, err := auditlog.GenerateKey(auditlog.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	ov, err := auditlog.ParseVerifierKey(other.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := verifyLoggedEntry(ov, resp.LogProof); err == nil {
		t.Error("the proof verified against another log's key")
	}
}

// TestVerifierInputsLogged: a server records its verifier's reference
// values and appraisal policy in the log when they change, and not again
// on a restart with the same inputs.
func TestVerifierInputsLogged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "kbs")
	count := func() map[auditlog.Kind]int {
		vkey, err := os.ReadFile(filepath.Join(dir, "log-key.pub"))
		if err != nil {
			t.Fatal(err)
		}
		v, err := auditlog.ParseVerifierKey(strings.TrimSpace(string(vkey)))
		if err != nil {
			t.Fatal(err)
		}
		r, err := auditlog.NewReader(filepath.Join(dir, "log"), v, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := map[auditlog.Kind]int{}
		for range 50 {
			_, cp, err := r.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			clear(n)
			if err := r.Audit(ctx, cp, func(_ uint64, raw []byte) error {
				e, err := auditlog.ParseEntry(raw)
				if err == nil {
					n[e.Kind]++
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if n[auditlog.KindPolicyChange] > 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		return n
	}
	for range 2 {
		srv, err := demo.StartServer(ctx, dir, "owner", Version, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		srv.Stop()
	}
	if n := count(); n[auditlog.KindReferenceValuesChange] != 1 || n[auditlog.KindPolicyChange] != 1 {
		t.Errorf("after two starts with the same inputs: %v, want one reference_values_change and one policy_change", n)
	}
}
