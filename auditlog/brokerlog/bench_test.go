package brokerlog_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/auditlog/brokerlog"
	"github.com/kura-cc/kura/kek"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/store/sqlite"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/verifier"
)

// BenchmarkReleaseWithLog is keybroker's BenchmarkRelease (releases over
// real HTTP on loopback, 16 and 64 clients, Bearer EAR, SQLite state)
// run without and with the transparency log as the broker's AuditSink.
func BenchmarkReleaseWithLog(b *testing.B) {
	// log=none is the baseline; log=sync waits for each decision to be
	// sequenced in the log before answering (Sink); log=follow
	// answers once the broker's store has the decision and a
	// Follower copies it into the log in the background (what
	// kura serve does).
	for _, mode := range []string{"none", "sync", "follow"} {
		for _, clients := range []int{16, 64} {
			b.Run(fmt.Sprintf("log=%s/clients=%d", mode, clients), func(b *testing.B) { benchmarkRelease(b, clients, mode) })
		}
	}
}

const benchSecretPath = "owner-a/key/dataset-1"

func benchmarkRelease(b *testing.B, clients int, mode string) {
	ctx := context.Background()
	dir := b.TempDir()
	simV, _ := sim.NewVerifier(sim.Config{})
	ap, err := appraisal.New(ctx, appraisal.Config{DevMode: true})
	if err != nil {
		b.Fatal(err)
	}
	vkey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss, err := token.NewIssuer(token.IssuerConfig{Key: vkey})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := verifier.New(verifier.Config{TEEs: map[attestation.TEE]attestation.Verifier{attestation.Sim: simV}, Appraiser: ap, Issuer: iss})
	if err != nil {
		b.Fatal(err)
	}
	keys, err := token.ParseJWKS(iss.JWKS())
	if err != nil {
		b.Fatal(err)
	}
	tv, err := token.NewVerifier(token.VerifierConfig{Keys: keys})
	if err != nil {
		b.Fatal(err)
	}
	k, err := kek.GenerateFile(filepath.Join(dir, "kek"))
	if err != nil {
		b.Fatal(err)
	}
	ring, err := kek.NewKeyring(k)
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlite.New(ctx, sqlite.Config{Path: filepath.Join(dir, "kbs.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	cfg := keybroker.Config{Store: st, Keys: ring, Tokens: tv, Attest: svc, DevMode: true, RateLimit: 1e6}
	var follower *brokerlog.Follower
	switch mode {
	case "sync":
		cfg.Audit = &brokerlog.Sink{Log: openLog(b, filepath.Join(dir, "log"), newKey(b, "kura.bench/log"))}
	case "follow":
		follower = &brokerlog.Follower{Log: openLog(b, filepath.Join(dir, "log"), newKey(b, "kura.bench/log")), Source: st, Cursor: filepath.Join(dir, "cursor")}
		cfg.Audit = follower
		fctx, stop := context.WithCancel(ctx)
		go follower.Run(fctx)
		b.Cleanup(stop)
	}
	broker, err := keybroker.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	mux := http.NewServeMux()
	admins, err := keybroker.NewAdmins([]keybroker.AdminKey{{Name: "owner-a", Public: pub}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	broker.Register(mux, admins)
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	admin := &keybroker.AdminClient{BaseURL: srv.URL, Key: priv, HTTP: srv.Client()}
	if _, err := admin.Put(ctx, benchSecretPath, []byte("the data key: 32 bytes of entropy!"), nil, ""); err != nil {
		b.Fatal(err)
	}
	att, err := sim.NewAttester(sim.AttesterConfig{Measurement: bytes.Repeat([]byte{1}, sim.MeasurementSize)})
	if err != nil {
		b.Fatal(err)
	}
	c := &keybroker.Client{BaseURL: srv.URL, HTTP: srv.Client()}
	s, err := c.Attest(ctx, att, nil)
	if err != nil {
		b.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	var (
		mu  sync.Mutex
		lat = make([]time.Duration, 0, b.N)
	)
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			t0 := time.Now()
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/kbs/v0/resource/"+benchSecretPath, nil)
			req.Header.Set("Authorization", "Bearer "+s.Token)
			resp, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("release: HTTP %d", resp.StatusCode)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "releases/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	if follower != nil {
		// The log catches up with every stored decision.
		start := time.Now()
		if err := follower.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "catchup-ms")
	}
}
