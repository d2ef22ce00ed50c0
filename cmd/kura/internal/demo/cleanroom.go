package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/worker"
)

// demoRows is the size of each of the demo's datasets.
const demoRows = 4000

// cleanRoom runs the clean-room story: two owners, their own key brokers,
// approvals, a refused run, an approved run through the airline server's
// run queue, the receiver's offline checks and the deletion receipt.
func (d *demo) cleanRoom(ctx context.Context, dir string, log *slog.Logger) error {
	d.section("Clean room: an airline and a carrier learn where travellers go, and nothing else (sim TEE: INSECURE)")
	c, err := NewCleanRoom(ctx, CleanRoomConfig{Dir: filepath.Join(dir, "cleanroom"), Rows: demoRows, Version: d.cfg.Version, Logger: log})
	if err != nil {
		return err
	}
	defer c.Close()
	d.say("synthetic data: %d flights (the airline) and %d visits (the carrier), overlapping on part of the population by phone number", demoRows, demoRows)
	d.say("each owner runs its own key broker (airline %s, carrier %s), seals its data and registers the key, pinned to its own party key", c.Servers[Airline].URL, c.Servers[Carrier].URL)
	d.say("the attestation verifier both accept is run by neither: %s at %s; both brokers trust its tokens (and those of %s, which other collaborations use)", ListedVerifier, c.Verifiers[ListedVerifier].URL, OtherVerifier)
	m := c.Collab.Current()
	d.say("manifest %s version 1, %s: analyses %q (declared) and %q (custom SQL); worker = this executable's sim measurement; verifiers = [%s]", m.ID, collab.DisplayHash(m.Hash())[:23]+"…", m.Analyses[0].ID, m.Analyses[1].ID, m.Verifiers[0].Name)
	d.detail("output policy: airline ≥ %d, carrier ≥ %d distinct people behind every output row (the strictest applies to both)", m.Datasets[0].OutputPolicy.MinDistinctIdentities, m.Datasets[1].OutputPolicy.MinDistinctIdentities)

	if err := c.Approve(Airline); err != nil {
		return err
	}
	const analysisID = "visitors_by_area_age"
	_, err = c.Run(ctx, analysisID)
	if !errors.Is(err, worker.ErrRefused) {
		return fmt.Errorf("a run the carrier had not approved was not refused: %v", err)
	}
	d.say("only the airline has approved: the worker attests, the airline's broker releases, the carrier's refuses:")
	d.detail("%s", lastClause(err))

	if err := c.Approve(Carrier); err != nil {
		return err
	}
	res, receipt, err := d.queuedRun(ctx, c, analysisID, log)
	if err != nil {
		return err
	}
	trust := c.Trust(Carrier)
	vkey, err := os.ReadFile(filepath.Join(c.Dir, Airline+"-kbs", "log-key.pub"))
	if err != nil {
		return err
	}
	if trust.Log, err = auditlog.ParseVerifierKey(strings.TrimSpace(string(vkey))); err != nil {
		return err
	}
	vb, err := result.VerifyBundle(ctx, res, trust)
	if err != nil {
		return err
	}
	plain, err := vb.Open(c.Parties[Carrier])
	if err != nil {
		return err
	}
	d.say("the carrier verifies the result bundle before decrypting its copy, trusting the verifier list it approved (fetching %s's JWKS):", ListedVerifier)
	for _, check := range vb.Checks {
		d.detail("ok  %s", check)
	}
	var table strings.Builder
	if err := d.cfg.PrintResult(&table, plain); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(table.String(), "\n"), "\n") {
		d.detail("%s", line)
	}
	r, err := result.VerifyReceipt(ctx, receipt, vb, trust)
	if err != nil {
		return err
	}
	d.say("deletion receipt verified: run %s %s; signed by the run's attested key", r.Run.RunID[:8], r.Receipt.Outcome)
	for _, w := range r.Receipt.Destroyed {
		d.detail("wiped %s: its key (%s) and %d bytes of plaintext held in memory only", w.Dataset, w.KeyResource, w.PlaintextBytes)
	}

	// A worker operator who has the run attested elsewhere: the brokers
	// trust that verifier too, so the keys are released, but no receiver
	// who approved the manifest accepts the result.
	rogue, err := c.RunAttestedBy(ctx, analysisID, c.Verifiers[OtherVerifier].URL)
	if err != nil {
		return fmt.Errorf("the run attested by %s: %w", OtherVerifier, err)
	}
	_, err = result.VerifyBundle(ctx, rogue.Result, trust)
	var ke *token.KeyError
	if !errors.Is(err, result.ErrUntrusted) || !errors.As(err, &ke) {
		return fmt.Errorf("a result attested by a verifier the manifest does not list was not refused: %v", err)
	}
	d.say("a worker operator has a run attested by %s instead; the brokers trust it too and release the keys, but the carrier refuses the result:", OtherVerifier)
	d.detail("token signed by key %s of %q (as the token claims), which is not a key of the manifest's verifiers: %s", ke.KeyID, ke.VerifierID, listedKeys(ke))
	d.detail("INSECURE: the sim TEE proves nothing; on SEV-SNP or TDX the same checks bind the run to hardware")
	return d.secretComputation(ctx, c, log)
}

