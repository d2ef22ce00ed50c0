package cli

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

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/cmd/kura/internal/datakey"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/scenario"
	"github.com/kura-cc/kura/server"
)

// localServer is a kura server on a loopback port.
type localServer struct {
	URL string
	// Admin signs owner requests; nil unless the server was started with
	// an owner.
	Admin *keybroker.AdminClient
	stop  func()
}

// devConfig is a dev-mode server with every role, its state in dir and
// collateral only from what evidence carries (no network).
func devConfig(dir string, log *slog.Logger) server.Config {
	return server.Config{DataDir: dir, DevMode: true, Version: "kura " + Version, Logger: log}
}

// serveLocal builds a server from cfg and serves it on a loopback port
// until stop, which also closes it.
func serveLocal(ctx context.Context, cfg server.Config) (*localServer, error) {
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
	return &localServer{URL: "http://" + l.Addr().String(), stop: func() { cancel(); <-done; closeServer() }}, nil
}

// startLocalServer starts a dev-mode server with every role, whose state
// lives in dir and whose admin API accepts one owner's key.
func startLocalServer(ctx context.Context, dir, owner string, log *slog.Logger) (*localServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	cfg := devConfig(dir, log)
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
func (s *localServer) JWKSURL() string { return s.URL + "/.well-known/jwks.json" }

// cleanRoom is the clean-room story on one machine: an airline and a
// mobile carrier, each with its own key broker, seal and register their
// data, approve a manifest, and a worker in the (INSECURE) simulated TEE
// runs the analyses.
type cleanRoom struct {
	dir     string
	rows    int
	log     *slog.Logger
	parties map[string]*party.Identity
	servers map[string]*localServer
	plain   map[string]string // dataset id -> plaintext Parquet path
	collab  *collab.Collaboration
	// worker is the measurement the manifest approves.
	worker   string
	attester *sim.Attester
}

// Story parties and datasets.
const (
	storyAirline = "airline"
	storyCarrier = "carrier"
)

func (c *cleanRoom) close() {
	for _, s := range c.servers {
		s.stop()
	}
}

// setUp generates and seals the data, starts each owner's key broker,
// registers the keys and writes the collaboration (unapproved).
func (c *cleanRoom) setUp(ctx context.Context) error {
	c.parties, c.servers, c.plain = map[string]*party.Identity{}, map[string]*localServer{}, map[string]string{}
	for _, name := range []string{storyAirline, storyCarrier} {
		id, err := party.Generate(name, party.KEMX25519)
		if err != nil {
			return err
		}
		c.parties[name] = id
		s, err := startLocalServer(ctx, filepath.Join(c.dir, name+"-kbs"), name, c.log)
		if err != nil {
			return err
		}
		c.servers[name] = s
	}
	files, err := scenario.Generate(ctx, c.dir, scenario.Config{Rows: c.rows, Seed: 1})
	if err != nil {
		return err
	}
	c.plain["flights"], c.plain["visits"] = files.Flights, files.Visits
	m := &collab.Manifest{
		Format: collab.FormatVersion, ID: "airline-carrier-2026",
		Description: "Where do our passengers go, and how long do they stay? Statistics only.",
		Receivers:   []string{storyAirline, storyCarrier},
	}
	for _, name := range []string{storyAirline, storyCarrier} {
		m.Parties = append(m.Parties, collab.Party{Name: name, Roles: []collab.Role{collab.RoleDataProvider, collab.RoleResultReceiver}, Card: c.parties[name].Card()})
	}
	for _, ds := range []struct {
		id, owner string
		schema    *table.Schema
		min       int
	}{{"flights", storyAirline, scenario.FlightsSchema(), 10}, {"visits", storyCarrier, scenario.VisitsSchema(), 20}} {
		d, err := c.sealAndRegister(ctx, ds.id, ds.owner, ds.schema)
		if err != nil {
			return err
		}
		d.OutputPolicy = collab.OutputPolicy{MinDistinctIdentities: ds.min}
		m.Datasets = append(m.Datasets, *d)
	}
	m.Analyses = storyAnalyses()
	meas, err := sim.ExecutableMeasurement()
	if err != nil {
		return err
	}
	c.worker = hex.EncodeToString(meas)
	m.Worker.ReferenceValues.Measurements = []appraisal.Measurement{{TEE: string(attestation.Sim), Name: "kura worker (INSECURE sim: this executable)", Value: c.worker}}
	if c.collab, err = collab.New(m); err != nil {
		return err
	}
	return nil
}

// storyAnalyses are the two analyses of the story: one declared, one custom
// SQL.
func storyAnalyses() []collab.Analysis {
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
func (c *cleanRoom) sealAndRegister(ctx context.Context, id, owner string, sc *table.Schema) (*collab.Dataset, error) {
	key := dataset.NewKey()
	defer key.Wipe()
	sealed := filepath.Join(c.dir, id+".kura")
	if _, err := dataset.SealFile(ctx, sealed, c.plain[id], key, dataset.Header{DatasetID: id, Format: "parquet", Schema: sc.JSON()}, dataset.Options{}); err != nil {
		return nil, err
	}
	sum, size, err := datakey.FileSHA256(sealed)
	if err != nil {
		return nil, err
	}
	resource := owner + "/dataset-key/" + id
	srv := c.servers[owner]
	v, err := srv.Admin.Put(ctx, resource, key.Bytes(), datakey.Metadata(id, sum, key.ID(), c.parties[owner].Card()), "")
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", id, err)
	}
	kid := key.ID()
	return &collab.Dataset{ID: id, Owner: owner, Location: sealed, Descriptor: collab.Descriptor{
		Version: 1, DatasetID: id, Owner: owner, Format: "parquet", Schema: sc,
		KeyID: hex.EncodeToString(kid[:]), SealedSHA256: sum, SealedSize: size,
		KeyBroker:    collab.KeyBrokerRef{URL: srv.URL, Resource: resource, Version: v},
		RegisteredAt: time.Now().UTC().Format(time.RFC3339),
	}}, nil
}

// approve has the named parties approve the current manifest version.
func (c *cleanRoom) approve(names ...string) error {
	for _, n := range names {
		a, err := c.collab.Approve(c.parties[n], time.Now())
		if err != nil {
			return err
		}
		if err := c.collab.AddApproval(a); err != nil {
			return err
		}
	}
	return nil
}
