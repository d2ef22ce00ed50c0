package timelock

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/drand/drand/chain"
	"github.com/drand/drand/crypto"
	"github.com/drand/kyber"
)

// QuicknetHash is the chain hash of drand's public quicknet chain (League of
// Entropy, a round every 3 s, scheme bls-unchained-g1-rfc9380).
const QuicknetHash = "52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971"

// quicknetInfo is quicknet's chain info as its nodes serve it; Quicknet pins
// it so that sealing to quicknet needs no network, and a test checks that it
// hashes to QuicknetHash.
const quicknetInfo = `{"public_key":"83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a","period":3,"genesis_time":1692803367,"hash":"52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971","groupHash":"f477d5c89f21a17c863a7f937c6a6d15859414d2be09cd448d4279af331c5d3e","schemeID":"bls-unchained-g1-rfc9380","metadata":{"beaconID":"quicknet"}}`

// DevBeaconID is the beacon id of a kura dev beacon (package
// timelock/beacon); a chain that advertises it is refused unless insecure
// beacons are allowed.
const DevBeaconID = "kura-dev-INSECURE"

// MaxHorizon is how far ahead a release time may be.
const MaxHorizon = 100 * 365 * 24 * time.Hour

// MaxChainInfoSize bounds a chain info document.
const MaxChainInfoSize = 16 << 10

// maxBeaconSize bounds a beacon answer.
const maxBeaconSize = 16 << 10

// Chain names a drand chain: its hash, which pins its public key, period and
// genesis, and where to fetch its beacons.
type Chain struct {
	// Hash is the chain hash, 64 lowercase hex digits.
	Hash string
	// URLs are drand HTTP API roots, tried in order.
	URLs []string
	// Info, when set, is the chain's info pinned in advance: sealing then
	// needs no network. It must hash to Hash.
	Info *ChainInfo
}

// Quicknet returns drand's public quicknet chain, with its info pinned.
func Quicknet() Chain {
	info, err := ParseChainInfo([]byte(quicknetInfo))
	if err != nil {
		panic("timelock: built-in quicknet info: " + err.Error()) // a build defect, caught by tests
	}
	return Chain{Hash: QuicknetHash, URLs: []string{"https://api.drand.sh", "https://drand.cloudflare.com"}, Info: info}
}

// knownChain returns the pinned info of a built-in chain, or nil.
func knownChain(hash string) *ChainInfo {
	if hash == QuicknetHash {
		return Quicknet().Info
	}
	return nil
}

// ChainInfo is a drand chain's public description: what verifies its
// beacons and when each round is published.
type ChainInfo struct {
	// Hash is the chain hash computed from the other fields (never taken
	// from the document).
	Hash string
	// PublicKey is the chain's BLS public key.
	PublicKey []byte
	// Scheme is the drand scheme id.
	Scheme string
	// Period is the time between rounds.
	Period time.Duration
	// Genesis is when round 1 was published.
	Genesis time.Time
	// BeaconID is the chain's beacon id ("quicknet", DevBeaconID, …).
	BeaconID string

	info   *chain.Info
	scheme *crypto.Scheme
}

// ParseChainInfo parses a drand chain info document (GET /{hash}/info) and
// computes its chain hash. It accepts only schemes tlock supports and
// refuses a "hash" member that does not match the computed hash.
func ParseChainInfo(data []byte) (*ChainInfo, error) {
	if len(data) > MaxChainInfoSize {
		return nil, fmt.Errorf("%w: chain info larger than %d bytes", ErrMalformed, MaxChainInfoSize)
	}
	var claimed struct {
		Hash   string `json:"hash"`
		Period int64  `json:"period"`
	}
	if err := json.Unmarshal(data, &claimed); err != nil {
		return nil, fmt.Errorf("%w: chain info: %w", ErrMalformed, err)
	}
	if claimed.Period < 1 || claimed.Period > 3600 {
		return nil, fmt.Errorf("%w: chain info: period %d s out of range", ErrMalformed, claimed.Period)
	}
	ci, err := chain.InfoFromJSON(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: chain info: %w", ErrMalformed, err)
	}
	sch, err := crypto.SchemeFromName(ci.Scheme)
	if err != nil || !(sch.Name == crypto.SigsOnG1ID || sch.Name == crypto.UnchainedSchemeID || sch.Name == crypto.ShortSigSchemeID) {
		return nil, fmt.Errorf("%w: chain info: scheme %q is not an unchained scheme tlock supports", ErrMalformed, ci.Scheme)
	}
	if ci.PublicKey.Equal(ci.PublicKey.Null()) {
		return nil, fmt.Errorf("%w: chain info: public key is the identity point", ErrMalformed)
	}
	if ci.GenesisTime <= 0 || ci.GenesisTime > maxUnix {
		return nil, fmt.Errorf("%w: chain info: genesis time %d out of range", ErrMalformed, ci.GenesisTime)
	}
	pub, err := ci.PublicKey.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: chain info: %w", ErrMalformed, err)
	}
	hash := ci.HashString()
	if claimed.Hash != "" && claimed.Hash != hash {
		return nil, fmt.Errorf("%w: chain info claims hash %s but its contents hash to %s", ErrMalformed, claimed.Hash, hash)
	}
	return &ChainInfo{
		Hash: hash, PublicKey: pub, Scheme: sch.Name, Period: ci.Period,
		Genesis: time.Unix(ci.GenesisTime, 0).UTC(), BeaconID: ci.ID,
		info: ci, scheme: sch,
	}, nil
}

