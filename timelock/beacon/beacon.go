// Package beacon is a local, single-key drand beacon for development and
// tests: it signs rounds with one BLS12-381 key under drand's quicknet scheme
// ("bls-unchained-g1-rfc9380": unchained rounds, G1 signatures, RFC 9380
// hash-to-curve) and serves the drand HTTP API that drand's and tlock's
// clients read (/info, /chains, /{chainhash}/info, /{chainhash}/public/latest,
// /{chainhash}/public/{round}, /health).
//
// # Security model
//
// There is none: whoever runs a dev beacon holds its private key and can
// compute the signature of any round, so a file time-locked to a dev beacon
// can be opened by that person at any time. A real drand network splits the
// key across independent parties (threshold BLS) so that nobody can. The
// dev beacon's chain info says so in its beacon id (ID, "kura-dev-INSECURE"),
// it logs a warning when created, and package timelock refuses such a chain
// unless the caller explicitly allows insecure beacons. See
// docs/spec/timelock.md §6.
package beacon

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/drand/drand/chain"
	"github.com/drand/drand/crypto"
	"github.com/drand/drand/protobuf/common"
	"github.com/drand/kyber"
	"github.com/drand/kyber/util/random"

	"github.com/kura-cc/kura/internal/fault"
)

// ID is the beacon id every dev beacon advertises in its chain info. Package
// timelock recognises it and refuses the chain unless insecure beacons are
// allowed.
const ID = "kura-dev-INSECURE"

// Scheme is the drand scheme a dev beacon signs with: the scheme of drand's
// public quicknet chain.
const Scheme = crypto.SigsOnG1ID

// Config configures a dev beacon. The zero value is ready to use.
type Config struct {
	// Period is the time between rounds, a whole number of seconds (drand
	// hashes it as seconds). Zero means one second.
	Period time.Duration
	// Genesis is when round 1 is published; it is truncated to the second.
	// Zero means Now().
	Genesis time.Time
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the source of the private key; nil means crypto/rand.
	Rand io.Reader
	// Logger receives the INSECURE warning and request errors; nil
	// discards them.
	Logger *slog.Logger
}

// Beacon is a running dev beacon: a key, a genesis time and a period.
// It is safe for concurrent use.
type Beacon struct {
	scheme  *crypto.Scheme
	priv    kyber.Scalar
	info    *chain.Info
	hash    []byte
	infoRaw []byte
	now     func() time.Time
	log     *slog.Logger
}

// ErrConfig means a Config that cannot make a beacon.
var ErrConfig = fault.New(nil, fault.Internal, "beacon: bad configuration")

