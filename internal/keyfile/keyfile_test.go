package keyfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-cc/kura/internal/fault"
)

func TestModes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode            os.FileMode
		secret, trusted bool
	}{
		{0o600, true, true},
		{0o400, true, true},
		{0o640, false, true},
		{0o644, false, true},
		{0o660, false, false},
		{0o666, false, false},
		{0o602, false, false},
	} {
		p := filepath.Join(dir, "k")
		os.Remove(p)
		if err := os.WriteFile(p, []byte("key"), tc.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, tc.mode)
		for _, c := range []struct {
			name string
			read func(string) ([]byte, error)
			ok   bool
			fix  string
		}{{"secret", ReadSecret, tc.secret, "chmod 600 " + p}, {"trusted", ReadTrusted, tc.trusted, "chmod 644 " + p}} {
			data, err := c.read(p)
			switch {
			case c.ok && (err != nil || string(data) != "key"):
				t.Errorf("%s %04o: %q, %v", c.name, tc.mode, data, err)
			case !c.ok && (!errors.Is(err, ErrInsecure) || fault.KindOf(err) != fault.WrongKey || !strings.Contains(err.Error(), c.fix)):
				t.Errorf("%s %04o: %v, want ErrInsecure (wrong key) naming %q", c.name, tc.mode, err, c.fix)
			}
		}
	}
	if _, err := ReadSecret(dir); !errors.Is(err, ErrInsecure) {
		t.Errorf("a directory: %v", err)
	}
	if _, err := ReadSecret(filepath.Join(dir, "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}
