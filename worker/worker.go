package worker

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kura-cc/kura/analysis"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/verifier"
)

// ErrWorker is the family of this package's sentinels: every one below wraps
// it and carries its kind of failure (internal/fault).
var ErrWorker = errors.New("worker failed")

// Errors callers tell apart.
var (
	// ErrRefused means a key broker refused a dataset key; the error names
	// the dataset, its owner and the broker's reason.
	ErrRefused = fault.New(ErrWorker, fault.Denied, "worker: key refused")
	// ErrInputMismatch means a sealed file is not the one the manifest
	// names.
	ErrInputMismatch = fault.New(ErrWorker, fault.Tampered, "worker: sealed file does not match the manifest")
)

// Fetcher opens the sealed file of a dataset; the worker checks its digest,
// so the source need not be trusted.
type Fetcher func(ctx context.Context, ds *collab.Dataset) (io.ReaderAt, int64, io.Closer, error)

// Config configures one run.
type Config struct {
	// Collaboration is the collaboration file (manifest versions and
	// approvals); the run is for its current version.
	Collaboration []byte
	// Analysis is the id of the analysis to run.
	Analysis string
	// RunID names the run (32 lowercase hex characters): a queued run's
	// id, the same on every attempt. Empty means a fresh random id.
	RunID string
	// Attester produces this TEE's evidence.
	Attester attestation.Attester
	// HTTP is the client for key brokers and the verifier; nil means a
	// default client.
	HTTP *http.Client
	// Verifier is the attestation API (base URL) of the verifier the run
	// attests to; empty means the first of the manifest's verifiers that
	// gives a url. The run then presents that verifier's token to every key
	// broker. With neither, the run attests to each key broker's built-in
	// verifier and its result carries the first broker's token.
	Verifier string
	// Fetch opens sealed files; nil opens Dataset.Location: an http(s) URL
	// (downloaded into memory) or a local path.
	Fetch Fetcher
	// Engine tunes DuckDB.
	Engine analysis.Config
	// OnStart, when set, receives the run's signed start announcement
	// before the run attests (e.g. to record it in the transparency log);
	// an error stops the run.
	OnStart func(ctx context.Context, start *result.File) error
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Output is what a run leaves: the signed result bundle, the signed
// deletion receipt, and a summary for display (no output values).
type Output struct {
	Result  *result.File
	Receipt *result.File
	RunID   string
	Rows    int
	// Suppressed is how many output rows the output policy withheld.
	Suppressed int
	// Timings are per phase, for benchmarks, in the order the phases
	// ended. Work done in the background (opening the engine during the
	// fetch, decrypting a dataset while the next key is asked for) counts
	// in the phase it overlapped; "wait for the engine" is what was left.
	Timings []Timing
}

// Timing is how long one phase of a run took.
type Timing struct {
	Phase    string
	Duration time.Duration
}

// run is one run's state; everything secret in it is wiped by wipe.
type run struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	manifest *collab.Manifest
	an       *collab.Analysis
	rc       *collab.RunContext
	rcBytes  []byte
	sign     ed25519.PrivateKey
	sessions map[string]*keybroker.Session // by broker URL
	// verifier is the attestation API the run attests to, "" for each
	// broker's own; verifierName is its name in the manifest's list, or its
	// URL when it is not listed.
	verifier, verifierName string
	// teeKey, token and evidence are the run's attestation, which the
	// bundle and receipt carry; evidence is nil until the run attested.
	teeKey    *keybroker.TEEKey
	token     string
	evidence  []byte
	attestErr error // of attesting to the verifier while fetching
	keys      map[string]*dataset.Key
	files     []*os.File // in-memory plaintext
	engine    *analysis.Engine
	destroy   []result.Destroyed
	timings   []Timing
	mark      time.Time
}

