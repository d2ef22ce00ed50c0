package analysis

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
)

// identityLike matches the scenario's member and subscriber ids and phone
// numbers, and also a part of one that is long enough to single a person
// out.
var identityLike = regexp.MustCompile(`\+81[0-9]{6,}|[MS][0-9]{6,}`)

// FuzzCustomSQL runs arbitrary custom SQL through the checker and, when it
// is accepted, through DuckDB, with a threshold of 1 so that every group is
// output. It must never panic, never accept anything but a single SELECT,
// and no accepted statement may output an identity or join value or write
// a file.
func FuzzCustomSQL(f *testing.F) {
	seeds := []string{
		"SELECT age_band, count(*) FROM flights GROUP BY age_band",
		"SELECT f.age_band, count(DISTINCT v.subscriber_id) AS n FROM flights f JOIN visits v ON f.phone = v.phone GROUP BY 1 ORDER BY n DESC LIMIT 3",
		"SELECT count(*) AS n, count(DISTINCT phone) AS phones, min(stay_days) FROM flights JOIN visits USING (phone)",
		"SELECT area, max(arrival_date) AS last FROM visits GROUP BY ROLLUP (area)",
		"SELECT home_prefecture, CASE WHEN age_band IN ('20s', '30s') THEN 'young' ELSE 'other' END AS age, count(*) FROM flights GROUP BY ALL HAVING count(*) > 3",
		"SELECT f.phone, count(*) FROM flights f GROUP BY f.phone",
		"SELECT upper(phone) AS p, count(*) FROM flights GROUP BY 1",
		"SELECT min(phone) FROM flights",
		"SELECT count(*) AS n, (SELECT max(phone) FROM flights) AS p FROM visits",
		"SELECT phone FROM flights UNION SELECT phone FROM visits",
		"SELECT count(*) FROM read_csv('/etc/passwd')",
		"COPY flights TO 'x.csv'",
		"SELECT count(*) FROM flights; SELECT 1",
		"SELECT age_band, list(phone) FROM flights GROUP BY age_band",
		"SELECT * FROM flights",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	fx := newFixture(f, 300)
	for i := range fx.m.Datasets {
		fx.m.Datasets[i].OutputPolicy.MinDistinctIdentities = 1
	}
	dir := f.TempDir()
	f.Chdir(dir) // relative paths a statement might write land here
	e := fx.engine(f, Config{MemoryLimit: "256MB", Threads: 1})
	f.Fuzz(func(t *testing.T, q string) {
		fx.m.Analyses = append(fx.m.Analyses[:0], sqlAnalysis("fuzz", q))
		res, err := e.Run(context.Background(), fx.m, "fuzz")
		if err != nil {
			if !errors.Is(err, ErrUnsupportedSQL) && !errors.Is(err, ErrIdentityOutput) && !errors.Is(err, ErrPolicyViolation) && !errors.Is(err, ErrQueryFailed) {
				t.Fatalf("%q: error of no known class: %v", q, err)
			}
			return
		}
		if !strings.Contains(res.SQL, hiddenPrefix) {
			t.Fatalf("%q: accepted without threshold columns: %s", q, res.SQL)
		}
		enc, err := res.Encode()
		if err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		for _, r := range res.Rows {
			if m := identityLike.FindString(jsonText(t, r)); m != "" {
				t.Fatalf("%q output an identity-like value %s: %s", q, m, enc)
			}
		}
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			t.Fatalf("%q wrote files", q)
		}
	})
}
