package result

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestEnvelope(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	e := sign(BundleType, []byte(`{"v":1}`), priv)
	if err := e.verify(BundleType, pub); err != nil {
		t.Fatal(err)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	cases := map[string]func(*Envelope) (string, ed25519.PublicKey){
		"wrong type":       func(e *Envelope) (string, ed25519.PublicKey) { return ReceiptType, pub },
		"wrong key":        func(e *Envelope) (string, ed25519.PublicKey) { return BundleType, other },
		"payload modified": func(e *Envelope) (string, ed25519.PublicKey) { e.Payload = []byte(`{"v":2}`); return BundleType, pub },
		"type modified":    func(e *Envelope) (string, ed25519.PublicKey) { e.PayloadType = ReceiptType; return ReceiptType, pub },
		"no signature":     func(e *Envelope) (string, ed25519.PublicKey) { e.Signatures = nil; return BundleType, pub },
		"two signatures": func(e *Envelope) (string, ed25519.PublicKey) {
			e.Signatures = append(e.Signatures, e.Signatures[0])
			return BundleType, pub
		},
	}
	for name, mutate := range cases {
		c := sign(BundleType, []byte(`{"v":1}`), priv)
		typ, key := mutate(c)
		if err := c.verify(typ, key); !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The pre-authentication encoding separates type and payload.
	if bytes.Equal(pae("ab", []byte("c")), pae("a", []byte("bc"))) {
		t.Error("PAE is ambiguous")
	}
}

func TestParseFile(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	f := &File{Envelope: sign(BundleType, []byte(`{}`), priv)}
	data, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFile(data); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"empty":         nil,
		"truncated":     data[:len(data)/2],
		"unknown field": bytes.Replace(data, []byte(`"envelope"`), []byte(`"envelope2"`), 1),
		"no envelope":   []byte(`{}`),
		"trailing":      append(append([]byte(nil), data...), []byte(`{}`)...),
		"oversized":     bytes.Repeat([]byte(" "), MaxSize+1),
	} {
		if _, err := ParseFile(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParseFile(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(nil)
	data, _ := (&File{Envelope: sign(BundleType, []byte(`{"v":1}`), priv)}).Marshal()
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseFile(data)
		if err != nil {
			return
		}
		decodeBundle(file.Envelope.Payload) // must not panic
	})
}