// maxUnix is the last second a release time may fall on (year 9999), far
// beyond MaxHorizon and far below int64 and time.Time overflow.
const maxUnix = 253402300799

// Insecure reports whether the chain is a kura dev beacon.
func (c *ChainInfo) Insecure() bool { return c.BeaconID == DevBeaconID }

// TimeOf returns when round is published.
func (c *ChainInfo) TimeOf(round uint64) (time.Time, error) {
	p := uint64(c.Period / time.Second)
	if round == 0 || p == 0 {
		return time.Time{}, fmt.Errorf("%w: round %d", ErrBadTime, round)
	}
	g := c.Genesis.Unix()
	// (round-1)*p must stay below maxUnix-g without overflowing uint64.
	if round-1 > uint64(maxUnix-g)/p {
		return time.Time{}, fmt.Errorf("%w: round %d is past the year 9999 on this chain", ErrBadTime, round)
	}
	return time.Unix(g+int64((round-1)*p), 0).UTC(), nil
}

// RoundAt returns the first round published at or after t.
func (c *ChainInfo) RoundAt(t time.Time) (uint64, error) {
	p := int64(c.Period / time.Second)
	g := c.Genesis.Unix()
	u := t.Unix()
	if t.Nanosecond() > 0 {
		u++ // round up: a round published before t would release early
	}
	if u > maxUnix || p <= 0 {
		return 0, fmt.Errorf("%w: %s is past the year 9999", ErrBadTime, t.UTC().Format(time.RFC3339))
	}
	if u <= g {
		return 1, nil
	}
	d := u - g                         // > 0, < maxUnix: no overflow
	r := uint64((d+p-1)/p) + 1         // ceil(d/p)+1
	if r == 0 || r == math.MaxUint64 { // unreachable with the bounds above; kept as a guard
		return 0, fmt.Errorf("%w: round number overflows", ErrBadTime)
	}
	// Cross-check the inverse, so that no arithmetic slip can produce a
	// round published before t (the classic wrap-around pitfall).
	rt, err := c.TimeOf(r)
	if err != nil {
		return 0, err
	}
	if rt.Unix() < u || rt.Unix()-u >= p {
		return 0, fmt.Errorf("%w: round %d for %s is inconsistent", ErrBadTime, r, t.UTC().Format(time.RFC3339))
	}
	return r, nil
}

// VerifyBeacon checks sig as the chain's signature of round.
func (c *ChainInfo) VerifyBeacon(round uint64, sig []byte) error {
	b := &chain.Beacon{Round: round, Signature: sig}
	if err := c.scheme.VerifyBeacon(b, c.info.PublicKey); err != nil {
		return fmt.Errorf("%w: round %d of chain %s", ErrBadBeacon, round, c.Hash)
	}
	return nil
}

func (c *ChainInfo) point() kyber.Point { return c.info.PublicKey }

// Beacon is one published round of a chain.
type Beacon struct {
	Round     uint64
	Signature []byte
}

// Network is where beacons come from. Implementations need not verify what
// they return: package timelock verifies chain infos and signatures itself.
type Network interface {
	// Info returns the chain's info document.
	Info(ctx context.Context) ([]byte, error)
	// Beacon returns the beacon of round, or of the latest round when round
	// is 0. A round not yet published is an error wrapping ErrTooEarly.
	Beacon(ctx context.Context, round uint64) (*Beacon, error)
}

// HTTPNetwork reads a chain over the drand HTTP API.
type HTTPNetwork struct {
	chain Chain
	hc    *http.Client
	log   *slog.Logger
}

