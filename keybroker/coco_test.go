package keybroker

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/kura-cc/kura/attestation"
)

// cocoGuest plays an unmodified Confidential Containers guest
// (guest-components' kbs_protocol client and attester) against a broker,
// with kura's sim attester as its TEE: it speaks the KBS wire format and
// binds its runtime data by CoCo's rule, computed here independently of
// package attestation.
type cocoGuest struct {
	t       *testing.T
	f       *fixture
	version string // KBS protocol version: "0.1.1" or "0.4.0"
	s       *Session
	jwkJSON []byte // tee-pubkey as the guest serialises it
	nonce   string // the challenge
}

func newCoCoGuest(t *testing.T, f *fixture, version, tee string) (*cocoGuest, int) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Transport: f.srv.Client().Transport}
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privJWK, err := jwk.Import(priv)
	if err != nil {
		t.Fatal(err)
	}
	g := &cocoGuest{t: t, f: f, version: version, s: &Session{c: &Client{BaseURL: f.srv.URL}, hc: hc, key: priv, jwk: privJWK}}
	g.jwkJSON = guestJWK(t, priv.PublicKey())
	// guest-components announces its hash algorithms; a KBS may select one.
	req := `{"version":"` + version + `","tee":"` + tee + `","extra-params":{"supported-hash-algorithms":["Sha256","Sha384","Sha512"]}}`
	var ch struct {
		Nonce       string          `json:"nonce"`
		ExtraParams json.RawMessage `json:"extra-params"`
	}
	if err := g.s.do(context.Background(), http.MethodPost, "/kbs/v0/auth", []byte(req), &ch); err != nil {
		var re *RemoteError
		if errors.As(err, &re) {
			return nil, re.Status
		}
		t.Fatal(err)
	}
	if string(ch.ExtraParams) != `""` {
		t.Fatalf("challenge extra-params = %s: the guest would pick another hash algorithm", ch.ExtraParams)
	}
	g.nonce = ch.Nonce
	return g, http.StatusOK
}

// guestJWK writes an EC public key as kbs-types' TeePubKey serialises it.
func guestJWK(t *testing.T, pub *ecdh.PublicKey) []byte {
	t.Helper()
	raw := pub.Bytes() // 0x04 ‖ X ‖ Y
	x := base64.RawURLEncoding.EncodeToString(raw[1:33])
	y := base64.RawURLEncoding.EncodeToString(raw[33:])
	return []byte(`{"kty":"EC","crv":"P-256","alg":"ECDH-ES+A256KW","x":"` + x + `","y":"` + y + `"}`)
}

