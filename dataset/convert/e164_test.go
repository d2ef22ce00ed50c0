package convert

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// FuzzIsE164: the Go check accepts exactly what e164Pattern matches in
// full, as DuckDB's conversion tests it.
func FuzzIsE164(f *testing.F) {
	re := regexp.MustCompile(`^(?:` + e164Pattern + `)$`)
	for _, s := range []string{"+819012345678", "+1234567", "+123456", "+123456789012345", "+1234567890123456", "+0123456789", "819012345678", "+81 90 1234", "+８１９０１２３４５６７", "+81901234567\n", "", "+", "+\xff1234567"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := isE164(b), re.Match(b); got != want {
			t.Fatalf("isE164(%q) = %v, the pattern says %v", b, got, want)
		}
	})
}

// e164Writes are the ways the tests write Parquet: DuckDB's page formats,
// encodings and codecs, with row groups small enough that a file has
// many. The Go check reads all of them but the v2 format's DELTA encodings
// of strings, which it leaves to conversion.
var e164Writes = []struct {
	opts string
	read bool
}{
	{"COMPRESSION zstd", true},
	{"COMPRESSION snappy, ROW_GROUP_SIZE 1000", true},
	{"COMPRESSION gzip", true},
	{"COMPRESSION uncompressed, ROW_GROUP_SIZE 500", true},
	{"COMPRESSION lz4", true},
	{"COMPRESSION brotli", true},
	{"COMPRESSION zstd, DICTIONARY_SIZE_LIMIT 1", true},
	{"COMPRESSION gzip, PARQUET_VERSION v2", false},
	{"COMPRESSION uncompressed, PARQUET_VERSION v2, ROW_GROUP_SIZE 500", false},
}

// e164Tables are the tables the tests write: distinct phones (plain
// encoding) and a few repeated ones (dictionary encoding), with nulls, and
// one bad value at the start, middle or end of each.
var e164Tables = map[string]string{
	"distinct":          "SELECT r AS id, CASE WHEN r % 7 = 0 THEN NULL ELSE '+8190' || lpad(CAST(r AS VARCHAR), 8, '0') END AS phone FROM range(5000) t(r)",
	"repeated":          "SELECT r AS id, CASE WHEN r % 7 = 0 THEN NULL ELSE '+8190000000' || CAST(r % 5 AS VARCHAR) END AS phone FROM range(5000) t(r)",
	"distinct bad last": "SELECT r AS id, CASE WHEN r = 4999 THEN '090-1234-5678' ELSE '+8190' || lpad(CAST(r AS VARCHAR), 8, '0') END AS phone FROM range(5000) t(r)",
	"distinct bad mid":  "SELECT r AS id, CASE WHEN r = 2500 THEN '+81 90 1234 5678' ELSE '+8190' || lpad(CAST(r AS VARCHAR), 8, '0') END AS phone FROM range(5000) t(r)",
	"repeated bad":      "SELECT r AS id, CASE WHEN r = 3000 THEN '+0812345678' ELSE '+8190000000' || CAST(r % 5 AS VARCHAR) END AS phone FROM range(5000) t(r)",
	"bad first":         "SELECT r AS id, CASE WHEN r = 0 THEN '' ELSE '+8190' || lpad(CAST(r AS VARCHAR), 8, '0') END AS phone FROM range(5000) t(r)",
	"all null":          "SELECT r AS id, CAST(NULL AS VARCHAR) AS phone FROM range(5000) t(r)",
}

// goE164 runs the Go check of leaf column col of the file at path.
func goE164(ctx context.Context, s *session, path string, col int) (bool, error) {
	in := &Input{s: s, path: path}
	chunks, ok, err := in.columnChunks(ctx, valueCheck{e164: []int{col}, optional: []bool{true, true}})
	if !ok || err != nil {
		return false, err
	}
	return parquetE164(ctx, path, chunks)
}

// duckE164 is the reference: whether DuckDB reads the file and finds every
// non-null phone matching e164Pattern.
func duckE164(t testing.TB, s *session, path string) (ok bool, err error) {
	var bad int64
	err = s.conn.QueryRowContext(context.Background(), fmt.Sprintf("SELECT count(*) FILTER (WHERE phone IS NOT NULL AND NOT regexp_full_match(phone, '%s')) FROM read_parquet(%s)", e164Pattern, quote(path))).Scan(&bad)
	return err == nil && bad == 0, err
}

