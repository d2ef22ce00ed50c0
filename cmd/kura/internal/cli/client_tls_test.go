package cli

import (
	"context"
	"encoding/hex"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/timelock"
	"github.com/kura-cc/kura/timelock/beacon"
)

// conn names the connection settings a command takes besides --ca: flags
// in the modes that pass them, the client configuration's url, identity
// and admin_key in the client.yaml mode.
type conn uint8

const (
	connURL conn = 1 << iota
	connIdentity
	connAdminKey
)

// clientCmd is a command that talks to a server, as TestClientsOverTLS
// runs it. In args and want, {dir} is the shared directory of what the
// setup made, {out} the mode's own directory, {url} the server, {run} the
// run the last run submit queued, {log-key} the server's log verifier key
// and {beacon} and {chain} a drand dev beacon's URL and chain hash.
type clientCmd struct {
	name string
	args string // split on spaces, after substitution
	conn conn
	want string
	// serve marks a command that runs until cancelled (kura worker serve):
	// it runs in the background while the later commands run, and is
	// stopped, and must exit 0, at the end of the mode.
	serve bool
	// before runs first, when the command waits on time (a time lock).
	before func(vars map[string]string)
	// then reads from the output of a command that succeeded what later
	// ones need.
	then func(out string, vars map[string]string)
}

// clientCommands are every command that talks to a kura server (or, for
// result open and receipt verify, fetches a verifier's JWKS; for timelock
// seal and open, reads a drand beacon), in an order in which each finds
// what it needs: worker serve executes what run submit queues, and the
// time lock sealed first opens last. A log (--log) is named in every mode:
// the client configuration never defaults it. kura audit append and
// timelock verify are not here: they read only local files.
var clientCommands = []clientCmd{
	{name: "timelock seal", args: "timelock seal {dir}/value -o {out}/value.tle --until 1s --dev --chain-url {beacon} --chain-hash {chain} --log {url}", want: "logged: inclusion proof"},
	{name: "secret put", args: "secret put owner/key/a --value-file {dir}/value", conn: connURL | connAdminKey, want: "stored owner/key/a"},
	{name: "secret ls", args: "secret ls owner/", conn: connURL | connAdminKey, want: "owner/key/a"},
	{name: "secret policy", args: "secret policy repo/owner {dir}/policy.rego", conn: connURL | connAdminKey, want: "repo/owner"},
	{name: "kbs get-resource", args: "kbs get-resource owner/key/a --tee sim", conn: connURL, want: "s3cret"},
	{name: "secret rm", args: "secret rm owner/key/a", conn: connURL | connAdminKey, want: "owner/key/a"},
	{name: "kbs audit", args: "kbs audit", conn: connURL | connAdminKey, want: "records after 0"},
	{name: "data register", args: "data register {dir}/visits.kura --key-file {dir}/visits.kura.key -o {out}/visits.descriptor.json", conn: connURL | connIdentity | connAdminKey, want: "registered visits"},
	{name: "data upload", args: "data upload {dir}/visits.kura", conn: connURL | connAdminKey, want: "location: {url}/v1/datasets/"},
	{name: "collab push", args: "collab push {dir}/tls.collab.json", conn: connURL | connIdentity, want: "new log entries"},
	{name: "collab pull", args: "collab pull tls-check -o {out}/pulled.collab.json", conn: connURL, want: "tls-check"},
	{name: "worker serve", args: "worker serve --tee sim --dev --poll 50ms", conn: connURL, want: "kura worker serving", serve: true},
	{name: "run submit", args: "run submit tls-check --analysis by_band", conn: connURL | connIdentity, want: "tls-check/by_band",
		then: func(out string, vars map[string]string) { vars["{run}"] = strings.Fields(out)[0] }},
	{name: "run status", args: "run status {run}", conn: connURL, want: "{run}"},
	{name: "run ls", args: "run ls --collab tls-check", conn: connURL, want: "{run}"},
	{name: "run wait", args: "run wait {run} --every 50ms --timeout 30s", conn: connURL, want: "completed"},
	{name: "result fetch", args: "result fetch {run} -o {out}/fetched.json", conn: connURL, want: "receipt: {out}/fetched.receipt.json"},
	{name: "result open", args: "result open {out}/fetched.json --dev", conn: connIdentity, want: `signed by verifier "tls-server" of the manifest's list`},
	{name: "worker run", args: "worker run {dir}/tls.collab.json --analysis by_band --tee sim --dev -o {out}/ran.json --log {url}", want: "run start logged at index"},
	{name: "receipt verify", args: "receipt verify {out}/ran.receipt.json --result {out}/ran.json --dev", conn: connIdentity, want: "wiped  members"},
	{name: "audit ls", args: "audit ls --log {url}/log/ --key {log-key}", want: "manifest_version"},
	{name: "audit show", args: "audit show 0 --log {url}/log/ --key {log-key}", want: "included:  yes"},
	{name: "audit verify", args: "audit verify --log {url}/log/ --key {log-key} --index 0 --no-state", want: "OK"},
	// Checkpoint reads only: the verifier's rate limit would fail the rest.
	{name: "bench serve", args: "bench serve --clients 1 --duration 100ms --mix audit=1", conn: connURL, want: "GET /log/checkpoint"},
	{name: "timelock open", args: "timelock open {out}/value.tle -o {out}/value.txt --dev --chain-url {beacon} --chain-hash {chain}", want: "opened {out}/value.txt",
		before: func(vars map[string]string) {
			// Sealed a second or two ahead: wait for the round if need be.
			data, err := os.ReadFile(filepath.Join(vars["{out}"], "value.tle.registration.json"))
			if err != nil {
				return // the seal failed, and said so
			}
			if reg, err := timelock.ParseRegistration(data); err == nil {
				time.Sleep(time.Until(reg.ReleaseTime) + 50*time.Millisecond)
			}
		}},
}

