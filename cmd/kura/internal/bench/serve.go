// Package bench holds kura's benchmarks: Serve puts a mixed load on a
// running kura server (`kura bench serve`), CleanRoom times an end-to-end
// clean-room run against plain DuckDB (`kura bench cleanroom`). They take
// typed configurations; the command line reads the flags.
package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/server"
	"github.com/kura-cc/kura/verifier"
)

// ErrUsage marks an error in a configuration, which the command line
// reports as a usage error. The errors that are ErrUsage read as their own
// message.
var ErrUsage = errors.New("bench: invalid configuration")

// usageError is an error in a configuration.
type usageError struct{ error }

// Is reports that the error is ErrUsage.
func (usageError) Is(target error) bool { return target == ErrUsage }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// ServeConfig is a load run against a kura server.
type ServeConfig struct {
	// URL is the server's base URL.
	URL string
	// NewClient returns the HTTP client the load goes through, keeping up
	// to maxConns idle connections (the command line's, trusting --ca).
	NewClient func(maxConns int) (*http.Client, error)
	// AdminKey returns the owner signing key with which the release and
	// resource operations store the resource they fetch; it is called only
	// when the mix has them.
	AdminKey func() (ed25519.PrivateKey, error)
	// Clients is the number of concurrent clients.
	Clients int
	// Duration is how long the load runs.
	Duration time.Duration
	// Mix is the operations' weights, OP=WEIGHT,... with the operations
	// verify, release, resource and audit.
	Mix string
	// JSON prints the report as JSON.
	JSON bool
}

// operations returns the operations, in report order.
func operations() []string { return []string{"verify", "release", "resource", "audit"} }

func parseMix(s string) (map[string]int, error) {
	mix := map[string]int{}
	for part := range strings.SplitSeq(s, ",") {
		op, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(w)
		if !ok || err != nil || n < 0 {
			return nil, usagef("--mix %q: want OP=WEIGHT,... with weights >= 0", s)
		}
		if !slices.Contains(operations(), op) {
			return nil, usagef("--mix: unknown operation %q; operations are %s", op, strings.Join(operations(), ", "))
		}
		mix[op] = n
	}
	return mix, nil
}

// Report is what Serve reports (`kura bench serve`).
type Report struct {
	URL         string            `json:"url"`
	Clients     int               `json:"clients"`
	Duration    float64           `json:"duration_s"`
	Mix         map[string]int    `json:"mix"`
	Ops         []Row             `json:"operations"`
	Routes      []Row             `json:"routes"`
	Errors      []ErrorCount      `json:"errors"`
	Unavailable map[string]string `json:"unavailable,omitempty"`
}

