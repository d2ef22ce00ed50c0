package dataset

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the test vectors in docs/spec/dataset.md")

const specPath = "../docs/spec/dataset.md"

// vector is one test vector of docs/spec/dataset.md §7. Byte strings are hex.
type vector struct {
	Comment      string   `json:"comment"`
	Key          string   `json:"key"`
	Salt         string   `json:"salt"`
	DatasetID    string   `json:"dataset_id"`
	Format       string   `json:"format"`
	Schema       string   `json:"schema"`
	ChunkSize    int      `json:"chunk_size"`
	SizeInHeader bool     `json:"size_in_header"`
	Plaintext    string   `json:"plaintext"`
	KeyID        string   `json:"key_id"`
	ChunkKey     string   `json:"chunk_key"`
	HeaderMACKey string   `json:"header_mac_key"`
	Header       string   `json:"header"`
	AAD          string   `json:"aad"`
	Chunks       []string `json:"chunks"`
	Sealed       string   `json:"sealed"`
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// compute fills in the derived fields of v from its inputs.
func (v vector) compute(t testing.TB) vector {
	key, err := KeyFromBytes(unhex(t, v.Key))
	if err != nil {
		t.Fatal(err)
	}
	salt, pt := unhex(t, v.Salt), unhex(t, v.Plaintext)
	size := int64(UnknownSize)
	if v.SizeInHeader {
		size = int64(len(pt))
	}
	var out bytes.Buffer
	h, err := seal(context.Background(), &out, bytes.NewReader(pt), key,
		Header{DatasetID: v.DatasetID, Format: v.Format, Schema: json.RawMessage(v.Schema), ChunkSize: v.ChunkSize},
		size, Options{Rand: bytes.NewReader(salt), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	id := key.ID()
	v.KeyID = hex.EncodeToString(id[:])
	v.ChunkKey = hex.EncodeToString(derive(key.b[:], salt, infoChunkKey))
	v.HeaderMACKey = hex.EncodeToString(derive(key.b[:], salt, infoHeaderMAC))
	v.Header = hex.EncodeToString(h.raw)
	c := newFileCipher(key, h)
	v.AAD = hex.EncodeToString(c.aad[:])
	v.Chunks = nil
	body := out.Bytes()[len(h.raw):]
	for len(body) > 0 {
		n := min(len(body), v.ChunkSize+TagSize)
		v.Chunks = append(v.Chunks, hex.EncodeToString(body[:n]))
		body = body[n:]
	}
	v.Sealed = hex.EncodeToString(out.Bytes())
	return v
}

func vectorInputs() []vector {
	key := strings.Repeat("00112233445566778899aabbccddeeff", 2)
	salt := "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	schema := `{"columns":[{"name":"email","type":"string","identity":true,"join":true,"normalize":["trim","lower"]}]}`
	text := hex.EncodeToString([]byte("蔵 kura: the storehouse whose door opens only when its owners agree"))
	return []vector{
		{Comment: "empty plaintext: one empty final chunk", Key: key, Salt: salt, DatasetID: "vector-empty", Format: "parquet", Schema: schema, ChunkSize: 16, SizeInHeader: true, Plaintext: ""},
		{Comment: "exactly one chunk", Key: key, Salt: salt, DatasetID: "vector-one", Format: "parquet", ChunkSize: 16, SizeInHeader: true, Plaintext: "000102030405060708090a0b0c0d0e0f"},
		{Comment: "several chunks, the last one short, non-ASCII", Key: key, Salt: salt, DatasetID: "vector-蔵", Format: "parquet", Schema: schema, ChunkSize: 16, SizeInHeader: true, Plaintext: text},
		{Comment: "the same, streamed: size unknown", Key: key, Salt: salt, DatasetID: "vector-蔵", Format: "parquet", Schema: schema, ChunkSize: 16, SizeInHeader: false, Plaintext: text},
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
	const marker = "<!-- test vectors: checked by dataset/vectors_test.go -->\n```json\n"
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

func TestVectors(t *testing.T) {
	if *update {
		var vs []vector
		for _, v := range vectorInputs() {
			vs = append(vs, v.compute(t))
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
	for _, v := range loadVectors(t) {
		t.Run(v.Comment, func(t *testing.T) {
			if got := v.compute(t); !equalJSON(t, got, v) {
				got, _ := json.MarshalIndent(got, "", "  ")
				t.Fatalf("sealing the inputs does not give the vector; got\n%s", got)
			}
			key, _ := KeyFromBytes(unhex(t, v.Key))
			var out bytes.Buffer
			if _, err := Open(context.Background(), &out, bytes.NewReader(unhex(t, v.Sealed)), key, Options{}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), unhex(t, v.Plaintext)) {
				t.Fatal("opening the vector does not give its plaintext")
			}
		})
	}
}

func equalJSON(t testing.TB, a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
