package agent_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/kura-cc/kura/internal/httpsig"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/mpc/agent"
)

// chainWorld is the world with the analysis joining the hotel's stays too:
// three owners.
func chainWorld(t *testing.T) *world {
	return newWorld(t, func(m *collab.Manifest) {
		g := m.Analyses[0].Aggregate
		g.Joins = append(g.Joins, collab.Join{Dataset: "stays", Left: "visits.phone", Right: "stays.phone"})
		g.Where = nil
	})
}

// TestChainOfThree: the airline, the carrier and the hotel — each with its
// own agent over real HTTP — count the airline's passengers by home
// prefecture who are the carrier's subscribers and the hotel's guests; the result equals the plaintext three-way join after the same
// suppression, all three statements are in the bundle, no raw identifier
// crosses the wire, and a tampered relayed list aborts the run.
func TestChainOfThree(t *testing.T) {
	ctx := context.Background()
	w := chainWorld(t)
	carrier, crec := w.serve(t, w.agent(t, "carrier"))
	hotel, hrec := w.serve(t, w.agent(t, "hotel"))
	peers := map[string]string{"visits": carrier.URL, "stays": hotel.URL}
	out, err := w.agent(t, "airline").RunChain(ctx, w.c, testAnalysis, peers)
	if err != nil {
		t.Fatal(err)
	}
	got, suppressed := w.open(t, out)
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(fmt.Sprintf(`SELECT f.home_prefecture, count(DISTINCT f.phone) FROM '%s' f
JOIN (SELECT DISTINCT phone FROM '%s') v ON f.phone = v.phone
JOIN (SELECT DISTINCT phone FROM '%s') s ON f.phone = s.phone
GROUP BY 1 HAVING count(DISTINCT f.phone) >= 20`, w.files.Flights, w.files.Visits, hotelStays(t, w.files.Visits)))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := map[string]int64{}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		want[k] = n
	}
	t.Logf("released %d groups, suppressed %d: %v", len(got), suppressed, got)
	if len(want) == 0 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("released %v\nplaintext %v", got, want)
	}
	wire := append(crec.wire.Bytes(), hrec.wire.Bytes()...)
	for _, f := range []string{w.files.Flights, w.files.Visits} {
		for _, p := range phones(t, f) {
			if bytes.Contains(wire, []byte(p)) {
				t.Fatalf("the wire holds the raw identifier %s", p)
			}
		}
	}
	// Replays: the carrier's own list and its step, again.
	for _, path := range []string{"/own", "/step"} {
		resp, err := http.Post(carrier.URL+"/v1/mpc/runs/"+out.RunID+path, "application/octet-stream", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("replayed %s: %d, want 404", path, resp.StatusCode)
		}
	}
	// A bit flipped in a list the airline relays to the hotel.
	hrec.tamperRequest = func(b []byte) []byte { b = bytes.Clone(b); b[len(b)-3] ^= 1; return b }
	hrec.tamperPaths = "/step"
	if _, err := w.agent(t, "airline").RunChain(ctx, w.c, testAnalysis, peers); !errors.Is(err, agent.ErrPeer) && !errors.Is(err, agent.ErrTampered) && !errors.Is(err, agent.ErrMalformed) {
		t.Fatalf("tampered relay: %v", err)
	}
	// The hotel's own list asked for with the carrier's key (another party
	// of the collaboration): refused before the hotel reads anything.
	hrec.tamperRequest, hrec.tamperPaths = nil, "/psi"
	hrec.tamperHeader = func(r *http.Request, body []byte) {
		if strings.HasSuffix(r.URL.Path, "/own") {
			httpsig.Sign(r, body, agent.SignatureContext, w.ids["carrier"].Card().Fingerprint, w.ids["carrier"].Sign, time.Now())
		}
	}
	if _, err := w.agent(t, "airline").RunChain(ctx, w.c, testAnalysis, peers); !errors.Is(err, agent.ErrPeer) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("own list asked with another party's key: %v", err)
	}
	hrec.tamperHeader = nil
	// Run with one peer, or a chain analysis with Run: refused.
	if _, err := w.agent(t, "airline").Run(ctx, w.c, testAnalysis, carrier.URL); !errors.Is(err, agent.ErrRefused) || !strings.Contains(err.Error(), "RunChain") {
		t.Fatalf("Run of a three-owner analysis: %v", err)
	}
}
