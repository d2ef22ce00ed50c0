package party

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-cc/kura/internal/keyfile"
)

var allKEMs = []KEMChoice{KEMX25519, KEMMLKEM768X25519}

func TestRoundTrip(t *testing.T) {
	for _, kem := range allKEMs {
		t.Run(kem.String(), func(t *testing.T) {
			id, err := Generate("Alice Ltd", kem)
			if err != nil {
				t.Fatal(err)
			}
			data, err := id.Card().Marshal()
			if err != nil {
				t.Fatal(err)
			}
			card, err := ParseCard(data)
			if err != nil {
				t.Fatal(err)
			}
			if card.Fingerprint != id.Card().Fingerprint || card.ReceivingKey.KEMID != kem.ID() {
				t.Fatalf("card changed in a round trip: %+v", card)
			}

			msg := []byte("approve manifest 1234")
			if err := card.Verify(msg, id.Sign(msg)); err != nil {
				t.Fatal(err)
			}
			ct, err := card.SealTo([]byte("secret"), []byte("ctx"))
			if err != nil {
				t.Fatal(err)
			}
			if ct[0] != kems[kem].suite {
				t.Fatalf("suite byte 0x%02x", ct[0])
			}

			dir := filepath.Join(t.TempDir(), "alice")
			if err := id.Save(dir); err != nil {
				t.Fatal(err)
			}
			loaded, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if loaded.Card().Fingerprint != card.Fingerprint {
				t.Fatal("loaded identity has another card")
			}
			pt, err := loaded.Open(ct, []byte("ctx"))
			if err != nil || string(pt) != "secret" {
				t.Fatalf("Open = %q, %v", pt, err)
			}
			if err := card.Verify(msg, loaded.Sign(msg)); err != nil {
				t.Fatal(err)
			}
			if err := id.Save(dir); !errors.Is(err, fs.ErrExist) {
				t.Fatalf("second Save: %v, want fs.ErrExist", err)
			}
		})
	}
}

func TestOpenRefusals(t *testing.T) {
	for _, kem := range allKEMs {
		t.Run(kem.String(), func(t *testing.T) {
			alice, _ := Generate("alice", kem)
			bob, _ := Generate("bob", kem)
			other, _ := Generate("carol", 1-kem)
			ct, err := alice.Card().SealTo([]byte("secret"), []byte("ctx"))
			if err != nil {
				t.Fatal(err)
			}
			flipped := func(i int) []byte { c := bytes.Clone(ct); c[i] ^= 1; return c }
			for _, tc := range []struct {
				name string
				id   *Identity
				ct   []byte
				info string
				want error
			}{
				{"wrong recipient", bob, ct, "ctx", ErrDecrypt},
				{"other KEM", other, ct, "ctx", ErrDecrypt},
				{"wrong info", alice, ct, "other", ErrDecrypt},
				{"flipped enc", alice, flipped(1), "ctx", ErrDecrypt},
				{"flipped body", alice, flipped(len(ct) - 1), "ctx", ErrDecrypt},
				{"truncated", alice, ct[:len(ct)-1], "ctx", ErrDecrypt},
				{"very truncated", alice, ct[:10], "ctx", ErrMalformedCiphertext},
				{"empty", alice, nil, "ctx", ErrMalformedCiphertext},
				{"unknown suite", alice, append([]byte{0x7f}, ct[1:]...), "ctx", ErrMalformedCiphertext},
			} {
				if _, err := tc.id.Open(tc.ct, []byte(tc.info)); !errors.Is(err, tc.want) {
					t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
				}
			}
		})
	}
}

func TestBadSignature(t *testing.T) {
	alice, _ := Generate("alice", KEMX25519)
	bob, _ := Generate("bob", KEMX25519)
	msg := []byte("m")
	sig := alice.Sign(msg)
	bad := bytes.Clone(sig)
	bad[10] ^= 1
	for name, err := range map[string]error{
		"tampered sig": alice.Card().Verify(msg, bad),
		"other msg":    alice.Card().Verify([]byte("n"), sig),
		"other signer": bob.Card().Verify(msg, sig),
		"short sig":    alice.Card().Verify(msg, sig[:10]),
	} {
		if !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}
}