// reportData is what the guest's attester puts in report_data: SHA-384 of
// the runtime data with keys sorted and no whitespace (serde_json, and
// RFC 8785 for these documents), zero-padded to 64 bytes. Protocol 0.4
// adds the (empty) additional evidence.
func (g *cocoGuest) reportData(version, nonce string, jwkJSON []byte) [64]byte {
	var key map[string]any
	if err := json.Unmarshal(jwkJSON, &key); err != nil {
		g.t.Fatal(err)
	}
	rd := map[string]any{"nonce": nonce, "tee-pubkey": key}
	if strings.HasPrefix(version, "0.4.") {
		rd["additional-evidence"] = ""
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rd); err != nil { // Go sorts map keys
		g.t.Fatal(err)
	}
	sum := sha512.Sum384(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	var out [64]byte
	copy(out[:], sum[:])
	return out
}

// evidence is the sim TEE's native evidence binding reportData.
func (g *cocoGuest) evidence(reportData [64]byte) json.RawMessage {
	b, err := simAttester(g.t, 1).Attest(context.Background(), reportData)
	if err != nil {
		g.t.Fatal(err)
	}
	return b.Evidence
}

// attest posts an Attestation payload and returns the status.
func (g *cocoGuest) attest(runtimeNonce string, jwkJSON []byte, evidence json.RawMessage) int {
	g.t.Helper()
	tee := evidence
	if strings.HasPrefix(g.version, "0.4.") {
		tee, _ = json.Marshal(map[string]any{"primary_evidence": evidence, "additional_evidence": ""})
	}
	body, _ := json.Marshal(map[string]any{
		"runtime-data": map[string]any{"nonce": runtimeNonce, "tee-pubkey": json.RawMessage(jwkJSON)},
		"tee-evidence": tee,
	})
	var out struct {
		Token string `json:"token"`
	}
	err := g.s.do(context.Background(), http.MethodPost, "/kbs/v0/attest", body, &out)
	var re *RemoteError
	switch {
	case errors.As(err, &re):
		return re.Status
	case err != nil:
		g.t.Fatal(err)
	case out.Token == "":
		g.t.Fatal("attest answered no token")
	}
	return http.StatusOK
}

// TestCoCoEndToEnd: a CoCo guest, speaking KBS protocol 0.1 or 0.4 over
// real HTTP, attests with native evidence bound by CoCo's rule and fetches
// a secret; the broker refuses evidence bound to another nonce or key, and
// evidence for another TEE than the session's.
func TestCoCoEndToEnd(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{dev: true})
	if _, err := f.admin.Put(ctx, secretPath, secret, map[string]string{"owner": "a"}, ""); err != nil {
		t.Fatal(err)
	}
	for _, version := range []string{"0.1.1", "0.4.0"} {
		t.Run(version, func(t *testing.T) {
			g, _ := newCoCoGuest(t, f, version, "sample")
			if st := g.attest(g.nonce, g.jwkJSON, g.evidence(g.reportData(version, g.nonce, g.jwkJSON))); st != 200 {
				t.Fatalf("attest: %d", st)
			}
			got, err := g.s.Resource(ctx, secretPath)
			if err != nil {
				t.Fatalf("Resource: %v", err)
			}
			if !bytes.Equal(got, secret) {
				t.Fatalf("got %q, want %q", got, secret)
			}
		})
	}

	other := guestJWK(t, mustECDH(t))
	otherNonce := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	tests := []struct {
		name   string
		tee    string
		status int
		run    func(g *cocoGuest) int
	}{
		{"runtime-data nonce is not the challenge", "sample", 401, func(g *cocoGuest) int {
			return g.attest(otherNonce, g.jwkJSON, g.evidence(g.reportData(g.version, otherNonce, g.jwkJSON)))
		}},
		{"evidence binds another nonce", "sample", 401, func(g *cocoGuest) int {
			return g.attest(g.nonce, g.jwkJSON, g.evidence(g.reportData(g.version, otherNonce, g.jwkJSON)))
		}},
		{"evidence binds another tee-pubkey", "sample", 401, func(g *cocoGuest) int {
			return g.attest(g.nonce, g.jwkJSON, g.evidence(g.reportData(g.version, g.nonce, other)))
		}},
		{"tee-pubkey is not the bound one", "sample", 401, func(g *cocoGuest) int {
			return g.attest(g.nonce, other, g.evidence(g.reportData(g.version, g.nonce, g.jwkJSON)))
		}},
		{"evidence bound by the other protocol's rule", "sample", 401, func(g *cocoGuest) int {
			otherVersion := map[string]string{"0.1.1": "0.4.0", "0.4.0": "0.1.1"}[g.version]
			return g.attest(g.nonce, g.jwkJSON, g.evidence(g.reportData(otherVersion, g.nonce, g.jwkJSON)))
		}},
		{"sim evidence in an snp session", "snp", 400, func(g *cocoGuest) int {
			return g.attest(g.nonce, g.jwkJSON, g.evidence(g.reportData(g.version, g.nonce, g.jwkJSON)))
		}},
		{"tdx evidence in a sample session", "sample", 400, func(g *cocoGuest) int {
			return g.attest(g.nonce, g.jwkJSON, json.RawMessage(`{"cc_eventlog":null,"quote":"AAEC","aa_eventlog":null}`))
		}},
		{"Trustee sample evidence binding another nonce", "sample", 401, func(g *cocoGuest) int {
			rd := g.reportData(g.version, otherNonce, g.jwkJSON)
			return g.attest(g.nonce, g.jwkJSON, json.RawMessage(`{"svn":"1","report_data":"`+base64.StdEncoding.EncodeToString(rd[:48])+`"}`))
		}},
	}
	for _, version := range []string{"0.1.1", "0.4.0"} {
		for _, tt := range tests {
			t.Run(version+"/"+tt.name, func(t *testing.T) {
				g, _ := newCoCoGuest(t, f, version, tt.tee)
				if st := tt.run(g); st != tt.status {
					t.Errorf("attest: %d, want %d", st, tt.status)
				}
				if _, err := g.s.Resource(ctx, secretPath); !errors.Is(err, ErrUnauthenticated) {
					t.Errorf("resource after a refused attestation: %v, want 401", err)
				}
			})
		}
	}
}

