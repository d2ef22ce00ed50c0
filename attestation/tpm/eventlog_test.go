package tpm

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation"
)

// ubuntuPCRs are the PCR values of testdata/ubuntu-2104-no-secure-boot.bin
// (see testdata/README.md), in the form azure.TPMQuote.CheckPCRs returns.
func ubuntuPCRs() map[string]any {
	return map[string]any{
		"sha1": map[string]any{
			"0": "0f2d3a2a1adaa479aeeca8f5df76aadc41b862ea", "1": "f5310dfcfcec5571cbf730064d526906c9cea2f0",
			"2": "b2a83b0ebf2f8374299a5b2bdfc31ea955ad7236", "3": "b2a83b0ebf2f8374299a5b2bdfc31ea955ad7236",
			"4": "e53d909941dcbc699b273fc4c0d817a41c6ab975", "5": "9e2af4bac1432830594b1ae90c68c52a20a9700e",
			"6": "b2a83b0ebf2f8374299a5b2bdfc31ea955ad7236", "7": "ede7204673f41ac2592b0d3b4cd429b43f39dc61",
			"8": "bda59abe1c7d18e0b85edfcb4381f10d4dcc88f7", "9": "39fd49224476f4d7eea26a53e264c9c33e47649c",
			"14": "cd3734d2bdfcfba9e443ac02c03c812ffcceb255",
		},
		"sha256": map[string]any{
			"0": "24af52a4f429b71a3184a6d64cddad17e54ea030e2aa6576bf3a5a3d8bd3328f", "1": "45ed8540f34db53220ef197e5fb8a3835b2095454349e445f397f13d91c509a5",
			"2": "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969", "3": "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
			"4": "ebc7ae25d0347868250995c9a8fff16bf79e048453262d0ef2756e213c76181c", "5": "47715f9f2c10769da6ee23be5633fd88e247caf162f4eeb0b6f8482ccfeadfb5",
			"6": "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969", "7": "0d8847bc5eca06452df10e2f214363845c7ac11d47525a5474e225e72ce25dfe",
			"8": "b9a324947de94ec2fd4b04483ecfcb37dfdd520a7c0ecf73c77bf2595549c84f", "9": "adb87be3efd96cc3a2f66b8aa7564f9727563ef494a95d571a3f38ff4afb25dd",
			"14": "8351c65483c5419079e8c96758dd2130bee075d71fea226f68ec4eb5bfc71983",
		},
	}
}

