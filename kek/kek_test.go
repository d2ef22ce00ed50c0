package kek_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-cc/kura/internal/keyfile"
	"github.com/kura-cc/kura/kek"
)

// testParams are cheap Argon2id parameters for tests (the minimum accepted).
var testParams = kek.Argon2Params{MemoryKiB: 8 << 10, Time: 1, Threads: 1}

func newFileKEK(t testing.TB) *kek.File {
	t.Helper()
	k, err := kek.GenerateFile(filepath.Join(t.TempDir(), "kek"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newPassphraseKEK(t *testing.T, pass string) *kek.Passphrase {
	t.Helper()
	k, err := kek.CreatePassphraseFile(filepath.Join(t.TempDir(), "kek.json"), []byte(pass), testParams)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRoundTripAndNegatives(t *testing.T) {
	ctx := context.Background()
	for name, mk := range map[string]func(t *testing.T) kek.KEK{
		"file":       func(t *testing.T) kek.KEK { return newFileKEK(t) },
		"passphrase": func(t *testing.T) kek.KEK { return newPassphraseKEK(t, "correct horse") },
	} {
		t.Run(name, func(t *testing.T) {
			k, other := mk(t), mk(t)
			if k.ID() == other.ID() {
				t.Fatalf("two KEKs share id %s", k.ID())
			}
			if !strings.HasPrefix(k.ID(), name+":") {
				t.Errorf("ID %q lacks prefix %q", k.ID(), name+":")
			}
			dek := bytes.Repeat([]byte{7}, 32)
			aad := []byte("repo/type/tag")
			w, err := k.Wrap(ctx, dek, aad)
			if err != nil {
				t.Fatal(err)
			}
			w2, _ := k.Wrap(ctx, dek, aad)
			if bytes.Equal(w, w2) {
				t.Error("two wraps of the same key are equal: nonce not random")
			}
			got, err := k.Unwrap(ctx, w, aad)
			if err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("Unwrap = %x, %v; want %x", got, err, dek)
			}
			tampered := func(i int) []byte {
				b := bytes.Clone(w)
				b[i] ^= 1
				return b
			}
			for _, c := range []struct {
				name    string
				k       kek.KEK
				wrapped []byte
				aad     []byte
			}{
				{"wrong aad", k, w, []byte("repo/type/other")},
				{"nil aad", k, w, nil},
				{"wrong KEK", other, w, aad},
				{"tampered version", k, tampered(0), aad},
				{"tampered nonce", k, tampered(1), aad},
				{"tampered ciphertext", k, tampered(20), aad},
				{"tampered tag", k, tampered(len(w) - 1), aad},
				{"truncated", k, w[:len(w)-1], aad},
				{"too short", k, w[:10], aad},
				{"empty", k, nil, aad},
			} {
				if got, err := c.k.Unwrap(ctx, c.wrapped, c.aad); !errors.Is(err, kek.ErrUnwrap) || got != nil {
					t.Errorf("%s: Unwrap = %x, %v; want ErrUnwrap", c.name, got, err)
				}
			}
			if _, err := k.Wrap(ctx, nil, aad); !errors.Is(err, kek.ErrInvalidKey) {
				t.Errorf("Wrap(empty dek) = %v; want ErrInvalidKey", err)
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := k.Wrap(cctx, dek, aad); !errors.Is(err, context.Canceled) {
				t.Errorf("Wrap(cancelled) = %v", err)
			}
		})
	}
}

func TestFilePermissionsAndFormat(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kek")
	k, err := kek.GenerateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("generated file mode %04o; want 0600", fi.Mode().Perm())
	}
	if _, err := kek.GenerateFile(path); !errors.Is(err, os.ErrExist) {
		t.Errorf("GenerateFile over existing file = %v; want ErrExist", err)
	}
	again, err := kek.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID() != k.ID() {
		t.Errorf("reopened ID %s != %s", again.ID(), k.ID())
	}
	w, err := k.Wrap(context.Background(), []byte("0123456789abcdef0123456789abcdef"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Unwrap(context.Background(), w, nil); err != nil {
		t.Errorf("reopened KEK cannot unwrap: %v", err)
	}

	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660, 0o602} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := kek.OpenFile(path); !errors.Is(err, kek.ErrInsecureFile) || !errors.Is(err, keyfile.ErrInsecure) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %04o: OpenFile = %v; want ErrInsecureFile naming chmod 600", mode, err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := kek.OpenFile(path); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
	if _, err := kek.OpenFile(dir); !errors.Is(err, kek.ErrInsecureFile) {
		t.Errorf("OpenFile(dir) = %v; want ErrInsecureFile", err)
	}

	key := bytes.Repeat([]byte{0x42}, 32)
	for name, c := range map[string]struct {
		content string
		err     error
	}{
		"base64 with newline": {base64.StdEncoding.EncodeToString(key) + "\n", nil},
		"base64 with spaces":  {"  " + base64.StdEncoding.EncodeToString(key) + " \r\n", nil},
		"short key":           {base64.StdEncoding.EncodeToString(key[:31]), kek.ErrInvalidKey},
		"long key":            {base64.StdEncoding.EncodeToString(append(key, 1)), kek.ErrInvalidKey},
		"hex":                 {fmt.Sprintf("%x", key), kek.ErrInvalidKey},
		"raw":                 {string(key), kek.ErrInvalidKey},
		"empty":               {"", kek.ErrInvalidKey},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := kek.OpenFile(p)
		if (c.err == nil && err != nil) || (c.err != nil && !errors.Is(err, c.err)) {
			t.Errorf("%s: OpenFile = %v; want %v", name, err, c.err)
		}
	}
	if _, err := kek.OpenFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

func TestFileIDStable(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{0x42}, 32)
	p := filepath.Join(dir, "k")
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := kek.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// The ID is a domain-separated hash: pinned so that it never changes
	// (stored records refer to it) and never contains the key.
	const want = "file:sha256:"
	if !strings.HasPrefix(k.ID(), want) || len(k.ID()) != len(want)+16 {
		t.Fatalf("ID = %q", k.ID())
	}
	if strings.Contains(k.ID(), "4242") {
		t.Errorf("ID %q looks like key bytes", k.ID())
	}
	t.Logf("ID of 0x42*32: %s", k.ID())
}

func TestPassphrase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "kek.json")
	pass := []byte("a long passphrase, from a file")
	k, err := kek.CreatePassphraseFile(path, pass, testParams)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("parameters file mode %04o; want 0600", fi.Mode().Perm())
	}
	if _, err := kek.CreatePassphraseFile(path, pass, testParams); !errors.Is(err, os.ErrExist) {
		t.Errorf("Create over existing = %v; want ErrExist", err)
	}
	w, err := k.Wrap(ctx, []byte("dek-dek-dek-dek-dek-dek-dek-dek!"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}

	// Same passphrase and salt: same key, same ID.
	again, err := kek.OpenPassphraseFile(path, pass)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID() != k.ID() {
		t.Errorf("ID changed on reopen: %s != %s", again.ID(), k.ID())
	}
	if got, err := again.Unwrap(ctx, w, []byte("aad")); err != nil || string(got) != "dek-dek-dek-dek-dek-dek-dek-dek!" {
		t.Errorf("reopened Unwrap = %q, %v", got, err)
	}

	// Same passphrase, new salt: a different KEK.
	other, err := kek.CreatePassphraseFile(filepath.Join(dir, "other.json"), pass, testParams)
	if err != nil {
		t.Fatal(err)
	}
	if other.ID() == k.ID() {
		t.Error("new salt gave the same ID")
	}
	if _, err := other.Unwrap(ctx, w, []byte("aad")); !errors.Is(err, kek.ErrUnwrap) {
		t.Errorf("other salt Unwrap = %v; want ErrUnwrap", err)
	}

	if _, err := kek.OpenPassphraseFile(path, []byte("wrong")); !errors.Is(err, kek.ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: %v; want ErrWrongPassphrase", err)
	}
	if _, err := kek.OpenPassphraseFile(path, nil); !errors.Is(err, kek.ErrInvalidKey) {
		t.Errorf("empty passphrase: %v; want ErrInvalidKey", err)
	}
	if _, err := kek.CreatePassphraseFile(filepath.Join(dir, "weak.json"), pass, kek.Argon2Params{MemoryKiB: 1024, Time: 1, Threads: 1}); !errors.Is(err, kek.ErrInvalidKey) {
		t.Errorf("weak params: %v; want ErrInvalidKey", err)
	}

	// The file records its parameters: a file with other parameters opens.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m["kdf"] != "argon2id" || m["memory_kib"] != float64(8192) || m["time"] != float64(1) || m["threads"] != float64(1) {
		t.Errorf("parameters file = %s", data)
	}
	for name, edit := range map[string]func(m map[string]any){
		"bad kdf":      func(m map[string]any) { m["kdf"] = "scrypt" },
		"short salt":   func(m map[string]any) { m["salt"] = "AAAA" },
		"huge memory":  func(m map[string]any) { m["memory_kib"] = 1 << 30 },
		"zero threads": func(m map[string]any) { m["threads"] = 0 },
		"bad version":  func(m map[string]any) { m["version"] = 2 },
	} {
		mm := map[string]any{}
		for k, v := range m {
			mm[k] = v
		}
		edit(mm)
		b, _ := json.Marshal(mm)
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		os.WriteFile(p, b, 0o600)
		if _, err := kek.OpenPassphraseFile(p, pass); !errors.Is(err, kek.ErrInvalidKey) {
			t.Errorf("%s: %v; want ErrInvalidKey", name, err)
		}
	}
	// Changed memory parameter: the derived key differs, so the check fails.
	mm := map[string]any{}
	for k, v := range m {
		mm[k] = v
	}
	mm["memory_kib"] = 16 << 10
	b, _ := json.Marshal(mm)
	p := filepath.Join(dir, "changed.json")
	os.WriteFile(p, b, 0o600)
	if _, err := kek.OpenPassphraseFile(p, pass); !errors.Is(err, kek.ErrWrongPassphrase) {
		t.Errorf("changed params: %v; want ErrWrongPassphrase", err)
	}
	// Its check value lets a reader test guesses offline: 0600 only.
	for _, mode := range []os.FileMode{0o644, 0o666, 0o640} {
		os.Chmod(path, mode)
		if _, err := kek.OpenPassphraseFile(path, pass); !errors.Is(err, kek.ErrInsecureFile) || !errors.Is(err, keyfile.ErrInsecure) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("parameters file mode %04o: %v; want ErrInsecureFile naming chmod 600", mode, err)
		}
	}
}

