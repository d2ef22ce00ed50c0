package collab

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestRunContext(t *testing.T) {
	rc := &RunContext{Version: RunContextVersion, Collaboration: "c", ManifestHash: strings.Repeat("a", 64), Analysis: "x", RunID: NewRunID(), SigningKey: bytes.Repeat([]byte{1}, 32)}
	data, err := rc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRunContext(data)
	if err != nil || got.RunID != rc.RunID || !bytes.Equal(got.SigningKey, rc.SigningKey) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	bad := [][]byte{
		nil,
		data[:len(data)-1],
		append(append([]byte(nil), data...), ' '),                                   // not canonical
		bytes.Replace(data, []byte(`{"v":1,`), []byte(`{ "v":1,`), 1),               // not canonical
		bytes.Replace(data, []byte(`"analysis"`), []byte(`"analysis2"`), 1),         // unknown field
		bytes.Replace(data, []byte(`"v":1`), []byte(`"v":2`), 1),                    // version
		bytes.Replace(data, []byte(rc.RunID), []byte(strings.ToUpper(rc.RunID)), 1), // run id case
		bytes.Repeat([]byte(" "), maxRunContext+1),
	}
	for i, b := range bad {
		if _, err := ParseRunContext(b); !errors.Is(err, ErrBadRunContext) {
			t.Errorf("case %d: %v, want ErrBadRunContext", i, err)
		}
	}
	if NewRunID() == NewRunID() {
		t.Error("run ids repeat")
	}
}

func FuzzParseRunContext(f *testing.F) {
	f.Add([]byte(`{"v":1,"collaboration":"c","manifest_hash":"` + strings.Repeat("a", 64) + `","analysis":"x","run_id":"` + strings.Repeat("b", 32) + `","signing_key":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rc, err := ParseRunContext(data)
		if err != nil {
			return
		}
		again, err := rc.Marshal()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted bytes that do not re-encode identically: %q", data)
		}
	})
}
