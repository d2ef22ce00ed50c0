package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/party"
)

// TestApproveRefusesUnsafeAnalysis writes collaboration files whose custom
// SQL the worker would refuse, as a kura without the static check (or any
// other tool) could, and checks that kura collab approve refuses to sign
// them, naming the offending expression, and leaves the file as it was.
func TestApproveRefusesUnsafeAnalysis(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../../../collab/testdata/example")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"airline", "carrier", "analyst"} {
		id, err := party.Generate(n, party.KEMX25519)
		if err != nil {
			t.Fatal(err)
		}
		b, err := id.Card().Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "cards", n+".json")
		os.Chmod(p, 0o644)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := id.Save(filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	// write returns a collaboration file whose analysis visitors_sql is sql.
	write := func(name, sql string) string {
		m, err := collab.LoadManifest(filepath.Join(dir, "manifest.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		m.Analysis("visitors_sql").SQL = sql
		c, err := collab.New(m)
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name+".collab.json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	approve := func(file, who string) (int, string) {
		var out, errOut strings.Builder
		code := Run(context.Background(), []string{"collab", "approve", file, "--identity", filepath.Join(dir, who)}, Env{Stdout: &out, Stderr: &errOut})
		return code, out.String() + errOut.String()
	}
	for _, tc := range []struct{ name, sql, want string }{
		{"phones", "SELECT p.phone, count(*) AS n FROM passengers p JOIN subscribers s ON p.phone = s.phone GROUP BY p.phone",
			"select list: passengers.phone is an identity column"},
		{"read_csv", "SELECT count(*) AS n FROM read_csv('/etc/passwd')", `"read_csv('/etc/passwd')": table functions`},
		{"read_parquet", "SELECT count(*) AS n FROM read_parquet('/proc/self/fd/3')", `"read_parquet('/proc/self/fd/3')": table functions`},
		{"glob", "SELECT count(*) AS n FROM glob('/etc/*')", `"glob('/etc/*')": table functions`},
		{"http", "SELECT count(*) AS n FROM 'http://evil.example/x.csv'", `table "http://evil.example/x.csv" is not a dataset`},
		{"star", "SELECT * FROM passengers", `"*": * and COLUMNS(...) are not accepted`},
		{"copy", "COPY passengers TO '/tmp/p.csv'", `"COPY passengers TO '/tmp/p.csv'": only a SELECT statement`},
		{"attach", "ATTACH 'evil.db' AS evil", `"ATTACH 'evil.db' AS evil": only a SELECT statement`},
		{"mutate", "UPDATE subscribers SET plan = 'x'", `"UPDATE subscribers SET plan = 'x'": only a SELECT statement`},
	} {
		file := write(tc.name, tc.sql)
		before, _ := os.ReadFile(file)
		// Every party is refused, not only the owners of the data the
		// analysis reads: nobody signs a manifest the worker would refuse.
		for _, who := range []string{"airline", "carrier", "analyst"} {
			code, out := approve(file, who)
			if code != ExitDataInvalid || !strings.Contains(out, tc.want) || !strings.Contains(out, "not signing") {
				t.Errorf("%s, %s: exit %d, want %d and %s\n%s", tc.name, who, code, ExitDataInvalid, tc.want, out)
			}
			if !strings.Contains(out, `msg="approval refused"`) || !strings.Contains(out, "party="+who) {
				t.Errorf("%s, %s: the refusal is not logged with its reason:\n%s", tc.name, who, out)
			}
		}
		if after, _ := os.ReadFile(file); !bytes.Equal(before, after) {
			t.Errorf("%s: the file changed", tc.name)
		}
	}
	// The example's own analysis still passes, for each provider.
	good := write("good", "SELECT p.age_band, count(DISTINCT p.phone) AS travellers FROM passengers p JOIN subscribers s ON p.phone = s.phone GROUP BY p.age_band")
	for _, who := range []string{"airline", "carrier"} {
		if code, out := approve(good, who); code != ExitOK || !strings.Contains(out, who+" approved airline-carrier-2026 version 1") {
			t.Errorf("good, %s: exit %d\n%s", who, code, out)
		}
	}
}