func TestCoCoProtocolRefusals(t *testing.T) {
	f := newFixture(t, fixtureOpts{dev: true})
	for _, v := range []string{"0.3.0", "0.4", "0.4.x", "0.4.0.1", "00.4.0", "v0.4.0", "1.0.0", ""} {
		if _, st := newCoCoGuest(t, f, v, "sample"); st != 400 {
			t.Errorf("protocol %q: %d, want 400", v, st)
		}
	}
	g, _ := newCoCoGuest(t, f, "0.4.0", "sample")
	ev := g.evidence(g.reportData("0.4.0", g.nonce, g.jwkJSON))
	for name, tee := range map[string]string{
		"additional evidence":      `{"primary_evidence":` + string(ev) + `,"additional_evidence":"{\"nvidia\":{}}"}`,
		"no additional evidence":   `{"primary_evidence":` + string(ev) + `}`,
		"unknown composite member": `{"primary_evidence":` + string(ev) + `,"additional_evidence":"","x":1}`,
	} {
		body := `{"runtime-data":{"nonce":"` + g.nonce + `","tee-pubkey":` + string(g.jwkJSON) + `},"tee-evidence":` + tee + `}`
		err := g.s.do(context.Background(), http.MethodPost, "/kbs/v0/attest", []byte(body), nil)
		if !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v, want 400", name, err)
		}
	}
	// A JWK with a number member cannot be bound exactly under CoCo's rule.
	withNumber := []byte(strings.Replace(string(g.jwkJSON), `"kty":"EC"`, `"kty":"EC","n2":2`, 1))
	body := `{"runtime-data":{"nonce":"` + g.nonce + `","tee-pubkey":` + string(withNumber) + `},"tee-evidence":{"primary_evidence":` + string(ev) + `,"additional_evidence":""}}`
	if err := g.s.do(context.Background(), http.MethodPost, "/kbs/v0/attest", []byte(body), nil); !errors.Is(err, ErrBadRequest) {
		t.Errorf("JWK with a number: %v, want 400", err)
	}
	// The guest can still attest properly in the same session.
	if st := g.attest(g.nonce, g.jwkJSON, ev); st != 200 {
		t.Errorf("attest after refusals: %d", st)
	}
}

func mustECDH(t *testing.T) *ecdh.PublicKey {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey()
}

// FuzzCoCoAttestation: no native evidence is accepted for a nonce other
// than the session's, and nothing panics.
func FuzzCoCoAttestation(f *testing.F) {
	fx := newFixture(f, fixtureOpts{dev: true})
	simDoc, _ := simAttester(f, 1).Attest(context.Background(), [64]byte{})
	f.Add([]byte(`{"runtime-data":{"nonce":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","tee-pubkey":{"kty":"OKP","crv":"X25519","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},"tee-evidence":` + string(simDoc.Evidence) + `}`))
	f.Add([]byte(`{"runtime-data":{"nonce":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","tee-pubkey":{"kty":"OKP","crv":"X25519","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},"tee-evidence":{"primary_evidence":` + string(simDoc.Evidence) + `,"additional_evidence":""}}`))
	f.Add([]byte(`{"tee-pubkey":{"kty":"OKP","crv":"X25519","x":"AA"},"tee-evidence":"{\"svn\":\"1\"}"}`))
	// Trustee sample evidence, and primary evidence as a JSON string.
	f.Add([]byte(`{"runtime-data":{"nonce":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","tee-pubkey":{"kty":"OKP","crv":"X25519","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},"tee-evidence":{"primary_evidence":{"svn":"1","report_data":"AAAA"},"additional_evidence":""}}`))
	quoted, _ := json.Marshal(string(simDoc.Evidence))
	f.Add([]byte(`{"runtime-data":{"nonce":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","tee-pubkey":{"kty":"OKP","crv":"X25519","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},"tee-evidence":{"primary_evidence":` + string(quoted) + `,"additional_evidence":""}}`))
	sess := &session{TEE: attestation.Sim, Nonce: bytes.Repeat([]byte{1}, 32)}
	f.Fuzz(func(t *testing.T, data []byte) {
		var att kbsAttestation
		if decodeStrict(data, &att) != nil {
			return
		}
		b, err := fx.broker.bundleFor(sess, &att)
		if err != nil {
			return
		}
		if !bytes.Equal(b.RuntimeData.Nonce, sess.Nonce) || b.TEE != sess.TEE {
			t.Fatal("accepted a bundle for another nonce or TEE")
		}
		if err := b.Check(); err != nil {
			t.Fatalf("accepted a bundle that does not check: %v", err)
		}
	})
}
