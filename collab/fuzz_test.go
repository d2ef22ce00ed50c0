package collab

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"
)

func FuzzParseManifest(f *testing.F) {
	seeds := 0
	for _, p := range []string{"testdata/vector/manifest.json", "testdata/vector/source.yaml", "testdata/example/manifest.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		seeds++
	}
	m, _ := load(f)
	b, _ := json.Marshal(m)
	f.Add(b)
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	if seeds == 0 {
		f.Fatal("empty seed corpus")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		// A parsed manifest is valid, hashes, and re-parses to the same hash.
		h := m.Hash()
		if len(h) != 64 {
			t.Fatalf("valid manifest without hash")
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseManifest(b)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if m2.Hash() != h {
			t.Fatal("hash changed on re-parse")
		}
	})
}

func FuzzParseCollaboration(f *testing.F) {
	c, ids := started(f)
	c.Approve(ids["airline"], t0)
	c.Revoke(ids["airline"], t0.Add(time.Minute), "audit pending")
	m := next(f, c)
	m.Description = "v2"
	if err := c.AddVersion(m); err != nil {
		f.Fatal(err)
	}
	good, _ := c.Marshal()
	f.Add(good)
	f.Add([]byte(`{"kura_collaboration":1,"id":"x","versions":[{}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCollaboration(data)
		if err != nil {
			return
		}
		_ = c.Verify()
		_ = c.Status()
		_ = c.CheckApproved(make([]byte, 32), "x")
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ParseCollaboration(b)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		b2, _ := c2.Marshal()
		if !bytes.Equal(b, b2) {
			t.Fatal("marshal → parse → marshal differs")
		}
	})
}

func FuzzCanonicalize(f *testing.F) {
	b, err := os.ReadFile("testdata/vector/canonical.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"b":[1e21,-0,0.1,"\u0000\ud800"],"a":{"\u20ac":true,"1":null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Canonicalize(data)
		if err != nil {
			return
		}
		c2, err := Canonicalize(c)
		if err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("canonical form is not a fixed point: %s → %s (%v)", c, c2, err)
		}
		if !json.Valid(c) {
			t.Fatalf("invalid JSON %s", c)
		}
	})
}