// TestClientsOverTLS: every client command reaches a server whose
// certificate a private CA signed, given that CA with --ca or by the client
// configuration file, and without it fails saying what to pin.
func TestClientsOverTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	s := startTLSServer(t)
	dir := s.dir
	beaconURL, chainHash := startTLSBeacon(t, s)
	runEnv := func(ctx context.Context, env map[string]string, args ...string) (int, string) {
		var out, errOut strings.Builder
		getenv := func(k string) string { return env[k] }
		code := Run(ctx, args, Env{Stdout: &out, Stderr: &errOut, Getenv: getenv})
		return code, out.String() + errOut.String()
	}
	must := func(args ...string) string {
		t.Helper()
		code, out := runEnv(context.Background(), nil, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	tlsFlags := []string{"--url", s.url, "--ca", s.ca, "--admin-key", s.adminKey}
	p := func(name string) string { return filepath.Join(dir, name) }

	// "owner", who owns the repository of the server's admin key, seals
	// two datasets: visits for data register and upload, members for a
	// collaboration on this server, whose own verifier it lists.
	must("party", "init", "owner", "-o", p("owner"))
	os.WriteFile(p("value"), []byte("s3cret"), 0o600)
	os.WriteFile(p("policy.rego"), []byte(keybroker.DefaultReleasePolicy), 0o600)
	os.WriteFile(p("visits.csv"), []byte("id,n\n1,2\n3,4\n"), 0o600)
	must("data", "seal", p("visits.csv"), "-o", p("visits.kura"))
	os.WriteFile(p("members.csv"), []byte("member_id,age_band\nm1,20s\nm2,20s\nm3,30s\n"), 0o600)
	os.WriteFile(p("members.yaml"), []byte("columns:\n  - {name: member_id, type: string, identity: true}\n  - {name: age_band, type: string}\n"), 0o600)
	must("data", "seal", p("members.csv"), "--schema", p("members.yaml"), "-o", p("members.kura"))
	must(append([]string{"data", "register", p("members.kura"), "--key-file", p("members.kura.key"), "--identity", p("owner"), "-o", p("members.descriptor.json")}, tlsFlags...)...)
	loc := regexp.MustCompile(`location: (\S+)`).FindStringSubmatch(must(append([]string{"data", "upload", p("members.kura")}, tlsFlags...)...))
	if loc == nil {
		t.Fatal("data upload printed no location")
	}
	meas, err := sim.ExecutableMeasurement()
	if err != nil {
		t.Fatal(err)
	}
	manifest := `kura_manifest: 2
id: tls-check
parties:
  - {name: owner, roles: [data_provider, result_receiver], card_file: owner/card.json}
datasets:
  - {id: members, owner: owner, descriptor_file: members.descriptor.json, location: '` + loc[1] + `', output_policy: {min_distinct_identities: 1}}
analyses:
  - id: by_band
    kind: aggregate
    aggregate:
      from: members
      group_by: [members.age_band]
      measures: [{fn: count_distinct_identities, dataset: members, as: people}]
worker:
  reference_values:
    measurements: [{tee: sim, name: kura worker (INSECURE sim), value: ` + hex.EncodeToString(meas) + `}]
receivers: [owner]
verifiers:
  - {name: tls-server, url: '` + s.url + `', jwks_url: '` + s.url + `/.well-known/jwks.json'}
`
	os.WriteFile(p("tls.yaml"), []byte(manifest), 0o600)
	must("collab", "create", p("tls.yaml"), "-o", p("tls.collab.json"))
	must("collab", "approve", p("tls.collab.json"), "--identity", p("owner"))

	// The client configuration file: relative paths are relative to it.
	cfgDir := filepath.Join(dir, "xdg", "kura")
	os.MkdirAll(cfgDir, 0o700)
	rel := func(path string) string { r, _ := filepath.Rel(cfgDir, path); return r }
	yaml := "url: " + s.url + "\nca: " + rel(s.ca) + "\nidentity: " + rel(p("owner")) + "\nadmin_key: " + s.adminKey + "\n"
	os.WriteFile(filepath.Join(cfgDir, "client.yaml"), []byte(yaml), 0o600)

	connFlags := func(c conn) []string {
		var f []string
		if c&connURL != 0 {
			f = append(f, "--url", s.url)
		}
		if c&connIdentity != 0 {
			f = append(f, "--identity", p("owner"))
		}
		if c&connAdminKey != 0 {
			f = append(f, "--admin-key", s.adminKey)
		}
		return f
	}
	vars := map[string]string{"{dir}": dir, "{url}": s.url, "{log-key}": s.logKey, "{beacon}": beaconURL, "{chain}": chainHash}
	modes := []struct {
		name  string
		env   map[string]string
		flags func(conn) []string
		out   string // the mode's directory, under dir
		ok    bool
	}{
		{"--ca", nil, func(c conn) []string { return append(connFlags(c), "--ca", s.ca) }, "ca", true},
		{"client.yaml", map[string]string{"XDG_CONFIG_HOME": filepath.Join(dir, "xdg")}, func(conn) []string { return nil }, "yaml", true},
		// Without a CA, every command must fail at its first request: it
		// reads what the client.yaml mode wrote and writes nothing.
		{"no CA", nil, connFlags, "yaml", false},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			vars["{out}"] = filepath.Join(dir, m.out)
			os.MkdirAll(vars["{out}"], 0o700)
			var stops []func()
			defer func() {
				for _, stop := range stops {
					stop()
				}
			}()
			sub := func(s string) string {
				for k, v := range vars {
					s = strings.ReplaceAll(s, k, v)
				}
				return s
			}
			for _, c := range clientCommands {
				args := append(strings.Fields(sub(c.args)), m.flags(c.conn)...)
				want := sub(c.want)
				if c.before != nil {
					c.before(vars)
				}
				if c.serve && m.ok {
					stops = append(stops, startServing(t, c.name, want, func(ctx context.Context) (int, string) { return runEnv(ctx, m.env, args...) }))
					continue
				}
				code, out := runEnv(context.Background(), m.env, args...)
				switch {
				case !m.ok && (code == 0 || !strings.Contains(out, "x509: certificate signed by unknown authority: pin the server's certificate with --ca")):
					t.Errorf("%s without a CA: exit %d, want the hint to pin\n%s", c.name, code, out)
				case m.ok && (code != 0 || !strings.Contains(out, want)):
					t.Errorf("%s: exit %d, want %q\n%s", c.name, code, want, out)
				case m.ok && c.then != nil:
					c.then(out, vars)
				}
			}
		})
	}
	t.Run("another CA", func(t *testing.T) {
		other, _ := privateCA(t, dir, "other.pem")
		code, out := runEnv(context.Background(), nil, "secret", "ls", "--url", s.url, "--admin-key", s.adminKey, "--ca", other)
		if code == 0 || !strings.Contains(out, "not signed by --ca "+other) {
			t.Errorf("another CA: exit %d\n%s", code, out)
		}
	})
	t.Run("plain HTTP URL to a TLS client", func(t *testing.T) {
		hs := httptest.NewServer(nil)
		defer hs.Close()
		code, out := runEnv(context.Background(), nil, "secret", "ls", "--url", strings.Replace(hs.URL, "http:", "https:", 1), "--admin-key", s.adminKey)
		if code == 0 || !strings.Contains(out, "use an http:// --url") {
			t.Errorf("https to a plain server: exit %d\n%s", code, out)
		}
	})
}

// startServing runs a serving command until the returned stop, which
// checks that it then exits 0 having printed want.
func startServing(t *testing.T, name, want string, run func(context.Context) (int, string)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var code int
	var out string
	go func() {
		defer close(done)
		code, out = run(ctx)
	}()
	return func() {
		cancel()
		<-done
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("%s: exit %d, want %q\n%s", name, code, want, out)
		}
	}
}

// startTLSBeacon serves an INSECURE drand dev beacon over HTTPS with s's
// certificate and returns its URL and chain hash.
func startTLSBeacon(t *testing.T, s *tlsServer) (url, chainHash string) {
	t.Helper()
	b, err := beacon.New(beacon.Config{Period: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(b.Handler())
	hs.TLS = serverTLSConfig(s.cert)
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	hs.StartTLS()
	t.Cleanup(hs.Close)
	return hs.URL, b.ChainHash()
}