func TestDefaultArgon2Params(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB Argon2id")
	}
	p := kek.DefaultArgon2Params()
	if p.MemoryKiB != 64<<10 || p.Time != 3 || p.Threads != 2 {
		t.Fatalf("defaults = %+v", p)
	}
	if _, err := kek.CreatePassphraseFile(filepath.Join(t.TempDir(), "p.json"), []byte("x"), p); err != nil {
		t.Fatal(err)
	}
}

func TestKeyringRotation(t *testing.T) {
	ctx := context.Background()
	old, cur := newFileKEK(t), newPassphraseKEK(t, "new")
	ring, err := kek.NewKeyring(old)
	if err != nil {
		t.Fatal(err)
	}
	dek := []byte("0123456789abcdef0123456789abcdef")
	aad := []byte("repo/key/1")
	w, id, err := ring.Wrap(ctx, dek, aad)
	if err != nil || id != old.ID() {
		t.Fatalf("Wrap id = %s, %v", id, err)
	}
	if err := ring.Add(old); !errors.Is(err, kek.ErrDuplicateKEK) {
		t.Errorf("Add duplicate = %v", err)
	}
	if err := ring.SetCurrent(cur.ID()); !errors.Is(err, kek.ErrUnknownKEK) {
		t.Errorf("SetCurrent unknown = %v", err)
	}
	if err := ring.Add(cur); err != nil {
		t.Fatal(err)
	}
	if err := ring.SetCurrent(cur.ID()); err != nil {
		t.Fatal(err)
	}
	if ring.CurrentID() != cur.ID() {
		t.Fatalf("CurrentID = %s", ring.CurrentID())
	}
	nw, nid, err := ring.Rewrap(ctx, id, w, aad)
	if err != nil || nid != cur.ID() {
		t.Fatalf("Rewrap = %s, %v", nid, err)
	}
	if same, sid, err := ring.Rewrap(ctx, nid, nw, aad); err != nil || sid != nid || !bytes.Equal(same, nw) {
		t.Errorf("Rewrap of current = %s, %v; want unchanged", sid, err)
	}
	if err := ring.Remove(cur.ID()); !errors.Is(err, kek.ErrCurrentKEK) {
		t.Errorf("Remove current = %v", err)
	}
	if err := ring.Remove(old.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Unwrap(ctx, old.ID(), w, aad); !errors.Is(err, kek.ErrUnknownKEK) {
		t.Errorf("Unwrap with retired KEK = %v; want ErrUnknownKEK", err)
	}
	if err := ring.Remove(old.ID()); !errors.Is(err, kek.ErrUnknownKEK) {
		t.Errorf("Remove twice = %v", err)
	}
	got, err := ring.Unwrap(ctx, nid, nw, aad)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("Unwrap rewrapped = %x, %v", got, err)
	}
	// Dispatch is by recorded id: the wrong id fails with ErrUnwrap.
	ring.Add(old)
	if _, err := ring.Unwrap(ctx, old.ID(), nw, aad); !errors.Is(err, kek.ErrUnwrap) {
		t.Errorf("Unwrap with wrong recorded id = %v; want ErrUnwrap", err)
	}
	if got := ring.IDs(); len(got) != 2 {
		t.Errorf("IDs = %v", got)
	}
	if s := ring.String(); !strings.Contains(s, cur.ID()+" (current)") {
		t.Errorf("String = %q", s)
	}
}