// TestParquetE164: the Go check of phone columns agrees with DuckDB's on
// every page format, encoding and codec DuckDB writes, and refuses a column
// that is not text.
func TestParquetE164(t *testing.T) {
	ctx := context.Background()
	s, err := open(ctx, Config{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	dir := t.TempDir()
	for name, query := range e164Tables {
		for i, w := range e164Writes {
			opts := w.opts
			p := filepath.Join(dir, fmt.Sprintf("%s-%d.parquet", name, i))
			if _, err := s.conn.ExecContext(ctx, fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, %s)", query, quote(p), opts)); err != nil {
				t.Fatal(err)
			}
			want, err := duckE164(t, s, p)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := goE164(ctx, s, p, 1); !w.read {
				t.Logf("%s %s %v", name, opts, got)
			}
			if got, err := goE164(ctx, s, p, 1); err != nil || got != want && (w.read || got) {
				t.Errorf("%s (%s): Go check %v %v, DuckDB %v", name, opts, got, err, want)
			}
			if want != !strings.Contains(name, "bad") {
				t.Errorf("%s (%s): DuckDB says %v", name, opts, want)
			}
			if got, err := goE164(ctx, s, p, 0); got || err != nil {
				t.Errorf("%s (%s): a BIGINT column passed: %v %v", name, opts, got, err)
			}
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	chunks, _, err := (&Input{s: s, path: filepath.Join(dir, "distinct-0.parquet")}).columnChunks(ctx, valueCheck{e164: []int{1}, optional: []bool{true, true}})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := parquetE164(cctx, filepath.Join(dir, "distinct-0.parquet"), chunks); ok || err != context.Canceled {
		t.Errorf("cancelled: %v %v", ok, err)
	}
}

// FuzzParquetE164: whatever the bytes of a file's pages, the Go check
// returns, and it never passes a file in which DuckDB reads a phone that
// is not in E.164 form. The fuzzer varies the pages of DuckDB-written
// files and keeps their footers, so that both read the same chunks.
func FuzzParquetE164(f *testing.F) {
	ctx := context.Background()
	s, err := open(ctx, Config{Threads: 1})
	if err != nil {
		f.Fatal(err)
	}
	defer s.close()
	dir := f.TempDir()
	var bases [][]byte // the files
	var footers []int  // where each one's footer starts
	for _, w := range []struct{ table, opts string }{
		{"distinct", "COMPRESSION zstd, ROW_GROUP_SIZE 20"},
		{"repeated", "COMPRESSION zstd"},
		{"distinct", "COMPRESSION snappy"},
		{"distinct", "COMPRESSION gzip"},
		{"repeated", "COMPRESSION uncompressed, PARQUET_VERSION v2"},
		{"distinct", "COMPRESSION uncompressed, DICTIONARY_SIZE_LIMIT 1"},
	} {
		p := filepath.Join(dir, "base.parquet")
		if _, err := s.conn.ExecContext(ctx, fmt.Sprintf("COPY (%s LIMIT 50) TO %s (FORMAT parquet, %s)", e164Tables[w.table], quote(p), w.opts)); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		footer := len(b) - 8 - int(binary.LittleEndian.Uint32(b[len(b)-8:]))
		f.Add(uint8(len(bases)), b[4:footer])
		bases, footers = append(bases, b), append(footers, footer)
	}
	n := 0
	f.Fuzz(func(t *testing.T, base uint8, pages []byte) {
		i := int(base) % len(bases)
		b := bytes.Clone(bases[i])
		region := b[4:footers[i]]
		clear(region)
		copy(region, pages)
		n++
		p := filepath.Join(dir, fmt.Sprintf("in-%d.parquet", n))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(p)
		ok, err := goE164(ctx, s, p, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return
		}
		if duckOK, duckErr := duckE164(t, s, p); duckErr == nil && !duckOK {
			t.Fatal("the Go check passed a phone DuckDB reads as not E.164")
		}
	})
}

// TestPageGates: a page of dictionary indexes passes only after its
// chunk's dictionary page; PLAIN values that do not parse to the end of
// the page, or a value that is not E.164, fail; a page type or encoding
// the check does not read fails.
func TestPageGates(t *testing.T) {
	var pr pageReader
	plain := func(vals ...string) []byte {
		var b []byte
		for _, v := range vals {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		}
		return b
	}
	required := columnChunk{codec: "UNCOMPRESSED"}
	good := plain("+819012345678", "+442079460958")
	for name, tc := range map[string]struct {
		h    pageHeader
		raw  []byte
		dict bool
		want bool
	}{
		"plain":                   {pageHeader{typ: pageData, encoding: encPlain}, good, false, true},
		"plain, one bad":          {pageHeader{typ: pageData, encoding: encPlain}, plain("+819012345678", "090-1234-5678"), false, false},
		"plain, cut in a length":  {pageHeader{typ: pageData, encoding: encPlain}, good[:len(good)-15], false, false},
		"plain, cut in a value":   {pageHeader{typ: pageData, encoding: encPlain}, good[:len(good)-3], false, false},
		"indexes before a dict":   {pageHeader{typ: pageData, encoding: encRLEDictionary}, []byte{1, 2, 3}, false, false},
		"indexes after a dict":    {pageHeader{typ: pageData, encoding: encRLEDictionary}, []byte{1, 2, 3}, true, true},
		"v2 indexes before dict":  {pageHeader{typ: pageDataV2, encoding: encPlainDictionary}, []byte{1}, false, false},
		"dictionary":              {pageHeader{typ: pageDictionary, encoding: encPlain}, good, false, true},
		"dictionary, one bad":     {pageHeader{typ: pageDictionary, encoding: encPlain}, plain("+0812345678"), false, false},
		"delta strings":           {pageHeader{typ: pageData, encoding: 6}, good, false, false},
		"unknown page type":       {pageHeader{typ: 9, encoding: encPlain}, good, false, false},
		"v2 levels past the page": {pageHeader{typ: pageDataV2, encoding: encPlain, defLen: 100}, good, false, false},
	} {
		h := tc.h
		h.uncompressed, h.compressed = int32(len(tc.raw)), int32(len(tc.raw))
		if got := pr.pageE164(required, h, tc.raw, tc.dict); got != tc.want {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
	// An optional column's V1 page: RLE definition levels skipped by their
	// length, whatever they say.
	levels := binary.LittleEndian.AppendUint32(nil, 2)
	levels = append(levels, 0xff, 0xff)
	optional := columnChunk{codec: "UNCOMPRESSED", optional: true}
	page := append(levels, good...)
	h := pageHeader{typ: pageData, encoding: encPlain, levelEncoding: encRLE, uncompressed: int32(len(page)), compressed: int32(len(page))}
	if !pr.pageE164(optional, h, page, false) {
		t.Error("optional page refused")
	}
	if pr.pageE164(optional, h, levels[:3], false) {
		t.Error("a page cut inside its level length passed")
	}
	if pr.pageE164(optional, pageHeader{typ: pageData, encoding: encPlain, levelEncoding: encRLE, uncompressed: 6, compressed: 6}, binary.LittleEndian.AppendUint32(nil, 1000), false) {
		t.Error("levels longer than the page passed")
	}
}

// TestSealAsIsLeavesUnnormalisedColumns: a damaged page in a column that
// needs no normalisation is not decoded at seal time, so the file is
// sealed as it is; DuckDB, as the clean room's engine, refuses to read
// it (docs/spec/dataset.md §5).
func TestSealAsIsLeavesUnnormalisedColumns(t *testing.T) {
	ctx := context.Background()
	sc := mustSchema(t, schemaYAML)
	dir := t.TempDir()
	in := parquetOf(t, dir, "in.parquet", conformingQuery)
	s, err := open(ctx, Config{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	var offset int64
	if err := s.conn.QueryRowContext(ctx, "SELECT coalesce(dictionary_page_offset, data_page_offset) FROM parquet_metadata("+quote(in)+") WHERE path_in_schema = 'name'").Scan(&offset); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := offset; i < offset+4; i++ { // the page header of column "name"
		data[i] ^= 0xff
	}
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sealed, pt, err := sealAndOpen(t, in, sc)
	if err != nil || !sealed.AsIs {
		t.Fatalf("sealed %+v, %v: want it sealed as it is", sealed, err)
	}
	var n int64
	if err := s.conn.QueryRowContext(ctx, "SELECT count(name) FROM read_parquet("+quote(pt)+")").Scan(&n); err == nil {
		t.Fatal("DuckDB read the damaged column")
	}
}