// listedKeys names the trusted keys a refused token was checked against.
func listedKeys(ke *token.KeyError) string {
	return ListedVerifier + " (key " + strings.Join(ke.Tried, ", ") + ")"
}

// lastClause shortens a chain of wrapped errors to its last two parts.
func lastClause(err error) string {
	parts := strings.Split(err.Error(), ": ")
	if len(parts) > 3 {
		parts = parts[len(parts)-3:]
	}
	return strings.Join(parts, ": ")
}

// queuedRun runs an approved analysis as a service does: the airline
// pushes the collaboration to its server's coordinator, a worker serving
// that queue registers by attestation, the analyst submits the run, and
// the carrier fetches the result bundle and receipt the log kept.
func (d *demo) queuedRun(ctx context.Context, c *CleanRoom, analysisID string, log *slog.Logger) (res, receipt *result.File, err error) {
	base := c.Servers[Airline].URL
	file, err := c.Collab.Marshal()
	if err != nil {
		return nil, nil, err
	}
	// The airline signs the push and the run: the analyst is the
	// airline's, and an owner of data an analysis reads may run it.
	airline := &coordinator.Client{BaseURL: base, Identity: c.Parties[Airline]}
	pushed, err := airline.Push(ctx, file)
	if err != nil {
		return nil, nil, err
	}
	d.say("the carrier approves; the airline pushes the approved collaboration to its server's coordinator: version %d, %d approvals", pushed.Versions, pushed.Approvals)

	w, err := d.serveQueue(ctx, c, base, log)
	if err != nil {
		return nil, nil, err
	}
	defer w.stop()
	d.say("a worker serves that queue, as `kura worker serve --tee sim --dev` does on a TEE machine: it makes a queue key in memory, attests to the server's verifier with the key bound, and registers with the token")
	d.detail("worker registered as %s (INSECURE simulated TEE, appraised %s; the server is in dev mode)", w.reg.Name, w.reg.Status)

	run, err := airline.SubmitRun(ctx, c.Collab.ID, analysisID)
	if err != nil {
		return nil, nil, err
	}
	d.say("the airline's analyst submits run %s of %q to the queue, signed with the airline's party key: %s", run.ID, analysisID, run.State)
	if run, err = w.await(ctx, airline, run.ID); err != nil {
		return nil, nil, err
	}
	sum, err := w.summary(ctx, run.ID)
	if err != nil {
		return nil, nil, err
	}
	d.say("%s claims it, attests to %s, the manifest's verifier, shows its token to both brokers and runs %q in the sim TEE: %d rows out, %d suppressed, keys and plaintext wiped", run.Worker, ListedVerifier, analysisID, sum.rows, sum.suppressed)
	d.detail("it records the run's start, the result bundle and the receipt in the airline server's transparency log, and only then reports the run finished")
	d.say("run %s completed by %s on attempt %d, naming its result bundle and receipt by their SHA-256", run.ID[:8], run.Worker, run.Attempts)

	if res, err = d.cfg.FetchKept(ctx, http.DefaultClient, base, "results", run.Result, run.ID); err != nil {
		return nil, nil, err
	}
	if receipt, err = d.cfg.FetchKept(ctx, http.DefaultClient, base, "receipts", run.Receipt, run.ID); err != nil {
		return nil, nil, err
	}
	d.say("the carrier fetches result %.16s… and receipt %.16s… from the airline server's log: each is the file its digest names, signed for run %s, its inclusion proof embedded", run.Result, run.Receipt, run.ID[:8])
	return res, receipt, nil
}
