package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-cc/kura/cmd/kura/internal/demo"
	"github.com/kura-cc/kura/collab"
)

// TestCollabRevoke: an owner revokes its approval with kura collab revoke.
// Its key broker (named by its dataset) and the coordinator accept it;
// kura collab status shows it; a worker presenting the file from before
// the revocation gets no key of that owner, the refusal naming it;
// approving again and pushing restores. The other owner revokes by id,
// fetched from the coordinator, and only its own key is withheld. A
// revocation sent to a broker that holds none of the party's keys is
// refused there, and the command says so and fails.
func TestCollabRevoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two key brokers and runs DuckDB")
	}
	c := newStory(t, 20)
	dir := c.Dir
	for _, name := range []string{demo.Airline, demo.Carrier} {
		if err := c.Parties[name].Save(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	airline, carrier := filepath.Join(dir, demo.Airline), filepath.Join(dir, demo.Carrier)
	url := c.Servers[demo.Airline].URL
	run := func(args ...string) (int, string) {
		var out, errOut strings.Builder
		code := Run(context.Background(), args, Env{Stdout: &out, Stderr: &errOut})
		return code, out.String() + errOut.String()
	}
	file := filepath.Join(dir, "collab.json")
	data, err := c.Collab.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{airline, carrier} {
		if code, out := run("collab", "approve", file, "--identity", id); code != 0 {
			t.Fatalf("approve: exit %d\n%s", code, out)
		}
	}
	if code, out := run("collab", "push", file, "--url", url, "--identity", airline); code != 0 {
		t.Fatalf("push: exit %d\n%s", code, out)
	}
	approved := mustReadCollab(t, file)
	c.Collab = approved
	an := demo.Analyses()[0].ID
	if _, err := c.Run(context.Background(), an); err != nil {
		t.Fatalf("a run before revoking: %v", err)
	}

	code, out := run("collab", "revoke", file, "--identity", airline, "--reason", "audit pending", "--url", url)
	if code != 0 || !strings.Contains(out, "key broker "+url+": accepted: withholds airline/dataset-key/flights") ||
		!strings.Contains(out, "coordinator "+url+": accepted: 1 new log entries") || !strings.Contains(out, "written to "+file) {
		t.Fatalf("revoke: exit %d\n%s", code, out)
	}
	if code, out := run("collab", "status", file); code != 0 || !strings.Contains(out, `airline      revoked at `) || !strings.Contains(out, `("audit pending")`) {
		t.Errorf("status after revoking: exit %d\n%s", code, out)
	}
	if code, out := run("collab", "status", file, "--require-all"); code != ExitPolicy || !strings.Contains(out, "airline") {
		t.Errorf("status --require-all after revoking: exit %d\n%s", code, out)
	}
	// The file from before: the broker holds the revocation itself.
	c.Collab = approved
	if _, err := c.Run(context.Background(), an); err == nil || !strings.Contains(err.Error(), `party "airline" revoked its approval`) {
		t.Fatalf("a run after revoking: %v", err)
	}

	// Approving again, and pushing, restores.
	if code, out := run("collab", "approve", file, "--identity", airline); code != 0 {
		t.Fatalf("approve again: exit %d\n%s", code, out)
	}
	if code, out := run("collab", "push", file, "--url", url, "--identity", airline); code != 0 {
		t.Fatalf("push the new approval: exit %d\n%s", code, out)
	}
	c.Collab = mustReadCollab(t, file)
	if _, err := c.Run(context.Background(), an); err != nil {
		t.Fatalf("a run after approving again: %v", err)
	}

	// The carrier revokes by id: the coordinator's file is fetched, and
	// its own broker told.
	code, out = run("collab", "revoke", c.Collab.ID, "--identity", carrier, "--url", url)
	if code != 0 || !strings.Contains(out, "key broker "+c.Servers[demo.Carrier].URL+": accepted: withholds carrier/dataset-key/visits") || strings.Contains(out, "written to") {
		t.Fatalf("revoke by id: exit %d\n%s", code, out)
	}
	if _, err := c.Run(context.Background(), an); err == nil || !strings.Contains(err.Error(), `party "carrier" revoked its approval`) || strings.Contains(err.Error(), `"airline" revoked`) {
		t.Fatalf("a run after the carrier revoked: %v", err)
	}

	// The airline's revocation sent to the carrier's broker only: refused
	// there (it holds no key of the airline), and the command fails.
	code, out = run("collab", "revoke", file, "--identity", airline, "--url", url, "--kbs", c.Servers[demo.Carrier].URL)
	if code != ExitFailure || !strings.Contains(out, "NOT accepted") || !strings.Contains(out, `holds no dataset key of "airline"`) || !strings.Contains(out, "refused by 1 of 2") {
		t.Fatalf("revoke at the wrong broker: exit %d\n%s", code, out)
	}
	// A reason no revocation can carry is a usage error.
	if code, out := run("collab", "revoke", file, "--identity", airline, "--url", url, "--reason", "two\nlines"); code != ExitUsage || !strings.Contains(out, "--reason") {
		t.Errorf("bad --reason: exit %d\n%s", code, out)
	}
}

func mustReadCollab(t *testing.T, path string) *collab.Collaboration {
	t.Helper()
	c, err := readCollab(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
