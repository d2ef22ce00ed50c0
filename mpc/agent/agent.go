package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/kura-cc/kura/internal/httpsig"
	"github.com/kura-cc/kura/store"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kura-cc/kura/analysis"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/mpc/psi"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/privacy"
)

// Dataset is one of the owner's sealed datasets and its key, which never
// leave the agent.
type Dataset struct {
	// ID is the dataset's id in collaboration manifests.
	ID string
	// Sealed is the path of the sealed file.
	Sealed string
	// Key is the dataset's data key.
	Key dataset.Key
}

// Config configures an agent.
type Config struct {
	// Identity is the owner's party identity: its signing key vouches for
	// the agent's part in each run.
	Identity *party.Identity
	// Datasets are the owner's datasets the agent may compute on.
	Datasets []Dataset
	// Ledger records the runs the agent takes part in (replay, max_runs,
	// privacy budgets). Required.
	Ledger *Ledger
	// Logger receives every decision with its reason; nil discards.
	Logger *slog.Logger
	// Client reaches the other agent (initiator); nil uses a client with a
	// 10-minute timeout.
	Client *http.Client
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Noise is the differential-privacy noise source; nil is crypto/rand.
	Noise io.Reader
	// MaxIdentifiers bounds each side's distinct identifiers; zero is
	// psi.DefaultMaxElements.
	MaxIdentifiers int
	// Workers is the PSI's goroutines per side; zero is GOMAXPROCS.
	Workers int
}

// Agent is one owner's agent on the cryptographic backend: a responder
// serving Handler, and an initiator starting runs with Run.
type Agent struct {
	cfg Config
	log *slog.Logger
	key ed25519.PublicKey

	sig *httpsig.Verifier // the initiator's requests after Start

	mu      sync.Mutex
	pending map[string]*pendingRun
}

// New returns an agent.
func New(cfg Config) (*Agent, error) {
	if cfg.Identity == nil || cfg.Ledger == nil {
		return nil, fmt.Errorf("%w: an agent needs an identity and a ledger", ErrAgent)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Minute}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxIdentifiers == 0 {
		cfg.MaxIdentifiers = psi.DefaultMaxElements
	}
	return &Agent{cfg: cfg, log: cfg.Logger, key: cfg.Identity.Card().SigningKey, pending: map[string]*pendingRun{},
		sig: &httpsig.Verifier{Context: SignatureContext, Nonces: store.NewMemoryEphemeral(0, cfg.Now), Now: cfg.Now}}, nil
}

// plan is what authorize establishes about a run.
type plan struct {
	c      *collab.Collaboration
	m      *collab.Manifest
	an     *collab.Analysis
	rc     *collab.RunContext
	run    []byte
	mine   *collab.Dataset // this owner's dataset
	theirs *collab.Dataset // the other owner's (two owners), or the initiator's (a responder)
	peer   *collab.Party   // theirs' owner
	// responders are the responders' datasets other than mine, in the
	// analysis's order (for the initiator: all of them).
	responders []*collab.Dataset
	local      *Dataset
	pol        *collab.EffectivePolicy
	eps        *privacy.Epsilon
	budget     *privacy.Epsilon
	initiate   bool
	// sums are the indexes of the analysis's sum and avg measures;
	// initiatorSum[k] says whether sums[k] is over the initiator's column
	// (else the responder's).
	sums         []int
	initiatorSum []bool
}

// initiatorDataset is the dataset whose owner starts a run and computes
// its result: the one holding the group-by columns, else the analysis's
// from.
func initiatorDataset(an *collab.Analysis) string {
	for _, gb := range an.Aggregate.GroupBy {
		ds, _, _ := strings.Cut(gb, ".")
		return ds
	}
	return an.Aggregate.From
}

