package intake_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/auditlog/intake"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/store/sqlite"
)

// TestDatasets: a key broker tenant uploads a sealed file under its
// SHA-256 and anyone reads it back; a body that does not hash to its URL,
// an unsigned, unknown-key, replayed, unsized or oversized upload is
// refused and stores nothing.
func TestDatasets(t *testing.T) {
	ctx := context.Background()
	_, owner, _ := ed25519.GenerateKey(rand.Reader)
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	admins, err := keybroker.NewAdmins([]keybroker.AdminKey{{Name: "airline", Public: owner.Public().(ed25519.PublicKey)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.New(ctx, sqlite.Config{Path: t.TempDir() + "/kura.db"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFixtureWith(t, func(cfg *intake.Config) {
		cfg.MaxDataset = 1 << 20
		cfg.Uploader = func(r *http.Request) (string, error) { return admins.Authenticate(r, nil, st.Ephemeral()) }
	})
	sealed := bytes.Repeat([]byte("KURASEAL"), 10_000)
	sum := sha256.Sum256(sealed)
	digest := hex.EncodeToString(sum[:])
	signer := func(key ed25519.PrivateKey) func(*http.Request) {
		a := &keybroker.AdminClient{Key: key}
		return func(r *http.Request) { a.SignBody(r, nil, time.Now()) }
	}
	get := func(d string) (int, []byte) {
		res, err := f.srv.Client().Get(f.srv.URL + "/v1/datasets/" + d)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, body
	}

	// Refusals first: each leaves nothing behind.
	other := append(bytes.Clone(sealed[:len(sealed)-1]), '!')
	for name, tc := range map[string]struct {
		body []byte
		size int64
		sign func(*http.Request)
		kind error
		want string
	}{
		"a body that is not the digest's": {other, int64(len(other)), signer(owner), fault.BadRequest, "digest-mismatch"},
		"unsigned":                        {sealed, int64(len(sealed)), func(*http.Request) {}, fault.Unauthenticated, "401"},
		"a key that is no tenant's":       {sealed, int64(len(sealed)), signer(stranger), fault.Unauthenticated, "401"},
		"larger than the limit":           {make([]byte, 2<<20), 2 << 20, signer(owner), fault.BadRequest, "413"},
	} {
		_, err := f.client.UploadDataset(ctx, bytes.NewReader(tc.body), tc.size, digest, tc.sign)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %v (%s)", name, err, tc.kind, tc.want)
		}
		if code, _ := get(digest); code != http.StatusNotFound {
			t.Fatalf("after %s: GET answers %d, want 404", name, code)
		}
	}
	// Without Content-Length (a chunked body).
	req, _ := http.NewRequest(http.MethodPut, f.srv.URL+"/v1/datasets/"+digest, io.MultiReader(bytes.NewReader(sealed)))
	signer(owner)(req)
	if res, err := f.srv.Client().Do(req); err != nil {
		t.Fatal(err)
	} else if res.StatusCode != http.StatusBadRequest {
		t.Errorf("an upload without Content-Length: %d", res.StatusCode)
	}

	res, err := f.client.UploadDataset(ctx, bytes.NewReader(sealed), int64(len(sealed)), digest, signer(owner))
	if err != nil || res.SHA256 != digest || res.Location != "/v1/datasets/"+digest {
		t.Fatalf("upload: %+v, %v", res, err)
	}
	if code, body := get(digest); code != http.StatusOK || !bytes.Equal(body, sealed) {
		t.Errorf("GET: %d, %d bytes, want the %d uploaded", code, len(body), len(sealed))
	}
	if _, err := f.client.UploadDataset(ctx, bytes.NewReader(sealed), int64(len(sealed)), digest, signer(owner)); err != nil {
		t.Errorf("uploading a stored file again: %v", err)
	}
	// A replayed signed upload is refused.
	req, _ = http.NewRequest(http.MethodPut, f.srv.URL+"/v1/datasets/"+digest, bytes.NewReader(sealed))
	signer(owner)(req)
	replay := req.Clone(ctx)
	for i, want := range []int{http.StatusOK, http.StatusUnauthorized} {
		r := req
		if i == 1 {
			r = replay
			r.Body = io.NopCloser(bytes.NewReader(sealed))
		}
		res, err := f.srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != want {
			t.Errorf("upload %d: %d, want %d", i+1, res.StatusCode, want)
		}
	}
	for _, bad := range []string{strings.ToUpper(digest), digest[:10], "..%2fkura.db"} {
		if code, _ := get(bad); code != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", bad, code)
		}
	}
	if code, _ := get(strings.Repeat("0", 64)); code != http.StatusNotFound {
		t.Errorf("GET of an unknown digest: %d", code)
	}
}