// NewHTTPNetwork returns a Network for c's URLs. hc nil means a client with
// a 10 s timeout; log nil discards.
func NewHTTPNetwork(c Chain, hc *http.Client, log *slog.Logger) *HTTPNetwork {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &HTTPNetwork{chain: c, hc: hc, log: log}
}

// Info fetches the chain info from the first URL that answers.
func (n *HTTPNetwork) Info(ctx context.Context) ([]byte, error) {
	return n.get(ctx, "info", MaxChainInfoSize)
}

// Beacon fetches a round's beacon.
func (n *HTTPNetwork) Beacon(ctx context.Context, round uint64) (*Beacon, error) {
	p := "public/latest"
	if round != 0 {
		p = "public/" + strconv.FormatUint(round, 10)
	}
	data, err := n.get(ctx, p, maxBeaconSize)
	if err != nil {
		return nil, err
	}
	var rd struct {
		Round     uint64 `json:"round"`
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal(data, &rd); err != nil {
		return nil, fmt.Errorf("%w: chain %s: beacon answer: %w", ErrMalformed, n.chain.Hash, err)
	}
	sig, err := hex.DecodeString(rd.Signature)
	if err != nil || len(sig) == 0 || (round != 0 && rd.Round != round) {
		return nil, fmt.Errorf("%w: chain %s: beacon answer for round %d is malformed", ErrMalformed, n.chain.Hash, round)
	}
	return &Beacon{Round: rd.Round, Signature: sig}, nil
}

var errNotFound = errors.New("not found")

func (n *HTTPNetwork) get(ctx context.Context, p string, limit int64) ([]byte, error) {
	if len(n.chain.URLs) == 0 {
		return nil, fmt.Errorf("%w: chain %s has no URL", ErrUnavailable, n.chain.Hash)
	}
	var errs []string
	notFound := 0
	for _, root := range n.chain.URLs {
		u, err := url.JoinPath(root, n.chain.Hash, p)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", root, err))
			continue
		}
		data, err := n.fetch(ctx, u, limit)
		if err == nil {
			return data, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, errNotFound) {
			notFound++
		}
		n.log.Debug("timelock: beacon fetch failed", "url", u, "err", err)
		errs = append(errs, err.Error())
	}
	if notFound == len(n.chain.URLs) {
		if p == "info" {
			return nil, fmt.Errorf("%w: %s do not serve chain %s (404): check the chain hash and URL", ErrWrongChain, strings.Join(n.chain.URLs, ", "), n.chain.Hash)
		}
		return nil, fmt.Errorf("%w: chain %s has not published %s", ErrTooEarly, n.chain.Hash, p)
	}
	return nil, fmt.Errorf("%w: chain %s: %s", ErrUnavailable, n.chain.Hash, strings.Join(errs, "; "))
}

func (n *HTTPNetwork) fetch(ctx context.Context, u string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := n.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusTooEarly:
		return nil, fmt.Errorf("GET %s: %s: %w", u, resp.Status, errNotFound)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	case int64(len(data)) > limit:
		return nil, fmt.Errorf("GET %s: answer larger than %d bytes", u, limit)
	}
	return data, nil
}

// resolve returns the verified info of the configured chain: the pinned
// info when there is one, else the network's, checked against the hash.
func resolve(ctx context.Context, c Chain, net Network, allowInsecure bool) (*ChainInfo, error) {
	info := c.Info
	if info == nil {
		data, err := net.Info(ctx)
		if err != nil {
			return nil, err
		}
		if info, err = ParseChainInfo(data); err != nil {
			return nil, fmt.Errorf("chain %s at %s: %w", c.Hash, strings.Join(c.URLs, ", "), err)
		}
	}
	if info.Hash != c.Hash {
		return nil, fmt.Errorf("%w: %s serves chain %s, want %s", ErrWrongChain, strings.Join(c.URLs, ", "), info.Hash, c.Hash)
	}
	if info.Insecure() && !allowInsecure {
		return nil, fmt.Errorf("%w: chain %s (beacon id %q) is a local dev beacon whose operator can open everything sealed to it: allow it explicitly (kura: --dev) or use a real drand chain", ErrInsecureBeacon, info.Hash, info.BeaconID)
	}
	return info, nil
}

// checkHash validates a chain hash's syntax.
func checkHash(h string) error {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 || strings.ToLower(h) != h {
		return fmt.Errorf("%w: chain hash %q: want 64 lowercase hex digits", ErrWrongChain, h)
	}
	return nil
}
