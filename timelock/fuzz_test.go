package timelock

import (
	"bytes"
	"testing"
	"time"

	"github.com/kura-cc/kura/party"
)

// FuzzInspect feeds arbitrary bytes to the header parsers: they must not
// panic, and an envelope header that parses must re-marshal to the same
// bytes.
func FuzzInspect(f *testing.F) {
	fx := newFixture(f)
	alice := identity(f, "alice")
	bob, _ := party.Generate("bob", party.KEMMLKEM768X25519)
	seeds := [][]byte{}
	s, _ := fx.seal(f, []byte("seed"), time.Second)
	seeds = append(seeds, s)
	s, _ = fx.seal(f, []byte("seed"), time.Second, alice.Card(), bob.Card())
	seeds = append(seeds, s)
	if len(seeds) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, s := range seeds {
		f.Add(s)
		f.Add(s[:len(s)/2])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := Inspect(bytes.NewReader(data))
		if err != nil {
			return
		}
		if in.Format != FormatKura {
			return
		}
		e, err := parseEnvelope(data[:in.HeaderSize])
		if err != nil {
			t.Fatalf("Inspect accepted a header parseEnvelope refuses: %v", err)
		}
		raw := bytes.Clone(e.raw)
		out, err := e.marshal()
		if err != nil || !bytes.Equal(out, raw) {
			t.Fatalf("parse→marshal not identical: %v", err)
		}
	})
}
