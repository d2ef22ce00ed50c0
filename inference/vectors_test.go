package inference

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"
)

var update = flag.Bool("update", false, "rewrite the test vectors in docs/spec/inference.md")

const specPath = "../docs/spec/inference.md"

// vector is one test vector of docs/spec/inference.md §10. Byte strings
// are hex; frame plaintexts are text.
type vector struct {
	Comment string `json:"comment"`
	// Inputs.
	IKM           string   `json:"ikm"` // DeriveKeyPair input of the gateway's key
	KeyID         int      `json:"key_id"`
	KEM           string   `json:"kem_id"`
	KDF           string   `json:"kdf_id"`
	AEAD          string   `json:"aead_id"`
	RequestFrames []string `json:"request_frames"` // the last one is final
	ResponseNonce string   `json:"response_nonce"`
	// UpstreamStatus and UpstreamReads are the model server's answer as
	// the gateway reads it: one frame per read.
	UpstreamStatus int      `json:"upstream_status"`
	UpstreamType   string   `json:"upstream_content_type"`
	UpstreamReads  []string `json:"upstream_reads"`
	// Derived.
	PrivateKey         string   `json:"private_key"`
	KeyConfigs         string   `json:"key_configs"` // application/ohttp-keys
	Info               string   `json:"info"`
	Enc                string   `json:"enc"` // from the sender's randomness
	Request            string   `json:"request"`
	RequestFrameBounds []int    `json:"request_frame_ends"` // offsets in request where each frame ends
	ResponseSecret     string   `json:"response_secret"`
	ResponseKey        string   `json:"response_key"`
	ResponseBaseNonce  string   `json:"response_base_nonce"`
	ResponseFrames     []string `json:"response_frames"` // plaintexts; the last one is final
	Response           string   `json:"response"`
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hexID(t testing.TB, s string) uint16 {
	t.Helper()
	b := unhex(t, s)
	if len(b) != 2 {
		t.Fatalf("id %q", s)
	}
	return uint16(b[0])<<8 | uint16(b[1])
}

// vectorKeySet is a key set holding only the vector's key.
func vectorKeySet(t testing.TB, v vector) (*KeySet, *gatewayKey) {
	t.Helper()
	k, ok := kemFor(hexID(t, v.KEM))
	if !ok {
		t.Fatalf("KEM %s", v.KEM)
	}
	priv, err := k.kem.DeriveKeyPair(unhex(t, v.IKM))
	if err != nil {
		t.Fatal(err)
	}
	gk := newGatewayKey(byte(v.KeyID), priv)
	return &KeySet{now: time.Now, maxSeen: defaultMaxSeen, current: []*gatewayKey{gk}}, gk
}

// oneReadPerChunk returns each chunk from its own Read, the next only
// once the gateway has flushed a frame for the previous one (flushed
// counts the gateway's flushes, the inner header frame's first), so that
// the gateway, which coalesces what arrives while it seals, makes one
// frame per chunk and the vectors do not depend on scheduling.
type oneReadPerChunk struct {
	chunks  []string
	flushed chan struct{}
}

func (r *oneReadPerChunk) Read(p []byte) (int, error) {
	if r.flushed != nil && len(r.chunks) > 0 {
		<-r.flushed // the header frame, then the previous chunk's frame
	}
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	if n < len(r.chunks[0]) {
		r.chunks[0] = r.chunks[0][n:]
	} else {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

func (r *oneReadPerChunk) Close() error { return nil }

// flushRecorder records a response and signals each flush.
type flushRecorder struct {
	*httptest.ResponseRecorder
	flushed chan<- struct{}
}

func (f *flushRecorder) Flush() {
	f.ResponseRecorder.Flush()
	select {
	case f.flushed <- struct{}{}:
	default:
	}
}

// compute fills in v's derived fields from its inputs, sealing the request
// with crypto/rand seeded by seed.
func (v vector) compute(t *testing.T, seed uint64) vector {
	ks, gk := vectorKeySet(t, v)
	s := Suite{hexID(t, v.KEM), hexID(t, v.KDF), hexID(t, v.AEAD)}
	privBytes, err := gk.priv.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	v.PrivateKey = hex.EncodeToString(privBytes)
	cfgs, err := MarshalKeyConfigs([]KeyConfig{gk.cfg})
	if err != nil {
		t.Fatal(err)
	}
	v.KeyConfigs = hex.EncodeToString(cfgs)
	v.Info = hex.EncodeToString(requestInfo(requestHeader{byte(v.KeyID), s}.bytes()))

	// The request: the vector's frames, sealed in order. sealRequest cuts
	// the body into frames of one size, so seal the frames as given.
	cryptotest.SetGlobalRandom(t, seed)
	head := []byte(v.RequestFrames[0])
	body := []byte(strings.Join(v.RequestFrames[1:], ""))
	frameSize := MaxFrameSize
	if len(v.RequestFrames) > 2 {
		frameSize = len(v.RequestFrames[1])
		for _, f := range v.RequestFrames[1 : len(v.RequestFrames)-1] {
			if len(f) != frameSize {
				t.Fatal("request frames before the last must be of one size")
			}
		}
	}
	wire, enc, _, err := sealRequest(byte(v.KeyID), gk.priv.PublicKey(), s, head, body, frameSize)
	if err != nil {
		t.Fatal(err)
	}
	v.Enc, v.Request = hex.EncodeToString(enc), hex.EncodeToString(wire)
	_, frames := splitFrames(t, wire, headerLen+len(enc))
	v.RequestFrameBounds = nil
	end := headerLen + len(enc)
	for _, f := range frames {
		end += len(f)
		v.RequestFrameBounds = append(v.RequestFrameBounds, end)
	}

	// The gateway's side: open the request, derive and seal the response.
	req, err := openRequest(ks, bytes.NewReader(wire), 0)
	if err != nil {
		t.Fatal(err)
	}
	rnonce := unhex(t, v.ResponseNonce)
	a, _ := aeadFor(s.AEAD)
	secret, err := req.recipient.Export(responseLabel, max(a.nk, a.nn))
	if err != nil {
		t.Fatal(err)
	}
	key, base, err := deriveResponseKey(req.recipient, enc, rnonce, s.AEAD)
	if err != nil {
		t.Fatal(err)
	}
	v.ResponseSecret, v.ResponseKey, v.ResponseBaseNonce = hex.EncodeToString(secret), hex.EncodeToString(key), hex.EncodeToString(base)
	flushed := make(chan struct{}, len(v.UpstreamReads)+2)
	up := &http.Response{StatusCode: v.UpstreamStatus, Header: http.Header{"Content-Type": {v.UpstreamType}},
		Body: &oneReadPerChunk{chunks: append([]string(nil), v.UpstreamReads...), flushed: flushed}}
	rec := &flushRecorder{httptest.NewRecorder(), flushed}
	if _, err := sealResponse(context.Background(), rec, req, up, rnonce); err != nil {
		t.Fatal(err)
	}
	v.Response = hex.EncodeToString(rec.Body.Bytes())
	head2, err := encodeInnerResponse(v.UpstreamStatus, up.Header)
	if err != nil {
		t.Fatal(err)
	}
	v.ResponseFrames = append(append([]string{string(head2)}, v.UpstreamReads...), "")
	return v
}

func vectorInputs() []vector {
	reqFrames := []string{
		`{"headers":{"accept":"text/event-stream","content-type":"application/json"}}`,
		`{"model":"kura-test","stream":true,"messages":[{"role":"user",`,
		`"content":"蔵 opens only when its owners agree"}]}`,
	}
	reads := []string{
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"蔵\"}}]}\n\n",
		"data: [DONE]\n\n",
	}
	ikm := "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	// The first body frame fills a frame of its own size, so the vector
	// shows three frames with the final one last.
	return []vector{
		{Comment: "X25519, HKDF-SHA256, AES-128-GCM: a streamed chat completion", IKM: ikm, KeyID: 1, KEM: "0020", KDF: "0001", AEAD: "0001",
			RequestFrames: reqFrames, ResponseNonce: "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", UpstreamStatus: 200, UpstreamType: "text/event-stream", UpstreamReads: reads},
		{Comment: "X25519, HKDF-SHA256, ChaCha20Poly1305: a request without a body, a model server's 404", IKM: ikm, KeyID: 7, KEM: "0020", KDF: "0001", AEAD: "0003",
			RequestFrames: []string{`{"headers":{}}`}, ResponseNonce: "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf", UpstreamStatus: 404, UpstreamType: "application/json",
			UpstreamReads: []string{`{"error":"no such model"}`}},
		{Comment: "MLKEM768X25519, HKDF-SHA256, AES-128-GCM: a streamed chat completion", IKM: ikm + ikm, KeyID: 0, KEM: "647a", KDF: "0001", AEAD: "0001",
			RequestFrames: reqFrames, ResponseNonce: "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", UpstreamStatus: 200, UpstreamType: "text/event-stream", UpstreamReads: reads},
	}
}

// specVectors returns the JSON vectors block of the spec and its position.
func specVectors(t testing.TB) (doc string, start, end int) {
	t.Helper()
	b, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	doc = string(b)
	const marker = "<!-- test vectors: checked by inference/vectors_test.go -->\n```json\n"
	start = strings.Index(doc, marker)
	if start < 0 {
		t.Fatalf("%s: no test vectors block", specPath)
	}
	start += len(marker)
	end = strings.Index(doc[start:], "```")
	if end < 0 {
		t.Fatalf("%s: unterminated test vectors block", specPath)
	}
	return doc, start, start + end
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	doc, start, end := specVectors(t)
	var vs []vector
	if err := json.Unmarshal([]byte(doc[start:end]), &vs); err != nil {
		t.Fatalf("%s: vectors: %v", specPath, err)
	}
	if len(vs) == 0 {
		t.Fatalf("%s: no vectors", specPath)
	}
	return vs
}

// TestVectors checks every vector of the spec: a receiver holding the
// derived key opens the request to its frames and the response to its
// frames, and sealing the inputs again (with the same seeded randomness)
// gives the vector byte for byte.
func TestVectors(t *testing.T) {
	if *update {
		var vs []vector
		for i, v := range vectorInputs() {
			vs = append(vs, v.compute(t, uint64(i+1)))
		}
		js, err := json.MarshalIndent(vs, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		doc, start, end := specVectors(t)
		doc = doc[:start] + string(js) + "\n" + doc[end:]
		if err := os.WriteFile(specPath, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, v := range loadVectors(t) {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			ks, gk := vectorKeySet(t, v)
			if got, _ := MarshalKeyConfigs([]KeyConfig{gk.cfg}); hex.EncodeToString(got) != v.KeyConfigs {
				t.Fatalf("key configs %x", got)
			}
			req, err := openRequest(ks, bytes.NewReader(unhex(t, v.Request)), 0)
			if err != nil {
				t.Fatalf("opening the request: %v", err)
			}
			if want := strings.Join(v.RequestFrames[1:], ""); string(req.body) != want || req.frames != len(v.RequestFrames) {
				t.Fatalf("request body %q in %d frames", req.body, req.frames)
			}
			resp, err := openResponse(io.NopCloser(bytes.NewReader(unhex(t, v.Response))), req.recipient, unhex(t, v.Enc), hexID(t, v.AEAD))
			if err != nil {
				t.Fatalf("opening the response: %v", err)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != v.UpstreamStatus || resp.Header.Get("Content-Type") != v.UpstreamType || string(b) != strings.Join(v.UpstreamReads, "") {
				t.Fatalf("response %d %v %q %v", resp.StatusCode, resp.Header, b, err)
			}
			if got := v.compute(t, uint64(i+1)); !equalJSON(got, v) {
				js, _ := json.MarshalIndent(got, "", "  ")
				t.Fatalf("sealing the inputs does not give the vector; got\n%s", js)
			}
		})
	}
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
