package convert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/dataset/table"
)

// SealConfig configures SealFile. Only Header.DatasetID is required.
type SealConfig struct {
	// Config tunes DuckDB.
	Config
	// Format is the input's format; "" means by extension.
	Format Format
	// Schema is the schema to check the input against; nil means the
	// schema inferred from the input.
	Schema *table.Schema
	// Header supplies the sealed header's DatasetID and ChunkSize;
	// SealFile sets Format to "parquet" and Schema to the schema's JSON.
	Header dataset.Header
	// Workers is the number of chunks sealed in parallel; zero means
	// runtime.GOMAXPROCS(0).
	Workers int
	// Progress, when set, is called from one goroutine at a time as
	// sealing proceeds, and once at the end with Done set.
	Progress func(Progress)
}

// Progress is how far SealFile is. A total is -1 while it is unknown.
type Progress struct {
	Bytes      int64 // plaintext Parquet bytes sealed so far
	TotalBytes int64
	Rows       int64 // rows sealed so far (estimated from Bytes while sealing), or -1
	TotalRows  int64
	Done       bool
}

// Sealed describes what SealFile wrote.
type Sealed struct {
	// Header is the sealed file's header. Its Size is
	// dataset.UnknownSize when the Parquet was sealed as DuckDB wrote it.
	Header *dataset.Header
	// Schema is the schema the input was checked against.
	Schema *table.Schema
	// Rows is the number of rows sealed.
	Rows int64
	// Size is the number of plaintext Parquet bytes sealed.
	Size int64
	// AsIs reports that the input was Parquet that conforms to the schema
	// (Input.Conforms) and was sealed unchanged.
	AsIs bool
}

// SealFile checks the CSV, Parquet or JSON-lines file at inPath against
// the schema, normalises it and seals it as Parquet into dstPath under key
// (docs/spec/dataset.md §5). dstPath appears only when everything
// succeeded; input errors are as Convert's.
//
// A Parquet input that already is what conversion would write
// (Input.Conforms) is sealed byte for byte as it is, while one read-only
// scan checks its values; the header then records its size. Any other
// input is converted in one pass and the Parquet is sealed as DuckDB writes
// it, through a pipe: nothing is staged on disk and memory does not grow
// with the file, and the header records the size as unknown (a streamed
// file, docs/spec/dataset.md §3).
func SealFile(ctx context.Context, cfg SealConfig, dstPath, inPath string, key dataset.Key) (*Sealed, error) {
	in, err := OpenInput(ctx, cfg.Config, inPath, cfg.Format, cfg.Schema)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	h := cfg.Header
	h.Format = "parquet"
	h.Schema = in.sc.JSON()
	vc, ok, err := in.conformsMeta(ctx)
	if err != nil {
		return nil, err
	}
	if ok {
		s, ok, err := in.sealAsIs(ctx, cfg, vc, dstPath, key, h)
		if err != nil || ok {
			return s, err
		}
	}
	return in.sealConverted(ctx, cfg, dstPath, key, h)
}

// sealAsIs seals the input file unchanged into dstPath while vc checks
// its values; ok is false, and nothing is written, when they do not
// conform.
func (in *Input) sealAsIs(ctx context.Context, cfg SealConfig, vc valueCheck, dstPath string, key dataset.Key, h dataset.Header) (*Sealed, bool, error) {
	before, err := os.Stat(in.path)
	if err != nil {
		return nil, false, err
	}
	var total int64 // rows, from the footer
	if err := in.s.conn.QueryRowContext(ctx, "SELECT count(*) FROM read_parquet("+quote(in.path)+")").Scan(&total); err != nil {
		return nil, false, ctxErr(ctx)
	}
	tmp, err := reserve(dstPath)
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(tmp) // a no-op once renamed
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var hdr *dataset.Header
	sealed := make(chan error, 1)
	go func() {
		var err error
		hdr, err = dataset.SealFile(sctx, tmp, in.path, key, h, dataset.Options{Workers: cfg.Workers, Progress: func(done int64) {
			if cfg.Progress != nil {
				cfg.Progress(Progress{Bytes: done, TotalBytes: before.Size(), Rows: estimate(total, done, before.Size()), TotalRows: total})
			}
		}})
		sealed <- err
	}()
	rows, ok, err := in.conformsValues(ctx, vc)
	if err != nil || !ok {
		cancel()
		<-sealed
		return nil, false, err
	}
	if err := <-sealed; err != nil {
		return nil, false, err
	}
	after, err := os.Stat(in.path)
	if err != nil {
		return nil, false, err
	}
	if !os.SameFile(before, after) || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		return nil, false, fmt.Errorf("%w: %s was modified while it was sealed", dataset.ErrSourceChanged, in.path)
	}
	if err := os.Rename(tmp, dstPath); err != nil {
		return nil, false, err
	}
	if cfg.Progress != nil {
		cfg.Progress(Progress{Bytes: hdr.Size, TotalBytes: hdr.Size, Rows: rows, TotalRows: rows, Done: true})
	}
	return &Sealed{Header: hdr, Schema: in.sc, Rows: rows, Size: hdr.Size, AsIs: true}, true, nil
}

// sealConverted converts the input and seals the Parquet as DuckDB writes
// it.
func (in *Input) sealConverted(ctx context.Context, cfg SealConfig, dstPath string, key dataset.Key, h dataset.Header) (*Sealed, error) {
	f, err := os.CreateTemp(filepath.Dir(dstPath), "."+filepath.Base(dstPath)+".tmp-*")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	var res *Result
	var convErr error
	converted := make(chan struct{})
	go func() {
		defer close(converted)
		res, convErr = in.WriteParquet(cctx, pw)
		pw.CloseWithError(convErr) // nil: EOF
	}()
	src := &countingReader{r: pr}
	sealErr := dataset.Seal(cctx, f, src, key, h, dataset.Options{Workers: cfg.Workers, Progress: func(done int64) {
		if cfg.Progress != nil {
			cfg.Progress(Progress{Bytes: done, TotalBytes: -1, Rows: -1, TotalRows: -1})
		}
	}})
	if sealErr != nil {
		cancel()
		pr.CloseWithError(sealErr)
	}
	<-converted
	switch {
	case convErr != nil && (sealErr == nil || errors.Is(sealErr, convErr)):
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, convErr
	case sealErr != nil:
		return nil, sealErr
	}
	if err := f.Chmod(0o644); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	hdr, err := dataset.ReadHeader(f)
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(f.Name(), dstPath); err != nil {
		return nil, err
	}
	ok = true
	if cfg.Progress != nil {
		cfg.Progress(Progress{Bytes: src.n, TotalBytes: src.n, Rows: res.Rows, TotalRows: res.Rows, Done: true})
	}
	return &Sealed{Header: hdr, Schema: in.sc, Rows: res.Rows, Size: src.n}, nil
}

// reserve creates an empty temporary file next to path and returns its
// name, for dataset.SealFile to replace.
func reserve(path string) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}

// estimate returns the rows in the first done of size bytes of a file of
// rows rows.
func estimate(rows, done, size int64) int64 {
	if size <= 0 {
		return rows
	}
	return int64(float64(rows) * float64(done) / float64(size))
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
