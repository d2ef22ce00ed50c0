package convert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/dataset/table"
)

// parquetOf writes query's rows as a zstd Parquet file, as DuckDB (and kura's
// conversion) writes them.
func parquetOf(t *testing.T, dir, name, query string) string {
	t.Helper()
	s, err := open(context.Background(), Config{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	p := filepath.Join(dir, name)
	if _, err := s.copyFile(context.Background(), query, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// sealAndOpen seals in with SealFile and returns the result and the
// plaintext Parquet the sealed file opens to.
func sealAndOpen(t *testing.T, in string, sc *table.Schema) (*Sealed, string, error) {
	t.Helper()
	dir := t.TempDir()
	key := dataset.NewKey()
	out := filepath.Join(dir, "out.kura")
	s, err := SealFile(context.Background(), SealConfig{Config: Config{Threads: 2}, Schema: sc, Header: dataset.Header{DatasetID: "t", ChunkSize: 4096}}, out, in, key)
	if err != nil {
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("failed seal left %v behind", entries)
		}
		return nil, "", err
	}
	pt := filepath.Join(dir, "opened.parquet")
	h, err := dataset.OpenFile(context.Background(), pt, out, key, dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if string(h.Schema) != string(s.Schema.JSON()) || h.Format != "parquet" {
		t.Errorf("header schema %s format %s", h.Schema, h.Format)
	}
	return s, pt, nil
}

const conformingQuery = `SELECT * FROM (VALUES
  ('alice@example.com', '+819012345678', 'n1', 3::BIGINT, 1.5::DOUBLE, true, DATE '2024-01-02', TIMESTAMP '2024-01-02 03:04:05'),
  ('bob@example.com', '+442079460958', 'n2', NULL, 2.25, false, DATE '2023-12-31', NULL),
  (NULL, NULL, NULL, 7, NULL, NULL, NULL, NULL))
  t(email, phone, name, visits, score, member, since, seen)`

// TestSealConformingParquetAsIs: Parquet that already is what conversion
// writes is sealed byte for byte and opens to the same table.
func TestSealConformingParquetAsIs(t *testing.T) {
	sc := mustSchema(t, schemaYAML)
	dir := t.TempDir()
	in := parquetOf(t, dir, "in.parquet", conformingQuery)
	s, pt, err := sealAndOpen(t, in, sc)
	if err != nil {
		t.Fatal(err)
	}
	if !s.AsIs || s.Rows != 3 || s.Header.Size != s.Size {
		t.Fatalf("sealed %+v", s)
	}
	a, _ := os.ReadFile(in)
	b, _ := os.ReadFile(pt)
	if !bytes.Equal(a, b) {
		t.Fatal("the sealed plaintext differs from the input Parquet")
	}
	// Conversion would have given the same table.
	conv, _, err := convert(t, in, sc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(readParquet(t, conv), readParquet(t, pt)) {
		t.Fatal("conversion gives another table")
	}
	// Inferred schema: the same file, as it is.
	if s, _, err := sealAndOpen(t, in, nil); err != nil || !s.AsIs {
		t.Fatalf("inferred: %+v %v", s, err)
	}
}

// TestSealNonConformingParquetConverts: a Parquet file that differs from
// the schema in one type, one name, the column order or one phone number's
// form is converted (or refused) exactly as before.
func TestSealNonConformingParquetConverts(t *testing.T) {
	sc := mustSchema(t, schemaYAML)
	dir := t.TempDir()
	tests := []struct {
		name, replace, with string
		want                error
	}{
		{"int32 column", "3::BIGINT", "3::INTEGER", nil},
		{"national phone", "'+819012345678'", "'090-1234-5678'", nil},
		{"upper-case email", "'alice@example.com'", "' Alice@Example.com'", nil},
		{"column order", "t(email, phone, name, visits, score, member, since, seen)", "t(phone, email, name, visits, score, member, since, seen)", nil},
		{"column name case", "t(email, phone,", "t(Email, phone,", table.ErrMissingColumn},
		{"invalid phone", "'+442079460958'", "'call me'", table.ErrInvalidValue},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := conformingQuery
			if tc.name == "column order" {
				q = strings.Replace(q, "('alice@example.com', '+819012345678'", "('+819012345678', 'alice@example.com'", 1)
				q = strings.Replace(q, "('bob@example.com', '+442079460958'", "('+442079460958', 'bob@example.com'", 1)
			}
			q = strings.Replace(q, tc.replace, tc.with, 1)
			in := parquetOf(t, dir, string(rune('a'+i))+".parquet", q)
			s, pt, err := sealAndOpen(t, in, sc)
			_, _, cerr := convert(t, in, sc)
			if tc.want != nil {
				if !errors.Is(err, tc.want) || cerr == nil || err.Error() != cerr.Error() {
					t.Fatalf("got %v, want %v as Convert's %v", err, tc.want, cerr)
				}
				return
			}
			if err != nil || s.AsIs {
				t.Fatalf("sealed %+v, %v", s, err)
			}
			if s.Header.Size != dataset.UnknownSize {
				t.Errorf("converted seal records size %d", s.Header.Size)
			}
			conv, _, err := convert(t, in, sc)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(readParquet(t, conv), readParquet(t, pt)) {
				t.Fatal("the sealed table differs from Convert's")
			}
		})
	}
}

// TestSealCorruptParquet: a truncated or damaged Parquet file is refused
// with the error conversion gives, and nothing is written.
func TestSealCorruptParquet(t *testing.T) {
	sc := mustSchema(t, schemaYAML)
	dir := t.TempDir()
	good, err := os.ReadFile(parquetOf(t, dir, "good.parquet", conformingQuery))
	if err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Clone(good)
	for i := 8; i < len(damaged)/3; i++ { // the first column chunk's pages
		damaged[i] ^= 0x5a
	}
	for name, data := range map[string][]byte{"truncated": good[:len(good)/2], "damaged": damaged, "not parquet": []byte("hello")} {
		t.Run(name, func(t *testing.T) {
			in := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".parquet")
			os.WriteFile(in, data, 0o600)
			_, _, err := sealAndOpen(t, in, sc)
			_, _, cerr := convert(t, in, sc)
			if err == nil || cerr == nil || err.Error() != cerr.Error() {
				t.Fatalf("seal: %v; convert: %v", err, cerr)
			}
		})
	}
}

// TestSealCSVStreamed: a CSV is converted and sealed as DuckDB writes the
// Parquet; the sealed file opens to Convert's table.
func TestSealCSVStreamed(t *testing.T) {
	sc := mustSchema(t, schemaYAML)
	dir := t.TempDir()
	in := write(t, dir, "in.csv", csvInput)
	var last Progress
	key := dataset.NewKey()
	out := filepath.Join(dir, "out.kura")
	s, err := SealFile(context.Background(), SealConfig{Schema: sc, Header: dataset.Header{DatasetID: "t"}, Progress: func(p Progress) { last = p }}, out, in, key)
	if err != nil {
		t.Fatal(err)
	}
	if s.AsIs || s.Rows != 3 || !last.Done || last.Rows != 3 || last.Bytes != s.Size {
		t.Fatalf("sealed %+v, progress %+v", s, last)
	}
	pt := filepath.Join(dir, "pt.parquet")
	if _, err := dataset.OpenFile(context.Background(), pt, out, key, dataset.Options{}); err != nil {
		t.Fatal(err)
	}
	if got := normalizeTimes(readParquet(t, pt)); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	// A bad row: the same error as Convert's, naming the row; nothing written.
	bad := write(t, dir, "bad.csv", strings.Replace(csvInput, "090-1234-5678", "call me", 1))
	os.Remove(out)
	_, err = SealFile(context.Background(), SealConfig{Schema: sc, Header: dataset.Header{DatasetID: "t"}}, out, bad, key)
	_, _, cerr := convert(t, bad, sc)
	var ce *table.ColumnError
	if !errors.As(err, &ce) || ce.Column != "phone" || ce.Row != 1 || cerr == nil || err.Error() != cerr.Error() {
		t.Fatalf("bad row: %v (convert: %v)", err, cerr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a refused input left a sealed file")
	}
}

// TestLayeredValueSameAsValue: the layered conversion expression gives the
// same value as the reference expression for awkward phone numbers, e-mail
// addresses and every normalisation chain.
func TestLayeredValueSameAsValue(t *testing.T) {
	s, err := open(context.Background(), Config{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	inputs := []string{"+819012345678", "090-1234-5678", "0081 3 1234 5678", "+44 (20) 7946.0958", "00 1 202 555 0100", "\t+81\u30009012345678 ",
		"call me", "", "+", "0", "00", "+0123456789", "+1234567890123456", "12345", " Alice@Example.COM ", "\u3000ÇA\u00a0", "0９0-1234-5678", "+81-90-1234-5678\n"}
	var rows []string
	for _, v := range inputs {
		rows = append(rows, "("+quote(v)+")")
	}
	rows = append(rows, "(NULL)")
	src := "(SELECT * FROM (VALUES " + strings.Join(rows, ", ") + ") t(x))"
	for _, cc := range []string{"", "81"} {
		for _, norm := range [][]table.Normalization{{table.E164}, {table.Trim, table.E164}, {table.Trim, table.Lower}, {table.Lower, table.E164, table.Trim}, {table.Trim}} {
			sc := &table.Schema{DefaultCountryCode: cc, Columns: []table.Column{{Name: "x", Type: table.String, Normalize: norm}}}
			var l layers
			lv := l.value(sc, sc.Columns[0])
			q := "SELECT count(*) FILTER (WHERE a IS DISTINCT FROM c), count(*) FROM (SELECT " + referenceValue(sc, sc.Columns[0]) + " AS a, " + lv + " AS c FROM " + l.from(src) + ")"
			var diff, n int64
			if err := s.conn.QueryRowContext(context.Background(), q).Scan(&diff, &n); err != nil {
				t.Fatal(err)
			}
			if diff != 0 || n != int64(len(rows)) {
				t.Errorf("cc %q %v: %d of %d values differ", cc, norm, diff, n)
			}
		}
	}
}

// referenceValue is the conversion of column x as it was before either
// shortcut of layers.value: every string through the full e164 rewrite.
func referenceValue(sc *table.Schema, c table.Column) string {
	x := "CAST(x AS VARCHAR)"
	for _, n := range c.Normalize {
		switch n {
		case table.Trim:
			x = `regexp_replace(` + x + `, '^[\s\p{Z}]+|[\s\p{Z}]+$', '', 'g')`
		case table.Lower:
			x = "lower(" + x + ")"
		case table.E164:
			x = e164Rewrite(x, sc.DefaultCountryCode)
		}
	}
	return x
}

// e164Rewrite is the reference E.164 normalisation of phone number x, each
// intermediate value spelt out wherever it is used.
func e164Rewrite(x, cc string) string {
	s := fmt.Sprintf(`regexp_replace(%s, '[\s\p{Z}\-\.\(\)/]', '', 'g')`, x)
	national := "NULL"
	if cc != "" {
		national = fmt.Sprintf("'+%s' || (CASE WHEN starts_with(%s, '0') THEN substr(%s, 2) ELSE %s END)", cc, s, s, s)
	}
	r := fmt.Sprintf("(CASE WHEN starts_with(%s, '+') THEN '+' || substr(%s, 2) WHEN starts_with(%s, '00') THEN '+' || substr(%s, 3) ELSE %s END)", s, s, s, s, national)
	return fmt.Sprintf(`(CASE WHEN regexp_full_match(%s, '%s') THEN %s END)`, r, e164Pattern, r)
}
