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
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/worker"
)

// demoRows is the size of each of the demo's datasets.
const demoRows = 4000

// cleanRoom runs the clean-room story: two owners, their own key brokers,
// approvals, a refused run, an approved run, the receiver's offline checks
// and the deletion receipt.
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
	out, err := c.Run(ctx, analysisID)
	if err != nil {
		return err
	}
	d.say("the carrier approves; the worker attests to %s, the manifest's verifier, shows its token to both brokers and runs %q in the sim TEE: %d rows out, %d suppressed, keys and plaintext wiped", ListedVerifier, analysisID, out.Rows, out.Suppressed)
	airline := c.Servers[Airline]
	if err := d.cfg.PublishRun(ctx, http.DefaultClient, airline.URL, out); err != nil {
		return err
	}
	d.say("the result bundle and the receipt go into the airline server's transparency log; their inclusion proofs are embedded")
	trust := c.Trust(Carrier)
	vkey, err := os.ReadFile(filepath.Join(c.Dir, Airline+"-kbs", "log-key.pub"))
	if err != nil {
		return err
	}
	if trust.Log, err = auditlog.ParseVerifierKey(strings.TrimSpace(string(vkey))); err != nil {
		return err
	}
	vb, err := result.VerifyBundle(ctx, out.Result, trust)
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
	r, err := result.VerifyReceipt(ctx, out.Receipt, vb, trust)
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
	return nil
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
