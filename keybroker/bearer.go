package keybroker

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// TEEKey is a workload's ephemeral key-transport key (ECDH P-256): a broker
// encrypts released resources to its public JWK, which the workload binds
// into its evidence. It never leaves the process.
type TEEKey struct {
	priv   *ecdh.PrivateKey
	jwk    jwk.Key
	public []byte
}

// NewTEEKey generates a TEEKey.
func NewTEEKey() (*TEEKey, error) {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	privJWK, err := jwk.Import(priv)
	if err != nil {
		return nil, fmt.Errorf("tee key: %w", err)
	}
	pubJWK, err := privJWK.PublicKey()
	if err != nil {
		return nil, err
	}
	if err := pubJWK.Set(jwk.AlgorithmKey, jwa.ECDH_ES_A256KW()); err != nil {
		return nil, err
	}
	pubJSON, err := json.Marshal(pubJWK)
	if err != nil {
		return nil, err
	}
	canon, err := CanonicalJWK(pubJSON)
	if err != nil {
		return nil, err
	}
	return &TEEKey{priv: priv, jwk: privJWK, public: canon}, nil
}

// Public returns the canonical public JWK (CanonicalJWK) that evidence binds
// as its runtime data's public key.
func (k *TEEKey) Public() []byte { return k.public }

// WithToken returns a session that authenticates every request with tok,
// an attestation token from a verifier the broker trusts whose runtime data
// binds key.Public(), sent as a Bearer token instead of a KBS handshake
// (docs/spec/keybroker.md). The token goes only to the broker's own host,
// never into a URL.
func (c *Client) WithToken(key *TEEKey, tok string) *Session {
	hc := &http.Client{}
	if c.HTTP != nil {
		copied := *c.HTTP
		hc = &copied
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	host := ""
	if u, err := url.Parse(c.BaseURL); err == nil {
		host = u.Host
	}
	hc.Transport = bearerTransport{base: base, host: host, token: tok}
	return &Session{c: c, hc: hc, key: key.priv, jwk: key.jwk, Token: tok}
}

// bearerTransport adds the attestation token to requests for the broker's host.
type bearerTransport struct {
	base  http.RoundTripper
	host  string
	token string
}

// RoundTrip sends r with the token when r goes to the broker's host.
func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == b.host {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.base.RoundTrip(r)
}
