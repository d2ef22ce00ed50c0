package auditlog_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/kura-cc/kura/auditlog"
)

// entrySeeds are canonical entries of every kind.
func entrySeeds(t testing.TB) [][]byte {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	d := subject("x")
	fp := "3b5f8e1c0d2a4b6c8e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f"
	es := []*auditlog.Entry{
		{Kind: auditlog.KindManifestVersion, Time: at, Collaboration: "c1", Subject: d, Previous: d, Version: 2, Party: fp},
		{Kind: auditlog.KindApproval, Time: at, Collaboration: "c1", Party: fp, Subject: d},
		{Kind: auditlog.KindRevocation, Time: at, Collaboration: "c1", Party: fp, Subject: d, Version: 1},
		{Kind: auditlog.KindKeyRelease, Time: at, Decision: "released", Resource: "a/key/1", Reason: "policy <allowed> & ok", TokenDigest: "ab", PolicyID: "p@1", Requester: "127.0.0.1", TEE: "snp", Measurement: "00ff", BrokerSeq: 7},
		{Kind: auditlog.KindKeyRelease, Time: at, Decision: "refused", Resource: "a/key/1", Reason: "token expired"},
		{Kind: auditlog.KindKeyRelease, Time: at, Decision: "released", Resource: "a/dataset-key/1", Collaboration: "c1", Run: "0f0f", Manifest: d, Analysis: "by_area", BrokerSeq: 8},
		{Kind: auditlog.KindRunStart, Time: at, Collaboration: "c1", Run: "r1", Subject: d, TEE: "tdx", Measurement: "aa"},
		{Kind: auditlog.KindResult, Time: at, Run: "r1", Subject: d},
		{Kind: auditlog.KindReceipt, Time: at, Run: "r1", Subject: d, Collaboration: "c1"},
		{Kind: auditlog.KindPolicyChange, Time: at, PolicyID: "p@2", Subject: d, Resource: "a/key/1"},
		{Kind: auditlog.KindReferenceValuesChange, Time: at, Subject: d, TEE: "snp"},
		{Kind: auditlog.KindTimelockRegistration, Time: at, Subject: d, NotBefore: at.Add(time.Hour)},
		{Kind: auditlog.KindInferenceBuild, Time: at, Subject: d, Party: fp, TEE: "snp", Measurement: "aa"},
	}
	var out [][]byte
	for _, e := range es {
		b, err := e.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", e.Kind, err)
		}
		out = append(out, b)
	}
	return out
}

func TestEntryRules(t *testing.T) {
	seeds := entrySeeds(t)
	if len(seeds) != len(auditlog.Kinds())+2 {
		t.Fatalf("seeds do not cover every kind")
	}
	for _, bad := range []string{
		``, `{}`, `null`, `[]`,
		`{"v":1,"kind":"result","time":"2026-05-01T12:00:00Z","run":"r1"}`,                                                                  // missing subject
		`{"v":1,"kind":"result","time":"2026-05-01T12:00:00Z","run":"r1","subject":"sha256:00","extra":1}`,                                  // unknown field
		`{"v":1,"kind":"nope","time":"2026-05-01T12:00:00Z"}`,                                                                               // unknown kind
		`{"v":2,"kind":"receipt","time":"2026-05-01T12:00:00Z","run":"r","subject":"sha256:` + string(bytes.Repeat([]byte("0"), 64)) + `"}`, // version
		`{"v":1,"kind":"result","time":"2026-05-01T12:00:00+01:00","run":"r1","subject":"sha256:` + string(bytes.Repeat([]byte("0"), 64)) + `"}`,
		`{"v":1,"kind":"result","time":"2026-05-01T12:00:00Z","run":"r1","subject":"sha256:` + string(bytes.Repeat([]byte("0"), 64)) + `","decision":"released"}`, // not allowed for kind
		`{"v":1,"kind":"result","time":"2026-05-01T12:00:00Z","run":"r\u0001","subject":"sha256:` + string(bytes.Repeat([]byte("0"), 64)) + `"}`,                  // control char
		`{"kind":"result","v":1,"time":"2026-05-01T12:00:00Z","run":"r1","subject":"sha256:` + string(bytes.Repeat([]byte("0"), 64)) + `"}`,                       // order
		string(seeds[0]) + ` `,
		string(bytes.Repeat([]byte(" "), auditlog.MaxEntrySize+1)),
	} {
		if _, err := auditlog.ParseEntry([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	// Non-canonical but valid input is accepted by DecodeEntryJSON.
	e, err := auditlog.DecodeEntryJSON([]byte(`{"kind":"result", "time":"2026-05-01T12:00:00Z", "run":"r1", "subject":"` + subject("y") + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Marshal(); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseEntry(f *testing.F) {
	seeds := entrySeeds(f)
	if len(seeds) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := auditlog.ParseEntry(b)
		if err != nil {
			return
		}
		out, err := e.Marshal()
		if err != nil {
			t.Fatalf("parsed entry does not marshal: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("parse→marshal not identical:\n%s\n%s", b, out)
		}
	})
}

func FuzzParseProof(f *testing.F) {
	k := newKey(f, "kura.test/log")
	l := openLog(f, f.TempDir(), k)
	ctx := context.Background()
	for i := range 3 {
		p, err := l.AppendAndProve(ctx, entry(i))
		if err != nil {
			f.Fatal(err)
		}
		b, _ := p.MarshalJSON()
		f.Add(b)
	}
	v := k.Verifier()
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := auditlog.ParseProof(b)
		if err != nil {
			return
		}
		_, _ = auditlog.VerifyProof(p, v) // must not panic
		out, err := p.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := auditlog.ParseProof(out); err != nil {
			t.Fatalf("re-encoded proof does not parse: %v", err)
		}
	})
}
