package token

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/veraison/ear"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func newIssuer(t testing.TB, curve elliptic.Curve) (*Issuer, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := NewIssuer(IssuerConfig{Key: key, Build: "kura test", Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	return iss, key
}

func sample() *Claims {
	return &Claims{
		Nonce: bytes.Repeat([]byte{7}, 32),
		Submods: map[string]Submod{"cpu0": {
			Status:      ear.TrustTierAffirming,
			TrustVector: ear.TrustVector{InstanceIdentity: 2, Hardware: 2, Executables: 2, Configuration: 2},
			PolicyID:    "kura/appraisal@sha256:00",
			Evidence:    map[string]any{"tee": "snp", "measurement": "ab"},
			Policy:      map[string]any{"checks": []any{}},
		}},
		RuntimePublicKey: []byte(`{"kty":"EC"}`),
		RuntimeContext:   []byte("run-1"),
	}
}

func verifier(t testing.TB, jwks []byte, now time.Time) *Verifier {
	t.Helper()
	set, err := ParseJWKS(jwks)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{Keys: set, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRoundTrip(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		iss, _ := newIssuer(t, curve)
		tok, err := iss.Issue(sample())
		if err != nil {
			t.Fatal(err)
		}
		got, err := verifier(t, iss.JWKS(), t0.Add(time.Minute)).Verify(context.Background(), tok)
		if err != nil {
			t.Fatalf("%s: Verify: %v", curve.Params().Name, err)
		}
		cpu := got.Submods["cpu0"]
		if cpu.Status != ear.TrustTierAffirming || cpu.TrustVector.Hardware != 2 || cpu.Evidence["tee"] != "snp" {
			t.Errorf("cpu0 = %+v", cpu)
		}
		if !bytes.Equal(got.Nonce, sample().Nonce) || string(got.RuntimePublicKey) != `{"kty":"EC"}` || string(got.RuntimeContext) != "run-1" {
			t.Errorf("nonce/runtime data lost: %+v", got)
		}
		if !got.Expiry.Equal(t0.Add(DefaultTTL)) {
			t.Errorf("expiry = %v", got.Expiry)
		}
	}
}

func TestPinnedKey(t *testing.T) {
	iss, key := newIssuer(t, elliptic.P256())
	tok, err := iss.Issue(sample())
	if err != nil {
		t.Fatal(err)
	}
	set, err := PublicKeySet(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{Keys: set, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("pinned key: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	iss, _ := newIssuer(t, elliptic.P256())
	other, _ := newIssuer(t, elliptic.P256())
	tok, err := iss.Issue(sample())
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(string(tok), ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(bytes.Replace(payload, []byte(`"ear.status":"affirming"`), []byte(`"ear.status":"affirming" `), 1)) + "." + parts[2]
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + "."

	tests := []struct {
		name string
		tok  string
		jwks []byte
		now  time.Time
		want error
	}{
		{"expired", string(tok), iss.JWKS(), t0.Add(DefaultTTL + time.Hour), ErrExpired},
		{"issued in the future", string(tok), iss.JWKS(), t0.Add(-time.Hour), ErrExpired},
		{"untrusted verifier", string(tok), other.JWKS(), t0, ErrInvalid},
		{"tampered payload", forged, iss.JWKS(), t0, ErrInvalid},
		{"tampered signature", badSig, iss.JWKS(), t0, ErrInvalid},
		{"alg none", unsigned, iss.JWKS(), t0, ErrInvalid},
		{"truncated", string(tok[:len(tok)/2]), iss.JWKS(), t0, ErrInvalid},
		{"garbage", "not a token", iss.JWKS(), t0, ErrInvalid},
		{"oversized", strings.Repeat("a", maxTokenSize+1), iss.JWKS(), t0, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := verifier(t, tt.jwks, tt.now).Verify(context.Background(), []byte(tt.tok)); !errors.Is(err, tt.want) {
				t.Errorf("Verify error = %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	iss, _ := newIssuer(f, elliptic.P256())
	tok, err := iss.Issue(sample())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add([]byte("a.b.c"))
	v := verifier(f, iss.JWKS(), t0)
	f.Fuzz(func(t *testing.T, data []byte) {
		if c, err := v.Verify(context.Background(), data); err == nil && c.Submods["cpu0"].PolicyID == "" {
			t.Fatal("accepted a token without its appraisal")
		}
	})
}

func BenchmarkIssue(b *testing.B) {
	iss, _ := newIssuer(b, elliptic.P256())
	c := sample()
	for b.Loop() {
		if _, err := iss.Issue(c); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRefresh: a verifier that rotates its key is followed through Refresh,
// at most once per interval.
func TestRefresh(t *testing.T) {
	old, _ := newIssuer(t, elliptic.P256())
	rotated, _ := newIssuer(t, elliptic.P256())
	oldKeys, _ := ParseJWKS(old.JWKS())
	calls := 0
	now := t0
	v, err := NewVerifier(VerifierConfig{Keys: oldKeys, Now: func() time.Time { return now }, Refresh: func(context.Context) (jwk.Set, error) {
		calls++
		return ParseJWKS(rotated.JWKS())
	}})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := rotated.Issue(sample())
	if _, err := v.Verify(context.Background(), tok); err != nil || calls != 1 {
		t.Fatalf("rotated key: %v after %d refreshes", err, calls)
	}
	stranger, _ := newIssuer(t, elliptic.P256())
	bad, _ := stranger.Issue(sample())
	if _, err := v.Verify(context.Background(), bad); !errors.Is(err, ErrInvalid) || calls != 1 {
		t.Errorf("untrusted token: %v after %d refreshes; want refused without another refresh", err, calls)
	}
	now = now.Add(2 * time.Minute)
	if _, err := v.Verify(context.Background(), bad); !errors.Is(err, ErrInvalid) || calls != 2 {
		t.Errorf("after the interval: %v, %d refreshes", err, calls)
	}
}

// TestKeyError: a token no trusted key verifies is refused with an error
// naming its kid and claimed verifier, and the keys tried; a token altered
// under a trusted kid says so.
func TestKeyError(t *testing.T) {
	iss, _ := newIssuer(t, elliptic.P256())
	other, _ := newIssuer(t, elliptic.P384())
	tok, err := iss.Issue(sample())
	if err != nil {
		t.Fatal(err)
	}
	_, err = verifier(t, other.JWKS(), t0).Verify(context.Background(), tok)
	var ke *KeyError
	if !errors.As(err, &ke) || !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrToken) {
		t.Fatalf("untrusted key: %v, want a *KeyError wrapping ErrInvalid", err)
	}
	if ke.KeyID != iss.KeyID() || ke.Known || ke.VerifierID != "kura test (kura)" || len(ke.Tried) != 1 || ke.Tried[0] != other.KeyID() {
		t.Errorf("KeyError = %+v; want kid %s, verifier \"kura test (kura)\", tried [%s]", ke, iss.KeyID(), other.KeyID())
	}
	for _, want := range []string{iss.KeyID(), `verifier "kura test (kura)"`, "not a trusted key", other.KeyID()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}

	parts := strings.Split(string(tok), ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	_, err = verifier(t, iss.JWKS(), t0).Verify(context.Background(), []byte(badSig))
	if !errors.As(err, &ke) || !ke.Known || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("altered token under a trusted kid: %v", err)
	}

	got, err := verifier(t, iss.JWKS(), t0).Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyID != iss.KeyID() {
		t.Errorf("verified token: key id %q, want %s", got.KeyID, iss.KeyID())
	}
}