func readVector(t testing.TB) []byte {
	data, err := os.ReadFile("testdata/ubuntu-2104-no-secure-boot.bin")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestReplayRealLog(t *testing.T) {
	data := readVector(t)
	log, err := parseEventLog(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(log.Marshal(), data) {
		t.Fatal("marshal does not give the log back")
	}
	rr, err := replay(ubuntuPCRs(), log, nil)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if len(rr.replayed) != 22 || len(rr.events) == 0 {
		t.Errorf("replayed %v with %d events, want 22 PCRs", rr.replayed, len(rr.events))
	}
	// Any other value of a PCR the log covers fails, naming it.
	pcrs := ubuntuPCRs()
	pcrs["sha256"].(map[string]any)["4"] = strings.Repeat("00", 32)
	if _, err := replay(pcrs, log, nil); !errors.Is(err, attestation.ErrBinding) || !strings.Contains(err.Error(), "PCR sha256:4 ") {
		t.Errorf("replay with a wrong PCR 4: %v, want ErrBinding naming sha256:4", err)
	}
	// A quoted PCR the log has no events for must hold its reset value.
	pcrs = ubuntuPCRs()
	pcrs["sha1"].(map[string]any)["12"] = strings.Repeat("11", 20)
	if _, err := replay(pcrs, log, nil); !errors.Is(err, attestation.ErrBinding) || !strings.Contains(err.Error(), "PCR sha1:12 ") || !strings.Contains(err.Error(), "the 0 events") {
		t.Errorf("replay with PCR 12 extended outside the log: %v", err)
	}
}

func TestParseEventLogRefuses(t *testing.T) {
	good := readVector(t)
	hdr := specIDHeader(0x000B)
	ev := func(pcr uint32, ndigests uint32, size uint32) []byte {
		b := binary.LittleEndian.AppendUint32(nil, pcr)
		b = binary.LittleEndian.AppendUint32(b, 4)
		b = binary.LittleEndian.AppendUint32(b, ndigests)
		b = binary.LittleEndian.AppendUint16(b, 0x000B)
		b = append(b, make([]byte, 32)...)
		return binary.LittleEndian.AppendUint32(b, size)
	}
	for _, tc := range []struct {
		name, msg string
		data      []byte
	}{
		{"empty", "truncated", nil},
		{"sha1 log", "not a crypto-agile", append(binary.LittleEndian.AppendUint32(nil, 0), make([]byte, 28)...)},
		{"truncated", "truncated", good[:len(good)-1]},
		{"trailing byte", "truncated", append(bytes.Clone(good), 0)},
		{"pcr 24", "PCR 24", append(bytes.Clone(hdr), ev(24, 1, 0)...)},
		{"digest count", "2 digests", append(bytes.Clone(hdr), ev(0, 2, 0)...)},
		{"huge event", "bytes of data", append(bytes.Clone(hdr), ev(0, 1, 1<<30)...)},
		{"too large", "limit", make([]byte, attestation.MaxEventLogSize+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseEventLog(tc.data)
			if !errors.Is(err, attestation.ErrMalformed) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want ErrMalformed naming %q", err, tc.msg)
			}
		})
	}
}

func TestIMAList(t *testing.T) {
	fh := sha256.Sum256([]byte("worker"))
	ng := imaNGEntry(crypto.SHA256, "sha256", fh[:], "/usr/local/bin/kura worker")
	// The legacy "ima" template: SHA-1 of the file hash and a 256-byte name.
	f1 := sha1.Sum([]byte("init"))
	name := make([]byte, imaNameLenMax+1)
	copy(name, "/sbin/init")
	t1 := sha1.Sum(append(f1[:], name...))
	legacy := "10 " + hex.EncodeToString(t1[:]) + " ima " + hex.EncodeToString(f1[:]) + " /sbin/init\n"
	// ima-sig with a signature.
	sig := []byte{0x03, 0x02, 0xaa}
	var tmpl []byte
	for _, f := range [][]byte{append([]byte("sha256:\x00"), fh[:]...), []byte("/bin/sh\x00"), sig} {
		tmpl = binary.LittleEndian.AppendUint32(tmpl, uint32(len(f)))
		tmpl = append(tmpl, f...)
	}
	ts := sha256.Sum256(tmpl)
	signed := "10 " + hex.EncodeToString(ts[:]) + " ima-sig sha256:" + hex.EncodeToString(fh[:]) + " /bin/sh " + hex.EncodeToString(sig) + "\n"
	violation := "10 " + strings.Repeat("0", 64) + " ima-ng sha256:" + strings.Repeat("0", 64) + " /tmp/x\n"

	list := (&imaList{entries: []imaEntry{ng}}).marshal()
	for _, data := range []string{string(list) + violation, legacy, signed} {
		l, err := parseIMAList([]byte(data))
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		if got := string(l.marshal()); got != data {
			t.Errorf("marshal = %q, want %q", got, data)
		}
	}
	l, _ := parseIMAList([]byte(signed))
	if e := l.entries[0]; e.fileName != "/bin/sh" || !bytes.Equal(e.sig, sig) {
		t.Errorf("ima-sig entry = %+v", e)
	}

	for _, tc := range []struct{ name, data, msg string }{
		{"no newline", strings.TrimSuffix(string(list), "\n"), "newline"},
		{"renamed", strings.Replace(string(list), "kura worker", "kura-worker", 1), "template hash"},
		{"other digest", strings.Replace(string(list), hex.EncodeToString(fh[:4]), "00000000", 1), "template hash"},
		{"unknown template", strings.Replace(string(list), "ima-ng", "ima-buf", 1), "only ima, ima-ng and ima-sig"},
		{"bad pcr", "x" + string(list), "PCR"},
		{"mixed banks", string(list) + legacy, "earlier lines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseIMAList([]byte(tc.data))
			if !errors.Is(err, attestation.ErrMalformed) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want ErrMalformed naming %q", err, tc.msg)
			}
		})
	}
}