// TestRedaction prints KEKs every way fmt, json and slog can and looks for
// the key.
func TestRedaction(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{0xA5}, 32)
	p := filepath.Join(dir, "k")
	enc := base64.StdEncoding.EncodeToString(key)
	os.WriteFile(p, []byte(enc), 0o600)
	fk, err := kek.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	pk := newPassphraseKEK(t, "hunter2")
	ring, _ := kek.NewKeyring(fk, pk)

	var out bytes.Buffer
	for _, v := range []any{fk, *fk, pk, *pk, ring} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%b", "%c", "%U", "%e", "%T"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(b)
		out.WriteByte('\n')
		b, _ = json.Marshal(map[string]any{"k": v})
		out.Write(b)
	}
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		slog.New(h).Info("keys", "file", fk, "pass", pk, "ring", ring, slog.Any("fv", *fk))
	}
	s := out.String()
	if !strings.Contains(s, "REDACTED") {
		t.Fatal("no REDACTED in output")
	}
	lower := strings.ToLower(s)
	for _, leak := range []string{
		enc, fmt.Sprintf("%x", key), "a5a5a5a5", "165 165 165", "hunter2",
		fmt.Sprint(key), string(key[:4]),
	} {
		if strings.Contains(lower, strings.ToLower(leak)) {
			t.Errorf("output leaks %q:\n%s", leak, s)
		}
	}
	for _, want := range []string{fk.ID(), pk.ID()} {
		if !strings.Contains(s, want) {
			t.Errorf("keyring output lacks id %s", want)
		}
	}
}
