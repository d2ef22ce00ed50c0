package cli

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/cmd/kura/internal/demo"
)

// TestRunKeyReleasesLogged: in the clean-room story over real HTTP, each
// key release and refusal is logged in the owner's transparency log with
// the collaboration, manifest, analysis and run it was for; 'kura audit ls
// --collab' lists them, and not another collaboration's; 'kura kbs audit'
// prints the broker's own trail with the owner's key, and refuses another
// owner's key.
func TestRunKeyReleasesLogged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two key brokers and runs DuckDB")
	}
	ctx := context.Background()
	c := newStory(t, 2000)
	const an = "stay_by_prefecture"
	id, manifest := c.Collab.ID, "sha256:"+c.Collab.Current().Hash()

	// The airline has not approved: its broker refuses the run.
	if err := c.Approve(demo.Carrier); err != nil {
		t.Fatal(err)
	}
	refused, err := c.Run(ctx, an)
	if err == nil || refused == nil || refused.RunID == "" {
		t.Fatalf("unapproved run: %v", err)
	}
	if err := c.Approve(demo.Airline); err != nil {
		t.Fatal(err)
	}
	released, err := c.Run(ctx, an)
	if err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (int, string, string) {
		var out, errOut strings.Builder
		code := Run(ctx, args, Env{Stdout: &out, Stderr: &errOut})
		return code, out.String(), errOut.String()
	}
	airline := c.Servers[demo.Airline]
	ls := []string{"audit", "ls", "--log", airline.URL + "/log/", "--key", filepath.Join(c.Dir, demo.Airline+"-kbs", "log-key.pub"), "--json"}
	// The log follows the broker's trail moments after each decision.
	var releases []*auditlog.Entry
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, out, msg := run(append(ls, "--collab", id)...)
		if code != 0 {
			t.Fatalf("audit ls --collab: exit %d\n%s%s", code, out, msg)
		}
		releases = releases[:0]
		for _, e := range parseLs(t, out) {
			if e.Collaboration != id {
				t.Errorf("audit ls --collab %s lists %+v", id, e)
			}
			if e.Kind == auditlog.KindKeyRelease {
				releases = append(releases, e)
			}
		}
		if len(releases) >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if len(releases) != 2 {
		t.Fatalf("audit ls --collab %s: %d key releases, want the refusal and the release", id, len(releases))
	}
	for i, want := range []struct{ decision, run string }{{"refused", refused.RunID}, {"released", released.RunID}} {
		e := releases[i]
		if e.Decision != want.decision || e.Run != want.run || e.Manifest != manifest || e.Analysis != an ||
			e.Resource != demo.Airline+"/dataset-key/flights" || e.BrokerSeq == 0 {
			t.Errorf("key release %d logged as %+v; want %s to run %s of %s on %s", i, e, want.decision, want.run, an, manifest)
		}
	}
	if code, out, msg := run(append(ls, "--collab", "another-collaboration")...); code != 0 || out != "" {
		t.Errorf("audit ls --collab of another collaboration: exit %d\n%s%s", code, out, msg)
	}
	// The airline's log holds the airline's decisions only: the carrier's
	// releases are in the carrier's log.
	if code, out, _ := run(append(ls, "--kind", "key_release")...); code != 0 || strings.Contains(out, demo.Carrier+"/") {
		t.Errorf("the airline's log lists the carrier's releases: exit %d\n%s", code, out)
	}
	code, out, msg := run(ls[:len(ls)-1]...) // without --json
	if code != 0 || !strings.Contains(out, "collab="+id+" run="+released.RunID+" analysis="+an+" manifest="+manifest) {
		t.Errorf("audit ls does not show the release's run: exit %d\n%s%s", code, out, msg)
	}

	// The broker's own trail, read with the owner's key.
	keyFile := func(name string) string {
		der, err := x509.MarshalPKCS8PrivateKey(c.Servers[name].Admin.Key)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(c.Dir, name+"-admin.pem")
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kbsAudit := []string{"kbs", "audit", "--url", airline.URL, "--admin-key", keyFile(demo.Airline)}
	code, out, msg = run(kbsAudit...)
	if code != 0 || !strings.Contains(out, "\treleased\tresource=airline/dataset-key/flights collab="+id+" run="+released.RunID+" analysis="+an+" manifest="+c.Collab.Current().Hash()) ||
		!strings.Contains(out, "\trefused\tresource=airline/dataset-key/flights collab="+id+" run="+refused.RunID) {
		t.Errorf("kbs audit: exit %d\n%s%s", code, out, msg)
	}
	code, out, msg = run(append(kbsAudit, "--json", "--limit", "1")...)
	var first auditLine
	if code != 0 || json.Unmarshal([]byte(out), &first) != nil || first.Seq != 1 || !strings.Contains(msg, "more may follow: --after 1") {
		t.Errorf("kbs audit --json --limit 1: exit %d\n%s%s", code, out, msg)
	}
	// Another owner's key is not the airline broker's owner.
	code, out, msg = run("kbs", "audit", "--url", airline.URL, "--admin-key", keyFile(demo.Carrier))
	if code == 0 || out != "" || !strings.Contains(msg, "not an authorized key") {
		t.Errorf("kbs audit with the carrier's key on the airline's broker: exit %d\n%s%s", code, out, msg)
	}
	if code, _, msg := run("kbs", "audit", "--url", airline.URL); code != ExitUsage || !strings.Contains(msg, "--admin-key") {
		t.Errorf("kbs audit without a key: exit %d\n%s", code, msg)
	}
}

// parseLs decodes 'kura audit ls --json' output.
func parseLs(t *testing.T, out string) []*auditlog.Entry {
	t.Helper()
	var es []*auditlog.Entry
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Entry json.RawMessage `json:"entry"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("audit ls --json line %q: %v", sc.Text(), err)
		}
		e, err := auditlog.DecodeEntryJSON(line.Entry) // json.Marshal re-escapes the canonical bytes
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	return es
}
