package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/kura-cc/kura/attestation/sim"
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
	c := &cleanRoom{dir: filepath.Join(dir, "cleanroom"), rows: demoRows, log: log}
	defer c.close()
	if err := c.setUp(ctx); err != nil {
		return err
	}
	d.say("synthetic data: %d flights (the airline) and %d visits (the carrier), overlapping on part of the population by phone number", demoRows, demoRows)
	d.say("each owner runs its own key broker (airline %s, carrier %s), seals its data and registers the key, pinned to its own party key", c.servers[storyAirline].URL, c.servers[storyCarrier].URL)
	m := c.collab.Current()
	d.say("manifest %s version 1, %s: analyses %q (declared) and %q (custom SQL); worker = this executable's sim measurement", m.ID, collab.DisplayHash(m.Hash())[:23]+"…", m.Analyses[0].ID, m.Analyses[1].ID)
	d.detail("output policy: airline ≥ %d, carrier ≥ %d distinct people behind every output row (the strictest applies to both)", m.Datasets[0].OutputPolicy.MinDistinctIdentities, m.Datasets[1].OutputPolicy.MinDistinctIdentities)

	if err := c.approve(storyAirline); err != nil {
		return err
	}
	const analysisID = "visitors_by_area_age"
	_, err := c.run(ctx, analysisID)
	if !errors.Is(err, worker.ErrRefused) {
		return fmt.Errorf("a run the carrier had not approved was not refused: %v", err)
	}
	d.say("only the airline has approved: the worker attests, the airline's broker releases, the carrier's refuses:")
	d.detail("%s", lastClause(err))

	if err := c.approve(storyCarrier); err != nil {
		return err
	}
	out, err := c.run(ctx, analysisID)
	if err != nil {
		return err
	}
	d.say("the carrier approves; the worker runs %q in the sim TEE: %d rows out, %d suppressed, keys and plaintext wiped", analysisID, out.Rows, out.Suppressed)
	airline := c.servers[storyAirline]
	if err := publishRun(ctx, http.DefaultClient, airline.URL, out); err != nil {
		return err
	}
	d.say("the result bundle and the receipt go into the airline server's transparency log; their inclusion proofs are embedded")
	trust, err := c.trustAll(ctx)
	if err != nil {
		return err
	}
	vkey, err := os.ReadFile(filepath.Join(c.dir, storyAirline+"-kbs", "log-key.pub"))
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
	plain, err := vb.Open(c.parties[storyCarrier])
	if err != nil {
		return err
	}
	d.say("the carrier verifies the result bundle offline before decrypting its copy:")
	for _, check := range vb.Checks {
		d.detail("ok  %s", check)
	}
	var table strings.Builder
	if err := printResult(&table, plain); err != nil {
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
	d.detail("INSECURE: the sim TEE proves nothing; on SEV-SNP or TDX the same checks bind the run to hardware")
	return nil
}

// run runs the worker in this process with the sim attester.
func (c *cleanRoom) run(ctx context.Context, analysisID string) (*worker.Output, error) {
	file, err := c.collab.Marshal()
	if err != nil {
		return nil, err
	}
	if c.attester == nil {
		// One attester for the story: its sim measurement (a hash of this
		// executable) is computed once, as a TEE measures at launch.
		if c.attester, err = sim.NewAttester(sim.AttesterConfig{}); err != nil {
			return nil, err
		}
	}
	return worker.Run(ctx, worker.Config{Collaboration: file, Analysis: analysisID, Attester: c.attester, Logger: c.log})
}

// trustAll trusts both owners' verifiers, in dev mode.
func (c *cleanRoom) trustAll(ctx context.Context) (result.Trust, error) {
	set := jwk.NewSet()
	for _, s := range c.servers {
		ks, err := token.FetchJWKS(ctx, nil, s.JWKSURL())
		if err != nil {
			return result.Trust{}, err
		}
		for i := range ks.Len() {
			k, _ := ks.Key(i)
			if err := set.AddKey(k); err != nil {
				return result.Trust{}, err
			}
		}
	}
	return result.Trust{Verifiers: set, DevMode: true}, nil
}

// lastClause shortens a chain of wrapped errors to its last two parts.
func lastClause(err error) string {
	parts := strings.Split(err.Error(), ": ")
	if len(parts) > 3 {
		parts = parts[len(parts)-3:]
	}
	return strings.Join(parts, ": ")
}