func TestParseCardRefusals(t *testing.T) {
	id, _ := Generate("alice", KEMX25519)
	good, _ := id.Card().Marshal()
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	rk := func(m map[string]any) map[string]any { return m["receiving_key"].(map[string]any) }
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"name changed", edit(func(m map[string]any) { m["name"] = "mallory" }), ErrFingerprintMismatch},
		{"signing key swapped", edit(func(m map[string]any) {
			m["signing_key"] = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
		}), ErrFingerprintMismatch},
		{"receiving key swapped", edit(func(m map[string]any) {
			other, _ := Generate("x", KEMX25519)
			rk(m)["public_key"] = other.Card().ReceivingKey.PublicKey
		}), ErrFingerprintMismatch},
		{"unknown field", edit(func(m map[string]any) { m["roles"] = []string{"analyst"} }), ErrMalformedCard},
		{"version 2", edit(func(m map[string]any) { m["version"] = 2 }), ErrMalformedCard},
		{"short signing key", edit(func(m map[string]any) { m["signing_key"] = "AAAA" }), ErrMalformedCard},
		{"short receiving key", edit(func(m map[string]any) { rk(m)["public_key"] = "AAAA" }), ErrMalformedCard},
		{"unknown kem", edit(func(m map[string]any) { rk(m)["kem_id"] = 16 }), ErrUnsupportedKEM},
		{"kem name mismatch", edit(func(m map[string]any) { rk(m)["kem"] = "mlkem768-x25519" }), ErrMalformedCard},
		{"empty name", edit(func(m map[string]any) { m["name"] = "" }), ErrInvalidName},
		{"no created_at", edit(func(m map[string]any) { delete(m, "created_at") }), ErrMalformedCard},
		{"bad fingerprint", edit(func(m map[string]any) { m["fingerprint"] = "abc" }), ErrMalformedCard},
		{"trailing data", append(bytes.Clone(good), "{}"...), ErrMalformedCard},
		{"too large", append(bytes.Clone(good), bytes.Repeat([]byte(" "), MaxCardSize)...), ErrMalformedCard},
		{"not json", []byte("hello"), ErrMalformedCard},
	} {
		if _, err := ParseCard(tc.data); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestGenerateRefusesBadName(t *testing.T) {
	for _, name := range []string{"", " alice", "al\nice", strings.Repeat("a", MaxNameLen+1), "\xff"} {
		if _, err := Generate(name, KEMX25519); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Generate(%q): %v, want ErrInvalidName", name, err)
		}
	}
	if _, err := Generate("a", KEMChoice(9)); !errors.Is(err, ErrUnsupportedKEM) {
		t.Errorf("Generate with KEMChoice(9): %v", err)
	}
}

func TestLoadRefusesOpenPermissions(t *testing.T) {
	id, _ := Generate("alice", KEMX25519)
	dir := t.TempDir()
	if err := id.Save(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, IdentityFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("saved with mode %v", st.Mode().Perm())
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644, 0o666} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); !errors.Is(err, ErrInsecurePermissions) || !errors.Is(err, keyfile.ErrInsecure) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %04o: %v, want ErrInsecurePermissions naming chmod 600", mode, err)
		}
	}
}

func TestRedaction(t *testing.T) {
	for _, kem := range allKEMs {
		id, _ := Generate("alice", kem)
		rb, _ := id.recv.k.Bytes()
		secrets := [][]byte{id.sign.k.Seed(), rb}
		var out bytes.Buffer
		for _, v := range []any{id, *id, id.sign, id.recv} {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
				fmt.Fprintf(&out, verb+"\n", v)
			}
			j, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			out.Write(j)
		}
		log := slog.New(slog.NewJSONHandler(&out, nil))
		log.Info("identity", "id", id, "sign", id.sign, "recv", id.recv)
		slog.New(slog.NewTextHandler(&out, nil)).Info("identity", "id", id)
		s := out.String()
		if !strings.Contains(s, redacted) {
			t.Fatalf("no REDACTED in output:\n%s", s)
		}
		for _, k := range secrets {
			for _, enc := range []string{hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k), fmt.Sprint(k), string(k)} {
				if strings.Contains(s, enc) {
					t.Fatalf("%s: key material in output:\n%s", kem, s)
				}
			}
		}
	}
}
