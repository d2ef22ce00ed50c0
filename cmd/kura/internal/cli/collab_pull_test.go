package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-cc/kura/cmd/kura/internal/demo"
	"github.com/kura-cc/kura/collab"
)

// TestCollabPullApprovePush: two parties share a collaboration through a
// coordinator over HTTP. A push built on a stale copy is refused with the
// advice to pull; pull fetches and verifies the stored file; approve --hash
// signs only the manifest the party reviewed; a coordinator that answers
// with another collaboration, or with a tampered file, gets nothing written.
func TestCollabPullApprovePush(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two key brokers")
	}
	c := newStory(t, 20)
	dir := c.Dir
	for _, name := range []string{demo.Airline, demo.Carrier} {
		if err := c.Parties[name].Save(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (int, string) {
		var out, errOut strings.Builder
		code := Run(context.Background(), args, Env{Stdout: &out, Stderr: &errOut})
		return code, out.String() + errOut.String()
	}
	file, err := c.Collab.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	id, hash := c.Collab.ID, collab.DisplayHash(c.Collab.Current().Hash())
	url := c.Servers[demo.Airline].URL
	airlineFile := filepath.Join(dir, "airline.collab.json")
	carrierFile := filepath.Join(dir, "carrier.collab.json")
	os.WriteFile(airlineFile, file, 0o644)
	os.WriteFile(carrierFile, file, 0o644)
	airline, carrier := filepath.Join(dir, demo.Airline), filepath.Join(dir, demo.Carrier)

	// Nothing stored yet: 404, nothing written.
	if code, out := run("collab", "pull", id, "--url", url, "-o", filepath.Join(dir, "none.json")); code != ExitFailure || !strings.Contains(out, "no such collaboration") {
		t.Errorf("pull of an unknown collaboration: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "none.json")); err == nil {
		t.Error("a failed pull wrote its file")
	}
	// The carrier publishes, approves the hash it reviewed and pushes.
	if code, out := run("collab", "push", carrierFile, "--url", url, "--identity", carrier); code != 0 {
		t.Fatalf("push: exit %d\n%s", code, out)
	}
	if code, out := run("collab", "approve", carrierFile, "--identity", carrier, "--hash", hash); code != 0 {
		t.Fatalf("approve --hash: exit %d\n%s", code, out)
	}
	if code, out := run("collab", "push", carrierFile, "--url", url, "--identity", carrier); code != 0 || !strings.Contains(out, "1 new log entries") {
		t.Fatalf("push the approval: exit %d\n%s", code, out)
	}
	// The airline approves its stale copy, its identity named by its
	// client.yaml: its push would drop the carrier's approval, and says
	// to pull first.
	clientYAML := filepath.Join(dir, "airline-client.yaml")
	os.WriteFile(clientYAML, []byte("identity: "+airline+"\n"), 0o600)
	var approveOut strings.Builder
	getenv := func(k string) string { return map[string]string{"KURA_CLIENT_CONFIG": clientYAML}[k] }
	if code := Run(context.Background(), []string{"collab", "approve", airlineFile}, Env{Stdout: &approveOut, Stderr: &approveOut, Getenv: getenv}); code != 0 {
		t.Fatalf("approve with client.yaml's identity: exit %d\n%s", code, approveOut.String())
	}
	code, out := run("collab", "push", airlineFile, "--url", url, "--identity", airline)
	if code != ExitBadEvidence || !strings.Contains(out, "drops 1 stored approval") || !strings.Contains(out, "kura collab pull "+id+" --url "+url+" -o "+airlineFile) || strings.Contains(out, "kura --help") {
		t.Fatalf("stale push: exit %d, want 3 and the advice to pull\n%s", code, out)
	}
	// Pull replaces the stale copy with the stored one, byte for byte.
	if code, out := run("collab", "pull", id, "--url", url, "-o", airlineFile); code != 0 || !strings.Contains(out, "carrier") || !strings.Contains(out, "approved, via version 1") {
		t.Fatalf("pull: exit %d\n%s", code, out)
	}
	pulled, _ := os.ReadFile(airlineFile)
	stored, _ := os.ReadFile(carrierFile)
	if !bytes.Equal(pulled, stored) {
		t.Error("the pulled file differs from the one pushed")
	}
	if code, out := run("collab", "pull", id, "--url", url, "-o", airlineFile); code != 0 || !strings.Contains(out, "up to date") {
		t.Errorf("pull again: exit %d\n%s", code, out)
	}
	// approve --hash refuses any other hash: another version's, another
	// collaboration's, or garbage; the file is left as it was.
	for _, h := range []string{"sha256:" + strings.Repeat("0", 64), "nonsense"} {
		if code, out := run("collab", "approve", airlineFile, "--identity", airline, "--hash", h); code != ExitPolicy || !strings.Contains(out, "not the manifest reviewed") || !strings.Contains(out, hash) {
			t.Errorf("approve --hash %s: exit %d, want 5\n%s", h, code, out)
		}
	}
	if after, _ := os.ReadFile(airlineFile); !bytes.Equal(after, pulled) {
		t.Error("a refused approval changed the file")
	}
	if code, out := run("collab", "approve", airlineFile, "--identity", airline, "--hash", strings.TrimPrefix(hash, "sha256:")); code != 0 {
		t.Fatalf("approve --hash HEX: exit %d\n%s", code, out)
	}
	if code, out := run("collab", "push", airlineFile, "--url", url, "--identity", airline); code != 0 || !strings.Contains(out, "2 approvals") {
		t.Fatalf("push after pull: exit %d\n%s", code, out)
	}
	// --json: the state of the pulled file, as scripts read it.
	type state struct {
		File          string               `json:"file"`
		Collaboration string               `json:"collaboration"`
		Version       int                  `json:"version"`
		ManifestHash  string               `json:"manifest_hash"`
		Parties       []collab.PartyStatus `json:"parties"`
		Missing       []string             `json:"missing"`
	}
	var st state
	jsonOf := func(v any, args ...string) {
		t.Helper()
		var out, errOut strings.Builder
		if code := Run(context.Background(), append(args, "--json"), Env{Stdout: &out, Stderr: &errOut}); code != 0 {
			t.Fatalf("%v --json: exit %d\n%s", args, code, errOut.String())
		}
		dec := json.NewDecoder(strings.NewReader(out.String()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("%v --json: %v\n%s", args, err, out.String())
		}
	}
	jsonOf(&st, "collab", "pull", id, "--url", url, "-o", carrierFile)
	if st.Version != 1 || len(st.Parties) == 0 {
		t.Errorf("pull --json: %+v", st)
	}
	var status state
	jsonOf(&status, "collab", "status", carrierFile)
	if status.Collaboration != id || status.ManifestHash != hash || len(status.Missing) != 0 {
		t.Errorf("status --json: %+v", status)
	}
	for _, p := range status.Parties {
		if p.Required && p.State != collab.Approved {
			t.Errorf("status --json: %s is %s", p.Party, p.State)
		}
	}
	// A file of another collaboration at -o is not replaced.
	other := *c.Collab.Current()
	other.ID = "another-collaboration"
	oc, err := collab.New(&other)
	if err != nil {
		t.Fatal(err)
	}
	otherFile, _ := oc.Marshal()
	otherPath := filepath.Join(dir, "other.collab.json")
	os.WriteFile(otherPath, otherFile, 0o644)
	if code, out := run("collab", "pull", id, "--url", url, "-o", otherPath); code != ExitUsage || !strings.Contains(out, `holds collaboration "another-collaboration"`) {
		t.Errorf("pull over another collaboration's file: exit %d\n%s", code, out)
	}
	// A coordinator that answers with another collaboration, or a file
	// whose history was rewritten, gets nothing written.
	tampered := bytes.Replace(stored, []byte(`"min_distinct_identities": 20`), []byte(`"min_distinct_identities": 2`), 1)
	if bytes.Equal(tampered, stored) {
		t.Fatal("the tampering found nothing to change")
	}
	for _, bad := range []struct {
		name string
		body []byte
		want string
	}{
		{"another collaboration", otherFile, `asked for collaboration "` + id + `", the coordinator sent "another-collaboration"`},
		{"tampered", tampered, "does not verify"},
	} {
		liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(bad.body) }))
		path := filepath.Join(dir, "liar.collab.json")
		code, out := run("collab", "pull", id, "--url", liar.URL, "-o", path)
		liar.Close()
		if code != ExitBadEvidence || !strings.Contains(out, bad.want) {
			t.Errorf("%s: exit %d, want 3\n%s", bad.name, code, out)
		}
		if _, err := os.Stat(path); err == nil {
			t.Errorf("%s: written", bad.name)
		}
	}
}