// Row is one operation's or route's numbers.
type Row struct {
	Name       string  `json:"name"`
	OK         int     `json:"ok"`
	Failed     int     `json:"failed"`
	Throughput float64 `json:"ok_per_s"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
}

// ErrorCount counts one kind of error.
type ErrorCount struct {
	Where string `json:"where"`
	Kind  string `json:"kind"`
	Count int    `json:"count"`
}

// stats collects latencies and errors; it is safe for concurrent use.
type stats struct {
	mu     sync.Mutex
	ok     map[string][]time.Duration
	failed map[string]int
	errs   map[[2]string]int
}

func newStats() *stats {
	return &stats{ok: map[string][]time.Duration{}, failed: map[string]int{}, errs: map[[2]string]int{}}
}

func (s *stats) record(name string, d time.Duration, errKind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if errKind == "" {
		s.ok[name] = append(s.ok[name], d)
		return
	}
	s.failed[name]++
	s.errs[[2]string{name, errKind}]++
}

func (s *stats) rows(names []string, elapsed time.Duration) []Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Row
	for _, n := range names {
		lat := s.ok[n]
		if len(lat) == 0 && s.failed[n] == 0 {
			continue
		}
		slices.Sort(lat)
		r := Row{Name: n, OK: len(lat), Failed: s.failed[n], Throughput: float64(len(lat)) / elapsed.Seconds()}
		if len(lat) > 0 {
			r.P50ms = float64(lat[len(lat)/2].Microseconds()) / 1000
			r.P99ms = float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds()) / 1000
		}
		out = append(out, r)
	}
	return out
}

func (s *stats) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.ok {
		out = append(out, n)
	}
	for n := range s.failed {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// routeOf names a request by its server route, never its raw path.
func routeOf(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/kbs/v0/resource/"):
		p = "/kbs/v0/resource/{repo}/{type}/{tag}"
	case strings.HasPrefix(p, "/kbs/v0/admin/resource/"):
		p = "/kbs/v0/admin/resource/{path...}"
	}
	return r.Method + " " + p
}

// recordingTransport records every request's latency, or its error kind,
// by route while recording is on.
type recordingTransport struct {
	next      http.RoundTripper
	stats     *stats
	recording atomic.Bool
}

func (t *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	if !t.recording.Load() {
		return resp, err
	}
	route := routeOf(req)
	if err != nil {
		t.stats.record(route, 0, transportKind(err))
		return resp, err
	}
	if resp.StatusCode/100 == 2 {
		// The body is small; read it so the latency includes it.
		data, rerr := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(data))
		if rerr != nil {
			t.stats.record(route, 0, transportKind(rerr))
			return resp, nil
		}
		t.stats.record(route, time.Since(start), "")
		return resp, nil
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(data))
	kind := strconv.Itoa(resp.StatusCode)
	var p web.Problem
	if json.Unmarshal(data, &p) == nil && p.Type != "" {
		kind += " " + strings.TrimPrefix(p.Type, web.ProblemTypeBase)
	}
	t.stats.record(route, 0, kind)
	return resp, nil
}

// transportKind classes a transport error in a few words.
func transportKind(err error) string {
	var unknown x509.UnknownAuthorityError
	var verr *tls.CertificateVerificationError
	var nerr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection reset"
	case errors.As(err, &unknown), errors.As(err, &verr):
		return "untrusted TLS certificate (give --ca)"
	case errors.As(err, &nerr) && nerr.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	msg := err.Error()
	if len(msg) > 80 {
		msg = msg[:80]
	}
	return "transport: " + msg
}

// Serve runs cfg.Clients concurrent clients against the server at cfg.URL
// for cfg.Duration, each picking operations at random by the cfg.Mix
// weights, and prints throughput and latency per operation and per route,
// and errors by kind. It fails if any operation failed.
func Serve(ctx context.Context, cfg ServeConfig, out io.Writer) error {
	mix, err := parseMix(cfg.Mix)
	if err != nil {
		return err
	}
	if cfg.Clients < 1 || cfg.Duration <= 0 {
		return usagef("--clients and --duration must be positive")
	}
	hc, err := cfg.NewClient(cfg.Clients * 2)
	if err != nil {
		return err
	}
	base := strings.TrimSuffix(cfg.URL, "/")
	routes := newStats()
	rt := &recordingTransport{next: hc.Transport, stats: routes}
	hc.Transport = rt
	rep := &Report{URL: base, Clients: cfg.Clients, Mix: maps.Clone(mix), Errors: []ErrorCount{}, Unavailable: map[string]string{}}

	if err := probe(ctx, hc, base); err != nil {
		return err
	}
	att, err := sim.NewAttester(sim.AttesterConfig{})
	if err != nil {
		return err
	}
	var resource string
	var value []byte
	if mix["release"] > 0 || mix["resource"] > 0 {
		key, err := cfg.AdminKey()
		if err != nil {
			return fmt.Errorf("the release operation stores its resource through the owner API: %w", err)
		}
		id := make([]byte, 6)
		rand.Read(id)
		resource, value = "bench/key/"+hex.EncodeToString(id), make([]byte, 32)
		rand.Read(value)
		admin := &keybroker.AdminClient{BaseURL: base, Key: key, HTTP: hc}
		if _, err := admin.Put(ctx, resource, value, map[string]string{"purpose": "kura bench"}, ""); err != nil {
			return fmt.Errorf("store the bench resource %s (is --admin-key in the server's --admin-keys?): %w", resource, err)
		}
		defer func() {
			if _, err := admin.Delete(context.WithoutCancel(ctx), resource); err != nil {
				fmt.Fprintf(out, "warning: could not delete %s: %v\n", resource, err)
			}
		}()
	}
	if mix["audit"] > 0 {
		if status, err := get(ctx, hc, base+"/log/checkpoint"); err != nil {
			return err
		} else if status != http.StatusOK {
			rep.Unavailable["audit"] = fmt.Sprintf("GET /log/checkpoint answered %d: the server runs no log role; audit left out of the mix", status)
			mix["audit"] = 0
		}
	}
	var ops []string
	for _, op := range operations() {
		for range mix[op] {
			ops = append(ops, op)
		}
	}
	if len(ops) == 0 {
		return usagef("--mix leaves nothing to run")
	}

	opStats := newStats()
	// do runs one operation; sess is the client's attested KBS session,
	// which the resource operation opens on first use and then reuses.
	do := func(op string, sess **keybroker.Session) error {
		switch op {
		case "verify":
			v, err := (&verifier.Client{BaseURL: base, HTTP: hc}).Attest(ctx, att, nil, nil)
			if err == nil && v.Token == "" {
				err = errors.New("no token in the verifier's answer")
			}
			return err
		case "release":
			s, err := (&keybroker.Client{BaseURL: base, HTTP: hc}).Attest(ctx, att, nil)
			if err != nil {
				return err
			}
			got, err := s.Resource(ctx, resource)
			if err == nil && !bytes.Equal(got, value) {
				err = errors.New("released value is not the stored one")
			}
			return err
		case "resource":
			if *sess == nil {
				s, err := (&keybroker.Client{BaseURL: base, HTTP: hc}).Attest(ctx, att, nil)
				if err != nil {
					return err
				}
				*sess = s
			}
			got, err := (*sess).Resource(ctx, resource)
			if err == nil && !bytes.Equal(got, value) {
				err = errors.New("released value is not the stored one")
			}
			return err
		case "audit":
			status, err := get(ctx, hc, base+"/log/checkpoint")
			if err == nil && status != http.StatusOK {
				err = fmt.Errorf("GET /log/checkpoint: %d", status)
			}
			return err
		}
		return fmt.Errorf("unknown operation %q", op)
	}
	rt.recording.Store(true)
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for range cfg.Clients {
		wg.Go(func() {
			var sess *keybroker.Session
			for time.Now().Before(deadline) && ctx.Err() == nil {
				op := ops[mrand.IntN(len(ops))]
				t0 := time.Now()
				err := do(op, &sess)
				kind := ""
				if err != nil {
					kind = opErrorKind(err)
				}
				opStats.record(op, time.Since(t0), kind)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	rt.recording.Store(false)

	rep.Duration = elapsed.Seconds()
	rep.Ops = opStats.rows(operations(), elapsed)
	rep.Routes = routes.rows(routes.names(), elapsed)
	failed := 0
	for _, st := range []*stats{opStats, routes} {
		for k, n := range st.errs {
			rep.Errors = append(rep.Errors, ErrorCount{Where: k[0], Kind: k[1], Count: n})
		}
	}
	for _, r := range rep.Ops {
		failed += r.Failed
	}
	slices.SortFunc(rep.Errors, func(a, b ErrorCount) int { return strings.Compare(a.Where+a.Kind, b.Where+b.Kind) })
	if cfg.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.print(out)
	}
	if failed > 0 {
		return fmt.Errorf("%d operations failed (errors by kind above)", failed)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// opErrorKind classes an operation's error: the broker's or verifier's
// problem, a transport failure, or a wrong answer.
func opErrorKind(err error) string {
	var re *keybroker.RemoteError
	if errors.As(err, &re) {
		return fmt.Sprintf("%d %s", re.Status, strings.TrimPrefix(re.Type, web.ProblemTypeBase))
	}
	var nerr net.Error
	if errors.As(err, &nerr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, io.EOF) {
		return transportKind(err)
	}
	if kind := server.VerifyOutcome(err); kind != "error" {
		return kind
	}
	msg := err.Error()
	if len(msg) > 80 {
		msg = msg[:80]
	}
	return msg
}

func probe(ctx context.Context, hc *http.Client, base string) error {
	status, err := get(ctx, hc, base+"/healthz")
	if err != nil {
		return fmt.Errorf("cannot reach %s (is 'kura serve --dev' running there? for its self-signed certificate give --ca <data>/tls/dev-cert.pem): %w", base, err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("%s/healthz answered %d", base, status)
	}
	return nil
}

func get(ctx context.Context, hc *http.Client, u string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, usagef("--url: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (r *Report) print(out io.Writer) {
	var mix []string
	for _, op := range operations() {
		mix = append(mix, fmt.Sprintf("%s=%d", op, r.Mix[op]))
	}
	fmt.Fprintf(out, "kura bench serve: %s, %d clients, %.1f s, mix %s\n\n", r.URL, r.Clients, r.Duration, strings.Join(mix, ","))
	fmt.Fprintf(out, "%-44s %9s %7s %9s %9s %9s\n", "operation / route", "ok", "failed", "ok/s", "p50 ms", "p99 ms")
	for i, rows := range [][]Row{r.Ops, r.Routes} {
		for _, row := range rows {
			name := row.Name
			if i == 1 {
				name = "  " + name
			}
			fmt.Fprintf(out, "%-44s %9d %7d %9.1f %9.2f %9.2f\n", name, row.OK, row.Failed, row.Throughput, row.P50ms, row.P99ms)
		}
	}
	for _, op := range operations() {
		if why, ok := r.Unavailable[op]; ok {
			fmt.Fprintf(out, "\n%s: unavailable: %s\n", op, why)
		}
	}
	if len(r.Errors) == 0 {
		fmt.Fprintln(out, "\nerrors: none")
		return
	}
	fmt.Fprintln(out, "\nerrors by kind:")
	for _, e := range r.Errors {
		fmt.Fprintf(out, "  %-40s %-40s %d\n", e.Where, e.Kind, e.Count)
	}
}