// authorize checks, for this owner, that the run may read its dataset in
// the given role: the collaboration verifies and its current version is
// the run's; the analysis is approved for the mpc backend; this owner and
// the other owner hold the analysis's two datasets in the roles the
// analysis gives them; every owner's approval covers the version (and was
// not revoked in the file); the version has not expired.
func (a *Agent) authorize(c *collab.Collaboration, run []byte, initiate bool) (*plan, error) {
	rc, err := collab.ParseRunContext(run)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := c.Verify(); err != nil {
		return nil, fmt.Errorf("%w: collaboration: %w", ErrRefused, err)
	}
	m := c.Current()
	if m.ID != rc.Collaboration || m.Hash() != rc.ManifestHash {
		return nil, fmt.Errorf("%w: the run is for %s manifest %.16s…, the collaboration's current version is %s manifest %.16s…", ErrRefused, rc.Collaboration, rc.ManifestHash, m.ID, m.Hash())
	}
	an := m.Analysis(rc.Analysis)
	if an == nil {
		return nil, fmt.Errorf("%w: %s has no analysis %q", ErrRefused, m.ID, rc.Analysis)
	}
	if b := an.BackendOf(); b != collab.BackendMPC {
		return nil, fmt.Errorf("%w: analysis %q is approved for the %s backend, not mpc", ErrRefused, an.ID, b)
	}
	p := &plan{c: c, m: m, an: an, rc: rc, run: run, initiate: initiate}
	first := initiatorDataset(an)
	for _, id := range collab.ReadsOf(an) {
		ds := m.Dataset(id)
		owner := m.Party(ds.Owner)
		own := owner != nil && bytes.Equal(owner.Card.SigningKey, a.key)
		switch {
		case own && (id == first) == initiate:
			p.mine = ds
		case id == first:
			p.theirs, p.peer = ds, owner // a responder's initiator
		default:
			p.responders = append(p.responders, ds)
		}
		if err := c.CheckApproved(ed25519.PublicKey(owner.Card.SigningKey), an.ID); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrRefused, err)
		}
	}
	if p.mine == nil {
		want := first
		if !initiate {
			want = "a dataset other than " + first
		}
		return nil, fmt.Errorf("%w: this agent's owner %q does not own %s in analysis %q", ErrRefused, a.cfg.Identity.Name(), want, an.ID)
	}
	if initiate && len(p.responders) == 1 {
		p.theirs, p.peer = p.responders[0], m.Party(p.responders[0].Owner)
	}
	if p.theirs == nil && !(initiate && len(p.responders) > 1) {
		return nil, fmt.Errorf("%w: analysis %q does not read two datasets", ErrRefused, an.ID)
	}
	for i := range a.cfg.Datasets {
		if a.cfg.Datasets[i].ID == p.mine.ID {
			p.local = &a.cfg.Datasets[i]
		}
	}
	if p.local == nil {
		return nil, fmt.Errorf("%w: this agent does not hold dataset %q", ErrRefused, p.mine.ID)
	}
	if exp, ok := m.ExpiresAt(); ok && !a.cfg.Now().Before(exp) {
		return nil, fmt.Errorf("%w: the approvals of %s version %d lapsed at %s", ErrRefused, m.ID, len(c.Versions), m.Expires)
	}
	if p.pol, err = m.EffectivePolicy(an.ID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if eps, ok := an.Epsilon(); ok {
		p.eps = &eps
	}
	p.sums, p.initiatorSum = sumMeasures(an)
	if b, ok := p.mine.Budget(); ok {
		p.budget = &b
	}
	return p, nil
}

// reserve records the run in the ledger, within max_runs and the owner's
// privacy budget.
func (a *Agent) reserve(p *plan, session psi.SessionID) error {
	return a.cfg.Ledger.Reserve(Entry{
		Collaboration: p.m.ID, Analysis: p.an.ID, RunID: p.rc.RunID,
		Session: hex.EncodeToString(session[:]), Dataset: p.mine.ID, At: a.cfg.Now().UTC(),
	}, Limits{MaxRuns: p.an.MaxRuns, Budget: p.budget, Epsilon: p.eps})
}

// input decrypts the owner's dataset into memory, checks it is the sealed
// file the manifest names, and computes its side of the PSI. The plaintext
// is wiped (the engine's memory file truncated) before it returns.
func (a *Agent) input(ctx context.Context, p *plan) (*analysis.PSIInput, int64, error) {
	f, err := os.Open(p.local.Sealed)
	if err != nil {
		return nil, 0, fmt.Errorf("dataset %q: %w", p.mine.ID, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, 0, fmt.Errorf("dataset %q: %w", p.mine.ID, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.mine.Descriptor.SealedSHA256 {
		return nil, 0, fmt.Errorf("%w: dataset %q: the sealed file's SHA-256 is %s, the manifest says %s", ErrRefused, p.mine.ID, got, p.mine.Descriptor.SealedSHA256)
	}
	eng, err := analysis.New(ctx, analysis.Config{Logger: a.log})
	if err != nil {
		return nil, 0, err
	}
	defer eng.Close()
	mem, err := analysis.MemFile(p.mine.ID)
	if err != nil {
		return nil, 0, err
	}
	if _, err := dataset.OpenAt(ctx, mem, f, st.Size(), p.local.Key, dataset.Options{}); err != nil {
		mem.Close()
		return nil, 0, fmt.Errorf("dataset %q: %w", p.mine.ID, err)
	}
	var plain int64
	if st, err := mem.Stat(); err == nil {
		plain = st.Size()
	}
	if err := eng.LoadParquet(ctx, p.mine.ID, p.mine.Descriptor.Schema, mem); err != nil {
		mem.Close()
		return nil, 0, fmt.Errorf("dataset %q: %w", p.mine.ID, err)
	}
	in, err := eng.PSIInput(ctx, p.m, p.an.ID, p.mine.ID)
	if err != nil {
		return nil, 0, err
	}
	return in, plain, nil
}

func (a *Agent) psiConfig(p *plan, session psi.SessionID) psi.Config {
	return psi.Config{Session: session, Mode: psi.ModeGroups, MaxElements: a.cfg.MaxIdentifiers, Workers: a.cfg.Workers, PayloadSize: p.payloadSize(false)}
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
