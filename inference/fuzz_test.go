package inference

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// fuzzKeySet is a key set with the spec vectors' keys (so their requests
// are seeds) and fixed keys for both KEMs.
func fuzzKeySet(t testing.TB) *KeySet {
	ks := &KeySet{maxSeen: defaultMaxSeen}
	for _, v := range loadVectors(t) {
		_, gk := vectorKeySet(t, v)
		ks.current = append(ks.current, gk)
	}
	for i, kem := range []uint16{KEMX25519, KEMMLKEM768X25519} {
		k, _ := kemFor(kem)
		priv, err := k.kem.DeriveKeyPair(bytes.Repeat([]byte{byte(i + 1)}, 32))
		if err != nil {
			t.Fatal(err)
		}
		ks.current = append(ks.current, newGatewayKey(byte(100+i), priv))
	}
	return ks
}

// FuzzOpenRequest feeds the gateway's request parser arbitrary streams.
// It must never panic, must fail with this package's errors only, and a
// request that opens must be well formed.
func FuzzOpenRequest(f *testing.F) {
	ks := fuzzKeySet(f)
	seeds := 0
	for _, v := range loadVectors(f) {
		f.Add(unhex(f, v.Request))
		seeds++
	}
	for _, k := range ks.current[len(ks.current)-2:] {
		for _, aead := range []uint16{AEADAES128GCM, AEADChaCha20Poly1305} {
			s := Suite{k.cfg.KEM, KDFHKDFSHA256, aead}
			for _, body := range []string{"", "hello", strings.Repeat("0123456789", 10)} {
				wire, _, _, err := sealRequest(k.cfg.KeyID, k.priv.PublicKey(), s, []byte(`{"headers":{"content-type":"application/json"}}`), []byte(body), 16)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(wire)
				seeds++
			}
		}
	}
	if seeds == 0 {
		f.Fatal("no seeds")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := openRequest(ks, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrInference) {
				t.Fatalf("an error outside the family: %v", err)
			}
			return
		}
		if len(req.body) >= len(data) || req.frames < 1 {
			t.Fatalf("opened %d body bytes in %d frames from %d bytes", len(req.body), req.frames, len(data))
		}
		for name := range req.headers {
			if !requestHeaderAllowed(strings.ToLower(name)) {
				t.Fatalf("header %q passed the allow-list", name)
			}
		}
	})
}

// fuzzResponseCipher returns a response cipher with a fixed key.
func fuzzResponseCipher(t testing.TB, aead uint16) *responseCipher {
	t.Helper()
	rc, err := newResponseCipher(fixedExporter{}, []byte("enc"), make([]byte, responseNonceLen(aead)), aead)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// fixedExporter exports zeros.
type fixedExporter struct{}

func (fixedExporter) Export(_ string, n int) ([]byte, error) { return make([]byte, n), nil }

// FuzzResponseReader feeds the client's response frame reader arbitrary
// streams. It must never panic; a stream it reads to the end must be
// exactly the frames it returned, sealed again.
func FuzzResponseReader(f *testing.F) {
	for _, aead := range []uint16{AEADAES128GCM, AEADChaCha20Poly1305} {
		for _, frames := range [][]string{{""}, {"head", ""}, {"head", "data: a\n\n", "data: [DONE]\n\n", ""}, {"head", "last"}} {
			rc := fuzzResponseCipher(f, aead)
			var b []byte
			var err error
			for i, fr := range frames {
				if b, err = appendFrame(b, rc, []byte(fr), i == len(frames)-1); err != nil {
					f.Fatal(err)
				}
			}
			f.Add(aead == AEADChaCha20Poly1305, b)
		}
	}
	f.Add(false, []byte{0x80, 0, 0, 0x10})
	f.Add(false, []byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, chacha bool, data []byte) {
		aead := AEADAES128GCM
		if chacha {
			aead = AEADChaCha20Poly1305
		}
		fr := &frameReader{r: bytes.NewReader(data), o: fuzzResponseCipher(t, aead)}
		var frames [][]byte
		for !fr.final {
			pt, _, err := fr.next()
			if err != nil {
				if !errors.Is(err, ErrInference) {
					t.Fatalf("an error outside the family: %v", err)
				}
				return
			}
			frames = append(frames, bytes.Clone(pt))
		}
		if err := fr.end(); err != nil {
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("trailing data: %v", err)
			}
			return
		}
		rc := fuzzResponseCipher(t, aead)
		var again []byte
		for i, pt := range frames {
			var err error
			if again, err = appendFrame(again, rc, pt, i == len(frames)-1); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("read %d frames that seal to other bytes", len(frames))
		}

		// The same stream through a response body: the same bytes or the
		// same error.
		body := &responseBody{fr: &frameReader{r: bytes.NewReader(data), o: fuzzResponseCipher(t, aead)}, outer: io.NopCloser(nil)}
		got, err := io.ReadAll(body)
		if err != nil || !bytes.Equal(got, bytes.Join(frames, nil)) {
			t.Fatalf("body read %q, %v", got, err)
		}
	})
}

// FuzzParseKeyConfigs checks that key configurations that parse encode
// back to the same bytes, less the configurations of unknown KEMs.
func FuzzParseKeyConfigs(f *testing.F) {
	ks, err := NewKeySet(0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ks.Configs())
	for _, v := range loadVectors(f) {
		f.Add(unhex(f, v.KeyConfigs))
	}
	f.Add([]byte{0, 7, 9, 0x00, 0x99, 0, 4, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := ParseKeyConfigs(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error outside ErrMalformed: %v", err)
			}
			return
		}
		var known []byte
		for b := data; len(b) > 0; {
			n := 2 + int(binary.BigEndian.Uint16(b))
			if _, ok := kemFor(binary.BigEndian.Uint16(b[3:])); ok {
				known = append(known, b[:n]...)
			}
			b = b[n:]
		}
		out, err := MarshalKeyConfigs(cs)
		if err != nil {
			t.Fatalf("parsed configurations do not encode: %v", err)
		}
		if !bytes.Equal(out, known) {
			t.Fatalf("round trip: %x, want %x", out, known)
		}
	})
}

// FuzzInnerHeaders feeds the inner header objects (the first frames'
// plaintext, which only an authenticated sender can choose) to their
// decoders: no panic, and what passes holds only allowed, single-line
// headers.
func FuzzInnerHeaders(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add([]byte(v.RequestFrames[0]))
		f.Add([]byte(v.ResponseFrames[0]))
	}
	f.Add([]byte(`{"headers":{"content-type":"a\r\nb: c"}}`))
	f.Add([]byte(`{"status":200,"headers":null} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req innerRequest
		if decodeInner(data, &req) == nil {
			if h, err := httpHeader(req.Headers, requestHeaderAllowed); err == nil {
				checkInner(t, h, requestHeaderAllowed)
			}
		}
		var resp innerResponse
		if decodeInner(data, &resp) == nil {
			if h, err := httpHeader(resp.Headers, responseHeaderAllowed); err == nil {
				checkInner(t, h, responseHeaderAllowed)
			}
		}
	})
}

func checkInner(t *testing.T, h http.Header, allowed func(string) bool) {
	t.Helper()
	for name, vs := range h {
		if !allowed(strings.ToLower(name)) || len(vs) != 1 || strings.ContainsAny(vs[0], "\r\n\x00") {
			t.Fatalf("header %q: %q", name, vs)
		}
	}
}
