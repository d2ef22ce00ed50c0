package demo

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/scenario"
	"github.com/kura-cc/kura/server"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/worker"
)

// LocalServer is a kura server on a loopback port.
type LocalServer struct {
	URL string
	// Admin signs owner requests; nil unless the server was started with
	// an owner.
	Admin *keybroker.AdminClient
	stop  func()
}

// Stop stops serving and closes the server.
func (s *LocalServer) Stop() { s.stop() }

// devConfig is a dev-mode server with every role, its state in dir and
// collateral only from what evidence carries (no network).
func devConfig(dir, version string, log *slog.Logger) server.Config {
	return server.Config{DataDir: dir, DevMode: true, Version: "kura " + version, Logger: log}
}

// serveLocal builds a server from cfg and serves it on a loopback port
// until stop, which also closes it.
func serveLocal(ctx context.Context, cfg server.Config) (*LocalServer, error) {
	s, err := server.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	closeServer := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			cfg.Logger.Error("closing the local server", "err", err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		closeServer()
		return nil, fmt.Errorf("listen: %w", err)
	}
	srvCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- web.Serve(srvCtx, l, s.Handler(), cfg.Logger, 5*time.Second) }()
	return &LocalServer{URL: "http://" + l.Addr().String(), stop: func() { cancel(); <-done; closeServer() }}, nil
}

// StartServer starts a dev-mode server with every role, whose state lives
// in dir and whose admin API accepts one owner's key. Its tokens name the
// build "kura " + version; log receives its logs.
func StartServer(ctx context.Context, dir, owner, version string, log *slog.Logger) (*LocalServer, error) {
	return startServer(ctx, dir, owner, version, log, nil)
}

