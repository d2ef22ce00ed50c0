package beacon

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAPI(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	b, err := New(Config{Period: 2 * time.Second, Genesis: now.Add(-10 * time.Second), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b.Handler())
	defer srv.Close()
	get := func(p string) (int, string) {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	h := b.ChainHash()
	if code, body := get("/" + h + "/info"); code != 200 || !strings.Contains(body, `"beaconID":"kura-dev-INSECURE"`) || !strings.Contains(body, h) {
		t.Fatalf("info: %d %s", code, body)
	}
	cur := b.Current() // genesis+10s at 2s: round 6
	if cur != 6 {
		t.Fatalf("current = %d", cur)
	}
	code, body := get("/" + h + "/public/latest")
	var rd randomData
	if code != 200 || json.Unmarshal([]byte(body), &rd) != nil || rd.Round != cur {
		t.Fatalf("latest: %d %s", code, body)
	}
	// Public data: any page may read it, as drand's API allows.
	if resp, err := http.Get(srv.URL + "/" + h + "/info"); err != nil || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("info without Access-Control-Allow-Origin: * (%v)", err)
	} else {
		resp.Body.Close()
	}
	for p, want := range map[string]int{
		"/" + h + "/public/" + strconv.FormatUint(cur+1, 10): 404,
		"/" + h + "/public/0":                                200, // drand: the latest
		"/" + h + "/public/x":                                400,
		"/chains":                                            200,
		"/" + strings.Repeat("0", 64) + "/info":              404,
	} {
		if code, _ := get(p); code != want {
			t.Errorf("GET %s: %d, want %d", p, code, want)
		}
	}
	for _, p := range []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond, 2 * time.Hour} {
		if _, err := New(Config{Period: p}); err == nil {
			t.Errorf("period %s accepted", p)
		}
	}
}