// New creates a dev beacon with a fresh key.
func New(cfg Config) (*Beacon, error) {
	if cfg.Period == 0 {
		cfg.Period = time.Second
	}
	if cfg.Period < time.Second || cfg.Period%time.Second != 0 || cfg.Period > time.Hour {
		return nil, fmt.Errorf("%w: period %s: want a whole number of seconds from 1s to 1h", ErrConfig, cfg.Period)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Genesis.IsZero() {
		cfg.Genesis = cfg.Now()
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	sch, err := crypto.SchemeFromName(Scheme)
	if err != nil {
		return nil, err
	}
	priv := sch.KeyGroup.Scalar().Pick(random.New(cfg.Rand))
	pub := sch.KeyGroup.Point().Mul(priv, nil)
	pubBytes, err := pub.MarshalBinary()
	if err != nil {
		return nil, err
	}
	seed := sha256.Sum256(append([]byte("kura dev beacon genesis seed\x00"), pubBytes...))
	info := &chain.Info{
		PublicKey:   pub,
		ID:          ID,
		Period:      cfg.Period,
		Scheme:      sch.Name,
		GenesisTime: cfg.Genesis.Unix(),
		GenesisSeed: seed[:],
	}
	b := &Beacon{scheme: sch, priv: priv, info: info, hash: info.Hash(), now: cfg.Now, log: cfg.Logger}
	var buf jsonBuffer
	if err := info.ToJSON(&buf, &common.Metadata{BeaconID: ID}); err != nil {
		return nil, err
	}
	b.infoRaw = buf.b
	b.log.Warn("dev beacon: INSECURE, its operator can open anything time-locked to it; never use it for real data",
		"chain_hash", b.ChainHash(), "beacon_id", ID, "period", cfg.Period, "genesis", time.Unix(info.GenesisTime, 0).UTC())
	return b, nil
}

type jsonBuffer struct{ b []byte }

func (j *jsonBuffer) Write(p []byte) (int, error) { j.b = append(j.b, p...); return len(p), nil }

// ChainHash returns the hex chain hash that identifies this beacon.
func (b *Beacon) ChainHash() string { return hex.EncodeToString(b.hash) }

// PublicKey returns the beacon's public key (a compressed G2 point).
func (b *Beacon) PublicKey() []byte {
	p, _ := b.info.PublicKey.MarshalBinary()
	return p
}

// InfoJSON returns the chain info document the beacon serves.
func (b *Beacon) InfoJSON() []byte { return append([]byte(nil), b.infoRaw...) }

// Period returns the time between rounds.
func (b *Beacon) Period() time.Duration { return b.info.Period }

// Genesis returns the time of round 1.
func (b *Beacon) Genesis() time.Time { return time.Unix(b.info.GenesisTime, 0) }

// Current returns the latest round published at the beacon's clock, or 0
// before genesis.
func (b *Beacon) Current() uint64 {
	now := b.now().Unix()
	if now < b.info.GenesisTime {
		return 0
	}
	return chain.CurrentRound(now, b.info.Period, b.info.GenesisTime)
}

// Sign returns the signature of round, whether or not it is published yet:
// the reason a dev beacon is insecure.
func (b *Beacon) Sign(round uint64) ([]byte, error) {
	msg := b.scheme.DigestBeacon(&chain.Beacon{Round: round})
	return b.scheme.AuthScheme.Sign(b.priv, msg)
}

// Handler returns the drand HTTP API of this beacon. Rounds after the
// current one are answered 404, as drand does.
func (b *Beacon) Handler() http.Handler {
	mux := http.NewServeMux()
	h := b.ChainHash()
	mux.HandleFunc("GET /info", b.serveInfo)
	mux.HandleFunc("GET /"+h+"/info", b.serveInfo)
	mux.HandleFunc("GET /chains", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, []string{h})
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		cur := b.Current()
		writeJSON(w, map[string]uint64{"current": cur, "expected": cur})
	})
	mux.HandleFunc("GET /public/{round}", b.servePublic)
	mux.HandleFunc("GET /"+h+"/public/{round}", b.servePublic)
	// Public data, readable by any page (a web console's time-lock vault),
	// as drand's own HTTP API is.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		mux.ServeHTTP(w, r)
	})
}

func (b *Beacon) serveInfo(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(b.infoRaw)
}

// randomData is drand's public beacon answer; byte fields are hex.
type randomData struct {
	Round      uint64 `json:"round"`
	Randomness string `json:"randomness"`
	Signature  string `json:"signature"`
}

func (b *Beacon) servePublic(w http.ResponseWriter, r *http.Request) {
	cur := b.Current()
	var round uint64
	if s := r.PathValue("round"); s == "latest" {
		round = cur
	} else {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			http.Error(w, "bad round number", http.StatusBadRequest)
			return
		}
		round = n
		if n == 0 {
			round = cur // drand serves round 0 as the latest
		}
	}
	if round == 0 || round > cur {
		// drand answers a round it has not produced with 404.
		http.Error(w, "Requested future beacon", http.StatusNotFound)
		return
	}
	sig, err := b.Sign(round)
	if err != nil {
		b.log.Error("dev beacon: sign", "round", round, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	rnd := sha256.Sum256(sig)
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeJSON(w, randomData{Round: round, Randomness: hex.EncodeToString(rnd[:]), Signature: hex.EncodeToString(sig)})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// Serve serves the beacon's API on ln until ctx is done, then shuts the
// server down gracefully with a fresh timeout.
func (b *Beacon) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           b.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
