package intake

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/kura-cc/kura/blob"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/web"
)

// Sealed datasets (docs/spec/cleanroom.md §4): an owner uploads a sealed
// file under its SHA-256 (PUT /v1/datasets/{sha256}), and a worker fetches
// it by the location https://SERVER/v1/datasets/{sha256} a manifest names.
// The files are ciphertext, and workers check the digest anyway, so reads
// are public; uploads are signed by one of the key broker's tenants, so
// that only an owner the operator admitted fills the blob store.

// DefaultMaxDataset bounds one uploaded sealed file.
const DefaultMaxDataset = 16 << 30

// minUploadRate is the slowest transfer a dataset upload or download is
// given time for, on top of the server's usual timeouts.
const minUploadRate = 1 << 20 // bytes per second

// Errors of dataset uploads.
var (
	// ErrDigestMismatch means an uploaded file's SHA-256 is not the one
	// its URL names (400); nothing is stored.
	ErrDigestMismatch = fault.NewCode(nil, fault.BadRequest, "digest-mismatch", "uploaded file does not match its digest")
	errNoLength       = fault.New(nil, fault.BadRequest, "a dataset upload needs Content-Length")
)

func datasetKey(digest string) string { return "datasets/" + digest + ".kura" }

func checkDigest(d string) error {
	if b, err := hex.DecodeString(d); err != nil || len(b) != sha256.Size || hex.EncodeToString(b) != d {
		return errBadDigest
	}
	return nil
}

// putDataset stores a sealed file under its digest, streaming it into the
// blob store: a file whose bytes do not hash to the digest fails the Put,
// which leaves nothing behind.
func (in *Intake) putDataset(w http.ResponseWriter, r *http.Request) error {
	d := r.PathValue("digest")
	if err := checkDigest(d); err != nil {
		return err
	}
	who, err := in.uploader(r)
	if err != nil {
		return err
	}
	if r.ContentLength < 0 {
		return errNoLength
	}
	if r.ContentLength > in.maxDataset {
		return &http.MaxBytesError{Limit: in.maxDataset}
	}
	if _, err := in.archive.Stat(r.Context(), datasetKey(d)); err == nil {
		in.slog.InfoContext(r.Context(), "sealed dataset already stored", "sha256", d, "by", who)
		return web.WriteJSON(w, http.StatusOK, DatasetResponse{SHA256: d, Location: "/v1/datasets/" + d})
	} else if !errors.Is(err, blob.ErrNotFound) {
		return err
	}
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(30*time.Second + time.Duration(r.ContentLength/minUploadRate)*time.Second))
	body := &digestReader{r: http.MaxBytesReader(w, r.Body, r.ContentLength), h: sha256.New(), want: d}
	if err := in.archive.Put(r.Context(), datasetKey(d), body, r.ContentLength); err != nil {
		if body.err != nil {
			return body.err
		}
		return fmt.Errorf("store sealed dataset: %w", err)
	}
	in.slog.InfoContext(r.Context(), "sealed dataset stored", "sha256", d, "bytes", r.ContentLength, "by", who)
	return web.WriteJSON(w, http.StatusCreated, DatasetResponse{SHA256: d, Location: "/v1/datasets/" + d})
}

// DatasetResponse answers a dataset upload. Location is the path, on the
// server that answered, to name in the dataset's manifest entry.
type DatasetResponse struct {
	SHA256   string `json:"sha256"`
	Location string `json:"location"`
}

// getDataset serves a stored sealed file.
func (in *Intake) getDataset(w http.ResponseWriter, r *http.Request) error {
	d := r.PathValue("digest")
	if err := checkDigest(d); err != nil {
		return err
	}
	info, err := in.archive.Stat(r.Context(), datasetKey(d))
	if errors.Is(err, blob.ErrNotFound) {
		return fmt.Errorf("%w: no sealed dataset with that SHA-256 here", err)
	}
	if err != nil {
		return err
	}
	rc, err := in.archive.Get(r.Context(), datasetKey(d))
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(60*time.Second + time.Duration(info.Size/minUploadRate)*time.Second))
	w.Header().Set("Content-Type", "application/octet-stream")
	_, err = io.Copy(w, rc)
	return err
}

// digestReader hashes what it reads and, at the end, fails instead of
// returning io.EOF when the hash is not want.
type digestReader struct {
	r    io.Reader
	h    hash.Hash
	want string
	err  error
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(d.h.Sum(nil)); got != d.want {
			d.err = fmt.Errorf("%w: the body's SHA-256 is %s", ErrDigestMismatch, got)
			return n, d.err
		}
	}
	return n, err
}