// startServer is StartServer whose key broker also trusts the verifiers
// publishing their keys at trustJWKS.
func startServer(ctx context.Context, dir, owner, version string, log *slog.Logger, trustJWKS []string, adjust ...func(*server.Config)) (*LocalServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	cfg := devConfig(dir, version, log)
	cfg.KBS.TrustJWKS = trustJWKS
	for _, f := range adjust {
		f(&cfg)
	}
	cfg.KBS.AdminKeysFile = filepath.Join(dir, "admins")
	if err := os.WriteFile(cfg.KBS.AdminKeysFile, []byte(keybroker.AuthorizedKeyLine(pub, owner)+"\n"), 0o600); err != nil {
		return nil, err
	}
	s, err := serveLocal(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.Admin = &keybroker.AdminClient{BaseURL: s.URL, Key: priv}
	return s, nil
}

// JWKSURL is where the server's verifier publishes its token keys.
func (s *LocalServer) JWKSURL() string { return s.URL + "/.well-known/jwks.json" }

// startVerifier starts a dev-mode server running only the verifier role,
// its token key in dir; its tokens name the build "kura <version> (name)".
func startVerifier(ctx context.Context, dir, name, version string, log *slog.Logger) (*LocalServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfg := devConfig(dir, version+" ("+name+")", log)
	cfg.Roles = []server.Role{server.RoleVerifier}
	return serveLocal(ctx, cfg)
}

// CleanRoomConfig is the clean-room story's setting.
type CleanRoomConfig struct {
	// Dir holds the servers' state and the plaintext and sealed data.
	Dir string
	// Rows is the size of each dataset.
	Rows int
	// Version is kura's version, named in the servers' tokens.
	Version string
	// Logger receives the servers' and the worker's logs; required.
	Logger *slog.Logger
	// Server, when set, adjusts each owner's server configuration (worker
	// keys and run lease for a run queue, say).
	Server func(*server.Config)
}

// CleanRoom is the clean-room story on one machine: an airline and a
// mobile carrier, each with its own key broker, seal and register their
// data, approve a manifest that names the attestation verifier they both
// accept (one neither runs), and a worker in the (INSECURE) simulated TEE
// runs the analyses.
type CleanRoom struct {
	// Dir is the story's directory (CleanRoomConfig.Dir).
	Dir string
	// Parties are the owners' identities, by name (Airline, Carrier).
	Parties map[string]*party.Identity
	// Servers are the owners' servers, by owner.
	Servers map[string]*LocalServer
	// Verifiers are two verifier-only servers, by name: ListedVerifier,
	// the one the manifest lists, and OtherVerifier, which both owners'
	// brokers trust too (for other collaborations) but the manifest does
	// not list.
	Verifiers map[string]*LocalServer
	// Plaintext maps a dataset id to its plaintext Parquet file.
	Plaintext map[string]string
	// Collab is the collaboration, its manifest unapproved until Approve.
	Collab *collab.Collaboration

	rows int
	log  *slog.Logger
	// server adjusts each owner's server configuration (CleanRoomConfig.Server).
	server func(*server.Config)
	// worker is the measurement the manifest approves.
	worker   string
	attester *sim.Attester
}

// The story's parties.
const (
	Airline = "airline"
	Carrier = "carrier"
)

// The story's verifiers.
const (
	ListedVerifier = "verifier-a"
	OtherVerifier  = "verifier-b"
)

// NewCleanRoom generates and seals the data, starts each owner's key
// broker, registers the keys and writes the collaboration (unapproved).
// Close stops the servers.
func NewCleanRoom(ctx context.Context, cfg CleanRoomConfig) (*CleanRoom, error) {
	c := &CleanRoom{Dir: cfg.Dir, rows: cfg.Rows, log: cfg.Logger, server: cfg.Server}
	if err := c.setUp(ctx, cfg.Version); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close stops the owners' servers and the verifiers.
func (c *CleanRoom) Close() {
	for _, s := range c.Servers {
		s.Stop()
	}
	for _, s := range c.Verifiers {
		s.Stop()
	}
}

// setUp generates and seals the data, starts each owner's key broker,
// registers the keys and writes the collaboration (unapproved).
func (c *CleanRoom) setUp(ctx context.Context, version string) error {
	c.Parties, c.Servers, c.Plaintext = map[string]*party.Identity{}, map[string]*LocalServer{}, map[string]string{}
	c.Verifiers = map[string]*LocalServer{}
	var trust []string
	for _, name := range []string{ListedVerifier, OtherVerifier} {
		s, err := startVerifier(ctx, filepath.Join(c.Dir, name), name, version, c.log)
		if err != nil {
			return err
		}
		c.Verifiers[name] = s
		trust = append(trust, s.JWKSURL())
	}
	for _, name := range []string{Airline, Carrier} {
		id, err := party.Generate(name, party.KEMX25519)
		if err != nil {
			return err
		}
		c.Parties[name] = id
		var adjust []func(*server.Config)
		if c.server != nil {
			adjust = append(adjust, c.server)
		}
		s, err := startServer(ctx, filepath.Join(c.Dir, name+"-kbs"), name, version, c.log, trust, adjust...)
		if err != nil {
			return err
		}
		c.Servers[name] = s
	}
	files, err := scenario.Generate(ctx, c.Dir, scenario.Config{Rows: c.rows, Seed: 1})
	if err != nil {
		return err
	}
	c.Plaintext["flights"], c.Plaintext["visits"] = files.Flights, files.Visits
	m := &collab.Manifest{
		Format: collab.FormatVersion, ID: "airline-carrier-2026",
		Description: "Where do our passengers go, and how long do they stay? Statistics only.",
		Receivers:   []string{Airline, Carrier},
	}
	for _, name := range []string{Airline, Carrier} {
		m.Parties = append(m.Parties, collab.Party{Name: name, Roles: []collab.Role{collab.RoleDataProvider, collab.RoleResultReceiver}, Card: c.Parties[name].Card()})
	}
	for _, ds := range []struct {
		id, owner string
		schema    *table.Schema
		min       int
	}{{"flights", Airline, scenario.FlightsSchema(), 10}, {"visits", Carrier, scenario.VisitsSchema(), 20}} {
		d, err := c.sealAndRegister(ctx, ds.id, ds.owner, ds.schema)
		if err != nil {
			return err
		}
		d.OutputPolicy = collab.OutputPolicy{MinDistinctIdentities: ds.min}
		m.Datasets = append(m.Datasets, *d)
	}
	m.Analyses = Analyses()
	meas, err := sim.ExecutableMeasurement()
	if err != nil {
		return err
	}
	c.worker = hex.EncodeToString(meas)
	m.Worker.ReferenceValues.Measurements = []appraisal.Measurement{{TEE: string(attestation.Sim), Name: "kura worker (INSECURE sim: this executable)", Value: c.worker}}
	v := c.Verifiers[ListedVerifier]
	m.Verifiers = []collab.Verifier{{Name: ListedVerifier, URL: v.URL, JWKSURL: v.JWKSURL()}}
	if c.Collab, err = collab.New(m); err != nil {
		return err
	}
	return nil
}

// Analyses are the two analyses of the story: one declared, one custom
// SQL.
func Analyses() []collab.Analysis {
	return []collab.Analysis{
		{ID: "stay_by_prefecture", Kind: collab.KindAggregate, Aggregate: &collab.Aggregate{
			From:    "flights",
			Joins:   []collab.Join{{Dataset: "visits", Left: "flights.phone", Right: "visits.phone"}},
			GroupBy: []string{"flights.home_prefecture"},
			Measures: []collab.Measure{
				{Func: collab.AggCountDistinctIdentities, Dataset: "visits", As: "travellers"},
				{Func: collab.AggAvg, Column: "visits.stay_days", As: "avg_stay_days"},
			},
		}},
		{ID: "visitors_by_area_age", Kind: collab.KindSQL, Reads: []string{"flights", "visits"}, SQL: `SELECT f.destination_area AS area, f.age_band, count(DISTINCT v.subscriber_id) AS visitors
FROM flights f JOIN visits v ON f.phone = v.phone AND f.destination_area = v.area AND v.arrival_date = f.flight_date
GROUP BY f.destination_area, f.age_band`},
	}
}

// sealAndRegister seals a dataset with a fresh key, stores the key in the
// owner's key broker and returns the manifest's dataset entry.
func (c *CleanRoom) sealAndRegister(ctx context.Context, id, owner string, sc *table.Schema) (*collab.Dataset, error) {
	key := dataset.NewKey()
	defer key.Wipe()
	sealed := filepath.Join(c.Dir, id+".kura")
	if _, err := dataset.SealFile(ctx, sealed, c.Plaintext[id], key, dataset.Header{DatasetID: id, Format: "parquet", Schema: sc.JSON()}, dataset.Options{}); err != nil {
		return nil, err
	}
	// The owner keeps its data key, as kura data seal leaves it: its
	// agent on the cryptographic backend reads the data with it.
	if err := dataset.WriteKeyFile(sealed+".key", key); err != nil {
		return nil, err
	}
	sum, size, err := dataset.FileSHA256(sealed)
	if err != nil {
		return nil, err
	}
	resource := owner + "/dataset-key/" + id
	srv := c.Servers[owner]
	kid := key.ID()
	v, err := srv.Admin.Put(ctx, resource, key.Bytes(), keybroker.DatasetKeyMetadata(id, sum, hex.EncodeToString(kid[:]), c.Parties[owner].Card()), "")
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", id, err)
	}
	return &collab.Dataset{ID: id, Owner: owner, Location: sealed, Descriptor: collab.Descriptor{
		Version: 1, DatasetID: id, Owner: owner, Format: "parquet", Schema: sc,
		KeyID: hex.EncodeToString(kid[:]), SealedSHA256: sum, SealedSize: size,
		KeyBroker:    collab.KeyBrokerRef{URL: srv.URL, Resource: resource, Version: v},
		RegisteredAt: time.Now().UTC().Format(time.RFC3339),
	}}, nil
}

// Approve has the named parties approve the current manifest version.
func (c *CleanRoom) Approve(names ...string) error {
	for _, n := range names {
		a, err := c.Collab.Approve(c.Parties[n], time.Now())
		if err != nil {
			return err
		}
		if err := c.Collab.AddApproval(a); err != nil {
			return err
		}
	}
	return nil
}

// Run runs the worker in this process with the sim attester; it attests to
// the manifest's verifier.
func (c *CleanRoom) Run(ctx context.Context, analysisID string) (*worker.Output, error) {
	return c.RunAttestedBy(ctx, analysisID, "")
}

// RunAttestedBy is Run attesting to the verifier at verifierURL instead:
// what a worker operator who does not follow the manifest does.
func (c *CleanRoom) RunAttestedBy(ctx context.Context, analysisID, verifierURL string) (*worker.Output, error) {
	file, err := c.Collab.Marshal()
	if err != nil {
		return nil, err
	}
	a, err := c.simAttester()
	if err != nil {
		return nil, err
	}
	return worker.Run(ctx, worker.Config{Collaboration: file, Analysis: analysisID, Attester: a, Verifier: verifierURL, Logger: c.log})
}

// simAttester is the story's one attester: its sim measurement (a hash of
// this executable) is computed once, as a TEE measures at launch.
func (c *CleanRoom) simAttester() (*sim.Attester, error) {
	if c.attester == nil {
		a, err := sim.NewAttester(sim.AttesterConfig{})
		if err != nil {
			return nil, err
		}
		c.attester = a
	}
	return c.attester, nil
}

// Trust is what the named party, having approved the manifest, trusts: the
// manifest's verifier list, whose keys it fetches over HTTP; dev mode
// accepts the sim TEE.
func (c *CleanRoom) Trust(name string) result.Trust {
	return result.Trust{Party: c.Parties[name].Card().SigningKey, DevMode: true,
		FetchJWKS: func(ctx context.Context, url string) (jwk.Set, error) { return token.FetchJWKS(ctx, nil, url) }}
}