// Run performs one clean-room run: it checks every sealed file's digest
// (the files in parallel) while it attests with a fresh signing key bound
// into the evidence, to one of the manifest's verifiers (Config.Verifier),
// and opens the analysis engine; then it obtains each dataset key from that
// dataset's own key broker (which checks the verifier's token, the
// manifest's worker reference values, the owner's approval and the dataset
// digest), decrypts the datasets into memory only, runs the analysis under
// the output policy, encrypts the output to every receiver, signs the
// result bundle, wipes keys and plaintext, and signs a deletion receipt.
// No key is asked for before every sealed file has matched.
//
// Once attested, Run returns a receipt even when the run fails, so the
// owners learn that the keys released so far were wiped.
func Run(ctx context.Context, cfg Config) (*Output, error) {
	r := &run{cfg: cfg, log: cfg.Logger, now: cfg.Now, keys: map[string]*dataset.Key{}, sessions: map[string]*keybroker.Session{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.mark = r.now()
	if err := r.prepare(); err != nil {
		return nil, err
	}
	r.chooseVerifier(ctx)
	if cfg.OnStart != nil {
		start, err := result.SignRunStart(&result.RunStart{Run: r.rcBytes, StartedAt: r.now().UTC()}, r.sign)
		if err != nil {
			return nil, err
		}
		if err := cfg.OnStart(ctx, start); err != nil {
			return nil, fmt.Errorf("announce the run: %w", err)
		}
	}
	out := &Output{RunID: r.rc.RunID}
	bundle, err := r.execute(ctx, out)
	r.wipe()
	outcome := "completed"
	if err != nil {
		outcome = "failed: " + err.Error()
	}
	if r.evidence != nil {
		receipt, rerr := r.receipt(bundle, outcome)
		if rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		out.Receipt = receipt
	}
	out.Result = bundle
	out.Timings = r.timings
	r.log.InfoContext(ctx, "clean-room run finished", "run_id", r.rc.RunID, "analysis", r.rc.Analysis, "outcome", outcome)
	return out, err
}

func (r *run) phase(name string) {
	now := r.now()
	r.timings = append(r.timings, Timing{Phase: name, Duration: now.Sub(r.mark)})
	r.mark = now
}

// prepare verifies the collaboration and creates the run's signing key and
// run context.
func (r *run) prepare() error {
	c, err := collab.ParseCollaboration(r.cfg.Collaboration)
	if err != nil {
		return err
	}
	if err := c.Verify(); err != nil {
		return err
	}
	r.manifest = c.Current()
	r.an = r.manifest.Analysis(r.cfg.Analysis)
	if r.an == nil {
		return fmt.Errorf("analysis %q is not in collaboration %s", r.cfg.Analysis, r.manifest.ID)
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	r.sign = priv
	r.rc = &collab.RunContext{Version: collab.RunContextVersion, Collaboration: r.manifest.ID, ManifestHash: r.manifest.Hash(),
		Analysis: r.an.ID, RunID: cmp.Or(r.cfg.RunID, collab.NewRunID()), SigningKey: pub}
	r.rcBytes, err = r.rc.Marshal()
	return err
}

func (r *run) execute(ctx context.Context, out *Output) (*result.File, error) {
	reads := collab.ReadsOf(r.an)
	inputs := make([]result.Input, 0, len(reads))
	for _, id := range reads {
		ds := r.manifest.Dataset(id)
		r.destroy = append(r.destroy, result.Destroyed{Dataset: id, SealedSHA256: ds.Descriptor.SealedSHA256, KeyResource: ds.Descriptor.KeyBroker.Resource})
		inputs = append(inputs, result.Input{Dataset: id, SealedSHA256: ds.Descriptor.SealedSHA256, KeyResource: ds.Descriptor.KeyBroker.Resource})
	}
	r.phase("verify collaboration")
	// Opening DuckDB and preparing the analysis need no data: they run
	// while the sealed files are fetched, hashed and decrypted.
	engineReady := r.startEngine(ctx)
	defer engineReady() // so that wipe finds the engine, whatever happens
	sealed, err := r.fetchAll(ctx, reads)
	defer func() {
		for _, s := range sealed {
			if s.closer != nil {
				s.closer.Close()
			}
		}
	}()
	if err != nil {
		return nil, err
	}
	r.phase("fetch and hash sealed files, attest")
	if err := r.openAll(ctx, reads, sealed); err != nil {
		return nil, err
	}
	if err := engineReady(); err != nil {
		return nil, err
	}
	r.phase("wait for the engine")
	for i, id := range reads {
		ds := r.manifest.Dataset(id)
		if err := r.engine.LoadParquet(ctx, ds.ID, ds.Descriptor.Schema, r.files[i]); err != nil {
			return nil, fmt.Errorf("dataset %q: %w", ds.ID, err)
		}
	}
	r.phase("load")
	res, err := r.engine.Run(ctx, r.manifest, r.an.ID)
	if err != nil {
		return nil, err
	}
	output, err := res.Encode()
	if err != nil {
		return nil, err
	}
	r.phase("query and output policy")
	out.Rows, out.Suppressed = len(res.Rows), res.SuppressedRows
	cards, err := r.receivers()
	if err != nil {
		return nil, err
	}
	digest := result.DigestHex(output)
	sealedOut, err := result.SealOutput(output, r.rc.RunID, cards)
	clear(output)
	if err != nil {
		return nil, err
	}
	f, err := result.SignBundle(&result.Bundle{
		Run: r.rcBytes, CreatedAt: r.now().UTC(), Inputs: inputs,
		OutputSHA256: digest, SuppressedRows: res.SuppressedRows, Outputs: sealedOut,
		Evidence: r.evidence, EAR: r.token, Collaboration: r.cfg.Collaboration,
	}, r.sign)
	r.phase("encrypt and sign")
	return f, err
}

// startEngine opens the analysis engine and prepares the run's analysis
// in the background. The function it returns waits for that, sets
// r.engine (also when preparing failed, so that wipe closes it) and
// returns the error; it may be called more than once.
func (r *run) startEngine(ctx context.Context) func() error {
	type started struct {
		eng *analysis.Engine
		err error
	}
	done := make(chan started, 1)
	go func() {
		eng, err := analysis.New(ctx, r.cfg.Engine)
		if err == nil {
			err = eng.Prepare(ctx, r.manifest, r.an.ID)
		}
		done <- started{eng, err}
	}()
	return sync.OnceValue(func() error {
		s := <-done
		r.engine = s.eng
		return s.err
	})
}

// sealedFile is a dataset's sealed file, fetched and its digest checked.
type sealedFile struct {
	src    io.ReaderAt
	size   int64
	closer io.Closer
}

// fetchAll fetches every dataset's sealed file and checks its SHA-256
// against the manifest, the files in parallel; meanwhile the run attests
// to its verifier, if it has one, which needs no data either. No key is
// asked for before every file has matched. On error the files fetched so
// far are returned, for the caller to close, and the error is the first
// in the order of reads.
func (r *run) fetchAll(ctx context.Context, reads []string) ([]sealedFile, error) {
	var wg sync.WaitGroup
	if r.verifier != "" {
		wg.Go(func() { r.attestErr = r.attest(ctx) })
	}
	files := make([]sealedFile, len(reads))
	errs := make([]error, len(reads))
	for i, id := range reads {
		wg.Go(func() { files[i], errs[i] = r.fetchAndHash(ctx, r.manifest.Dataset(id)) })
	}
	wg.Wait()
	return files, firstError(errs)
}

// hashBuffer is the read size when hashing a sealed file.
const hashBuffer = 256 << 10

// fetchAndHash fetches one dataset's sealed file and checks its digest.
func (r *run) fetchAndHash(ctx context.Context, ds *collab.Dataset) (sealedFile, error) {
	fetch := r.cfg.Fetch
	if fetch == nil {
		fetch = r.fetch
	}
	src, size, closer, err := fetch(ctx, ds)
	if err != nil {
		return sealedFile{}, fmt.Errorf("dataset %q: fetch sealed file: %w", ds.ID, err)
	}
	f := sealedFile{src: src, size: size, closer: closer}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(src, 0, size), make([]byte, hashBuffer)); err != nil {
		return f, fmt.Errorf("dataset %q: read sealed file: %w", ds.ID, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != ds.Descriptor.SealedSHA256 {
		return f, fmt.Errorf("%w: dataset %q: sealed file SHA-256 is %s, the manifest says %s", ErrInputMismatch, ds.ID, got, ds.Descriptor.SealedSHA256)
	}
	return f, nil
}

// openAll obtains the datasets' keys, in the order of reads, and decrypts
// each sealed file, whose digest fetchAll checked, into memory (r.files),
// a dataset decrypting while the next key is asked for; each sealed file
// is closed once decrypted. The error is the first in the order of reads.
func (r *run) openAll(ctx context.Context, reads []string, sealed []sealedFile) error {
	var wg sync.WaitGroup
	errs := make([]error, len(reads)) // a key's, or else its decryption's
	for i, id := range reads {
		ds := r.manifest.Dataset(id)
		key, err := r.key(ctx, ds)
		if err != nil {
			errs[i] = err
			break
		}
		r.destroy[i].KeyReleased = true
		r.phase("key release " + id)
		mem, err := analysis.MemFile(id)
		if err != nil {
			errs[i] = err
			break
		}
		r.files = append(r.files, mem)
		wg.Go(func() { errs[i] = decrypt(ctx, ds, mem, &sealed[i], key, &r.destroy[i]) })
	}
	wg.Wait()
	r.phase("decrypt")
	return firstError(errs)
}

// firstError returns the first error of errs that is not nil.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// decrypt decrypts one sealed file into mem, records the plaintext size
// in d, and closes the sealed file.
func decrypt(ctx context.Context, ds *collab.Dataset, mem *os.File, s *sealedFile, key dataset.Key, d *result.Destroyed) error {
	if _, err := dataset.OpenAt(ctx, mem, s.src, s.size, key, dataset.Options{}); err != nil {
		return fmt.Errorf("dataset %q: %w", ds.ID, err)
	}
	if st, err := mem.Stat(); err == nil {
		d.PlaintextBytes = st.Size()
	}
	err := s.closer.Close()
	s.closer = nil
	if err != nil {
		return fmt.Errorf("dataset %q: close sealed file: %w", ds.ID, err)
	}
	return nil
}

// fetch opens a dataset's sealed file at its location: an http(s) URL
// (a presigned object-store URL, say), read into memory, or a local path.
func (r *run) fetch(ctx context.Context, ds *collab.Dataset) (io.ReaderAt, int64, io.Closer, error) {
	if ds.Location == "" {
		return nil, 0, nil, errors.New("the manifest gives no location for the sealed file")
	}
	if strings.HasPrefix(ds.Location, "https://") || strings.HasPrefix(ds.Location, "http://") {
		return fetchURL(ctx, r.cfg.HTTP, ds)
	}
	f, err := os.Open(ds.Location)
	if err != nil {
		return nil, 0, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	return f, st.Size(), f, nil
}

// chooseVerifier picks the verifier the run attests to, and logs why.
func (r *run) chooseVerifier(ctx context.Context) {
	given := strings.TrimSuffix(r.cfg.Verifier, "/")
	for _, v := range r.manifest.Verifiers {
		if u := strings.TrimSuffix(v.URL, "/"); u != "" && (given == "" || u == given) {
			r.verifier, r.verifierName = v.URL, v.Name
			break
		}
	}
	switch {
	case given != "" && r.verifierName == "":
		r.verifier, r.verifierName = r.cfg.Verifier, r.cfg.Verifier
		r.log.WarnContext(ctx, "clean-room run attests to a verifier the manifest does not list with this url: receivers will refuse its result unless they name that verifier themselves",
			"run_id", r.rc.RunID, "verifier_url", r.verifier)
	case r.verifier == "":
		r.log.InfoContext(ctx, "clean-room run attests to each key broker's built-in verifier", "run_id", r.rc.RunID,
			"reason", "no verifier given, and none of the manifest's verifiers names an attestation url")
	default:
		r.log.InfoContext(ctx, "clean-room run attests to a verifier of the manifest's list", "run_id", r.rc.RunID, "verifier", r.verifierName, "verifier_url", r.verifier)
	}
}

// attest has the chosen verifier appraise fresh evidence binding the run
// context and a new TEE key, and keeps its token.
func (r *run) attest(ctx context.Context) error {
	key, err := keybroker.NewTEEKey()
	if err != nil {
		return err
	}
	vc := &verifier.Client{BaseURL: r.verifier, HTTP: r.cfg.HTTP}
	n, err := vc.Nonce(ctx)
	if err != nil {
		return err
	}
	rd := attestation.RuntimeData{Nonce: n.Nonce, PublicKey: key.Public(), Context: r.rcBytes}
	b, err := r.cfg.Attester.Attest(ctx, rd.ReportData())
	if err != nil {
		return fmt.Errorf("attest: %w", err)
	}
	b.RuntimeData = rd
	rep, err := vc.Verify(ctx, b)
	if err != nil {
		return err
	}
	ev, err := json.Marshal(b)
	if err != nil {
		return err
	}
	r.teeKey, r.token, r.evidence = key, rep.Token, ev
	r.log.InfoContext(ctx, "clean-room run attested", "run_id", r.rc.RunID, "verifier", r.verifierName, "status", rep.Status, "insecure", rep.Insecure)
	return nil
}

// session returns the run's session with a key broker: the verifier's
// token as a Bearer token, or, without a verifier, a KBS handshake with
// the broker's built-in verifier.
func (r *run) session(ctx context.Context, ds *collab.Dataset) (*keybroker.Session, error) {
	url := ds.Descriptor.KeyBroker.URL
	kc := &keybroker.Client{BaseURL: url, HTTP: r.cfg.HTTP}
	if r.verifier == "" {
		sess, err := kc.Attest(ctx, r.cfg.Attester, r.rcBytes)
		if err != nil {
			return nil, fmt.Errorf("%w: dataset %q (owner %s): attest to key broker %s: %w", ErrRefused, ds.ID, ds.Owner, url, err)
		}
		if r.evidence == nil {
			r.token, r.evidence = sess.Token, sess.Evidence
		}
		return sess, nil
	}
	if r.evidence == nil {
		err := r.attestErr
		if err == nil {
			err = r.attest(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("dataset %q (owner %s): attest to verifier %q at %s: %w", ds.ID, ds.Owner, r.verifierName, r.verifier, err)
		}
	}
	return kc.WithToken(r.teeKey, r.token), nil
}

// key obtains a dataset's key from its owner's key broker, attesting first
// if this run has not yet.
func (r *run) key(ctx context.Context, ds *collab.Dataset) (dataset.Key, error) {
	ref := ds.Descriptor.KeyBroker
	sess := r.sessions[ref.URL]
	if sess == nil {
		var err error
		if sess, err = r.session(ctx, ds); err != nil {
			return dataset.Key{}, err
		}
		r.sessions[ref.URL] = sess
	}
	raw, err := sess.ResourceFor(ctx, ref.Resource, r.cfg.Collaboration)
	if err != nil {
		return dataset.Key{}, fmt.Errorf("%w: dataset %q (owner %s): key broker %s: %w", ErrRefused, ds.ID, ds.Owner, ref.URL, err)
	}
	defer clear(raw)
	k, err := dataset.KeyFromBytes(raw)
	if err != nil {
		return dataset.Key{}, fmt.Errorf("dataset %q: the key broker returned an unusable key: %w", ds.ID, err)
	}
	r.keys[ds.ID] = &k
	return k, nil
}

// receivers returns the cards the output is encrypted to.
func (r *run) receivers() ([]*party.Card, error) {
	names := r.manifest.ReceiversOf(r.an)
	if len(names) == 0 {
		return nil, fmt.Errorf("analysis %q has no result receivers", r.an.ID)
	}
	cards := make([]*party.Card, 0, len(names))
	for _, n := range names {
		p := r.manifest.Party(n)
		if p == nil {
			return nil, fmt.Errorf("receiver %q is not a party", n)
		}
		cards = append(cards, p.Card)
	}
	return cards, nil
}

// wipe drops every key and all plaintext: the engine's tables, the
// in-memory files, and the key bytes.
func (r *run) wipe() {
	if r.engine != nil {
		r.engine.Close()
	}
	for _, f := range r.files {
		f.Truncate(0)
		f.Close()
	}
	for id, k := range r.keys {
		k.Wipe()
		delete(r.keys, id)
	}
	r.files = nil
}

// receipt signs the deletion receipt.
func (r *run) receipt(bundle *result.File, outcome string) (*result.File, error) {
	rec := &result.Receipt{Run: r.rcBytes, Destroyed: r.destroy, DestroyedAt: r.now().UTC(), Outcome: outcome,
		Evidence: r.evidence, EAR: r.token, Collaboration: r.cfg.Collaboration}
	if bundle != nil {
		rec.ResultDigest = result.DigestHex(bundle.Envelope.Payload)
	}
	f, err := result.SignReceipt(rec, r.sign)
	clear(r.sign)
	return f, err
}

// fetchURL downloads a sealed file into an in-memory file, refusing more
// bytes than the manifest's sealed size. The source is untrusted: the
// caller checks the digest of what was downloaded, which cannot change
// afterwards.
func fetchURL(ctx context.Context, hc *http.Client, ds *collab.Dataset) (io.ReaderAt, int64, io.Closer, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	where := redactQuery(ds.Location)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ds.Location, nil)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("location %s: %w", where, err)
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("GET %s: %w", where, errors.Unwrap(err))
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, 0, nil, fmt.Errorf("GET %s: %s", where, res.Status)
	}
	mem, err := analysis.MemFile(ds.ID + "-sealed")
	if err != nil {
		return nil, 0, nil, err
	}
	n, err := io.Copy(mem, io.LimitReader(res.Body, ds.Descriptor.SealedSize+1))
	switch {
	case err != nil:
		err = fmt.Errorf("GET %s: %w", where, err)
	case n > ds.Descriptor.SealedSize:
		err = fmt.Errorf("%w: GET %s: more than the manifest's %d bytes", ErrInputMismatch, where, ds.Descriptor.SealedSize)
	}
	if err != nil {
		mem.Close()
		return nil, 0, nil, err
	}
	return mem, n, mem, nil
}

// redactQuery drops a URL's query, which may hold a presigned URL's
// credentials, from what is logged or shown.
func redactQuery(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}
