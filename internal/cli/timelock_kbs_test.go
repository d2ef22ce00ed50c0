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
	srv, err := startLocalServer(ctx, filepath.Join(dir, "kbs"), "owner", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
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
