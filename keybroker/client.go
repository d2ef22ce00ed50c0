package keybroker

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwe"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/httpsig"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/store"
)

// maxClientResponse bounds what clients read from a broker.
const maxClientResponse = 4 << 20

// Client is the workload side of the KBS protocol: it attests with an
// ephemeral key that never leaves the process (the TEE) and fetches
// resources encrypted to it.
type Client struct {
	// BaseURL is the broker's address.
	BaseURL string
	// HTTP is the client to use; its cookie jar is replaced. Nil means a
	// fresh client.
	HTTP *http.Client
}

// Session is an attested KBS session.
type Session struct {
	c     *Client
	hc    *http.Client
	key   *ecdh.PrivateKey
	jwk   jwk.Key // private JWK for decryption
	Token string  // the EAR the broker's verifier issued
	// Evidence is the attestation bundle the session was attested with
	// (JSON), for callers that hand it on, such as a clean-room worker's
	// result bundle.
	Evidence []byte
}

// RemoteError is an error answer from a broker: its HTTP status and
// problem detail.
type RemoteError struct {
	Status int
	Type   string
	Detail string
}

// Error describes the broker's answer.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("key broker: %d %s: %s", e.Status, http.StatusText(e.Status), e.Detail)
}

// Is lets errors.Is match a remote error to the broker's sentinels.
func (e *RemoteError) Is(target error) bool {
	switch e.Status {
	case http.StatusUnauthorized:
		return target == ErrUnauthenticated || target == ErrAdminAuth && strings.HasSuffix(e.Type, "admin-unauthenticated")
	case http.StatusForbidden:
		if strings.HasSuffix(e.Type, "/not-your-tenant") {
			return target == ErrNotYourTenant
		}
		if strings.HasSuffix(e.Type, "/approval-revoked") && target == ErrApprovalRevoked {
			return true
		}
		return target == ErrDenied
	case http.StatusNotFound:
		return target == ErrNotFound
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return target == ErrBadRequest
	case http.StatusTooManyRequests:
		return target == ErrRateLimited
	}
	return false
}

// Attest runs the KBS handshake (auth, then attest) with evidence from a.
// context is bound into the evidence next to the nonce and public key.
func (c *Client) Attest(ctx context.Context, a attestation.Attester, context []byte) (*Session, error) {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	if c.HTTP != nil {
		copied := *c.HTTP
		copied.Jar = jar
		hc = &copied
	}
	tk, err := NewTEEKey()
	if err != nil {
		return nil, err
	}
	s := &Session{c: c, hc: hc, key: tk.priv, jwk: tk.jwk}

	var ch kbsChallenge
	tee := string(a.TEE())
	if a.TEE() == attestation.Sim {
		tee = "sample"
	}
	if err := s.do(ctx, http.MethodPost, "/kbs/v0/auth", kbsRequest{Version: ProtocolVersion, TEE: tee}, &ch); err != nil {
		return nil, err
	}
	nonce, err := base64.StdEncoding.DecodeString(ch.Nonce)
	if err != nil {
		return nil, fmt.Errorf("key broker sent a bad nonce: %w", err)
	}
	rd := attestation.RuntimeData{Nonce: nonce, PublicKey: tk.public, Context: context}
	bundle, err := a.Attest(ctx, rd.ReportData())
	if err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	bundle.RuntimeData = rd
	ev, err := json.Marshal(bundle)
	if err != nil {
		return nil, err
	}
	var out struct {
		Token string `json:"token"`
	}
	// Protocol 0.4: the evidence is the primary evidence of a composite.
	composite, err := json.Marshal(kbsCompositeEvidence{PrimaryEvidence: ev, AdditionalEvidence: new(string)})
	if err != nil {
		return nil, err
	}
	att := kbsAttestation{RuntimeData: &kbsRuntimeData{Nonce: ch.Nonce, TEEPubKey: tk.public}, TEEEvidence: composite}
	if err := s.do(ctx, http.MethodPost, "/kbs/v0/attest", att, &out); err != nil {
		return nil, err
	}
	s.Token, s.Evidence = out.Token, ev
	return s, nil
}

// Resource fetches and decrypts the resource at path ("repository/type/tag").
func (s *Session) Resource(ctx context.Context, path string) ([]byte, error) {
	if _, err := ParsePath(path); err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := s.do(ctx, http.MethodGet, "/kbs/v0/resource/"+path, nil, &raw); err != nil {
		return nil, err
	}
	return s.decrypt(raw)
}

// ResourceWithProof fetches and decrypts a resource like Resource, asking
// the broker to answer once the decision is in its transparency log. It
// returns the decision's inclusion proof (JSON, docs/spec/auditlog.md §5),
// unverified: check it with auditlog.ParseProof and auditlog.VerifyProof
// against the log's key. The proof is nil when the broker has no log or
// the proof did not come in time.
func (s *Session) ResourceWithProof(ctx context.Context, path string) (value, proof []byte, err error) {
	if _, err := ParsePath(path); err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.c.BaseURL, "/")+"/kbs/v0/resource/"+path, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set(AuditProofHeader, "wait")
	var raw json.RawMessage
	var h http.Header
	if err := roundTripHeader(s.hc, req, &raw, &h); err != nil {
		return nil, nil, err
	}
	if p := h.Get(AuditProofHeader); p != "" {
		if proof, err = base64.StdEncoding.DecodeString(p); err != nil {
			return nil, nil, fmt.Errorf("key broker: %s header: %w", AuditProofHeader, err)
		}
	}
	value, err = s.decrypt(raw)
	return value, proof, err
}

// ResourceFor fetches and decrypts a dataset key for a clean-room run,
// presenting the collaboration file the run is for (a kura extension,
// docs/spec/cleanroom.md §3). The session must have been attested with the
// run's context.
func (s *Session) ResourceFor(ctx context.Context, path string, collaboration []byte) ([]byte, error) {
	if _, err := ParsePath(path); err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := s.do(ctx, http.MethodPost, RunResourcePrefix+path, collaboration, &raw); err != nil {
		return nil, err
	}
	return s.decrypt(raw)
}

// Decrypt opens a release made to the session's TEE key: the JWE a
// resource request answers (docs/spec/keybroker.md §4), for callers that
// fetch it by other means than Resource, such as a load generator.
func (s *Session) Decrypt(jwe []byte) ([]byte, error) { return s.decrypt(jwe) }

func (s *Session) decrypt(raw []byte) ([]byte, error) {
	value, err := jwe.Decrypt(raw, jwe.WithKey(jwa.ECDH_ES_A256KW(), s.jwk))
	if err != nil {
		return nil, fmt.Errorf("decrypt resource: %w", err)
	}
	return value, nil
}

func (s *Session) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	switch in := in.(type) {
	case nil:
	case []byte: // sent as is
		body = bytes.NewReader(in)
	default:
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(s.c.BaseURL, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return roundTrip(s.hc, req, out)
}

func roundTrip(hc *http.Client, req *http.Request, out any) error {
	return roundTripHeader(hc, req, out, nil)
}

// roundTripHeader is roundTrip, also handing back the answer's header.
func roundTripHeader(hc *http.Client, req *http.Request, out any, header *http.Header) error {
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("key broker: %w", err)
	}
	defer resp.Body.Close()
	if header != nil {
		*header = resp.Header
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxClientResponse))
	if err != nil {
		return fmt.Errorf("key broker: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var p web.Problem
		json.Unmarshal(data, &p)
		if p.Detail == "" {
			p.Detail = strings.TrimSpace(string(data))
		}
		return &RemoteError{Status: resp.StatusCode, Type: p.Type, Detail: p.Detail}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("key broker: decode %s %s: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// AdminClient calls the owner API with signed requests.
type AdminClient struct {
	BaseURL string
	Key     ed25519.PrivateKey
	HTTP    *http.Client
	Now     func() time.Time
}

// SignBody signs req with the owner API's signature over body: the
// request's own body, or nil for a request whose URL names the digest of
// a body too large to sign in memory (a sealed dataset's upload).
func (c *AdminClient) SignBody(req *http.Request, body []byte, now time.Time) {
	httpsig.Sign(req, body, adminContext, AdminKeyID(c.Key.Public().(ed25519.PublicKey)),
		func(msg []byte) []byte { return ed25519.Sign(c.Key, msg) }, now)
}

func (c *AdminClient) do(ctx context.Context, method, pathAndQuery string, body []byte, out any) error {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+pathAndQuery, bytes.NewReader(body))
	if err != nil {
		return err
	}
	c.SignBody(req, body, now())
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	return roundTrip(hc, req, out)
}

// Put stores a new version of a resource.
func (c *AdminClient) Put(ctx context.Context, path string, value []byte, meta map[string]string, policy string) (int64, error) {
	if _, err := ParsePath(path); err != nil {
		return 0, err
	}
	body, err := json.Marshal(PutRequest{Value: value, Metadata: meta, Policy: policy})
	if err != nil {
		return 0, err
	}
	var v VersionResponse
	return v.Version, c.do(ctx, http.MethodPut, "/kbs/v0/admin/resource/"+path, body, &v)
}

// Get returns a resource's metadata.
func (c *AdminClient) Get(ctx context.Context, path string) (*Meta, error) {
	if _, err := ParsePath(path); err != nil {
		return nil, err
	}
	var m Meta
	return &m, c.do(ctx, http.MethodGet, "/kbs/v0/admin/resource/"+path, nil, &m)
}

// List returns metadata of live resources under prefix.
func (c *AdminClient) List(ctx context.Context, prefix string) ([]Meta, error) {
	var ms []Meta
	return ms, c.do(ctx, http.MethodGet, "/kbs/v0/admin/resources?prefix="+url.QueryEscape(prefix), nil, &ms)
}

// Delete deletes a resource (a tombstone version).
func (c *AdminClient) Delete(ctx context.Context, path string) (int64, error) {
	if _, err := ParsePath(path); err != nil {
		return 0, err
	}
	var v VersionResponse
	return v.Version, c.do(ctx, http.MethodDelete, "/kbs/v0/admin/resource/"+path, nil, &v)
}

// SetPolicy stores a release policy for scope and returns its version and,
// from a server with a transparency log, the proof that it was logged.
func (c *AdminClient) SetPolicy(ctx context.Context, scope, rego string) (*VersionResponse, error) {
	if err := PolicyScope(scope); err != nil {
		return nil, err
	}
	var v VersionResponse
	if err := c.do(ctx, http.MethodPut, "/kbs/v0/admin/policy/"+scope, []byte(rego), &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Policy returns the release policy stored for scope.
func (c *AdminClient) Policy(ctx context.Context, scope string) (*PolicyResponse, error) {
	var p PolicyResponse
	return &p, c.do(ctx, http.MethodGet, "/kbs/v0/admin/policy/"+scope, nil, &p)
}

// Audit returns audit records after sequence number after.
func (c *AdminClient) Audit(ctx context.Context, after int64, limit int) ([]store.AuditRecord, error) {
	var recs []store.AuditRecord
	return recs, c.do(ctx, http.MethodGet, "/kbs/v0/admin/audit?after="+strconv.FormatInt(after, 10)+"&limit="+strconv.Itoa(limit), nil, &recs)
}

// Tenants lists the broker's owner-API keys: their names, key ids and
// repositories. Only an operator key may.
func (c *AdminClient) Tenants(ctx context.Context) ([]Tenant, error) {
	var ts []Tenant
	return ts, c.do(ctx, http.MethodGet, "/kbs/v0/admin/tenants", nil, &ts)
}

// Revoke delivers a party's signed revocation of its approval, with the
// collaboration file whose history holds the version and card it names,
// to the broker (POST RevocationPath; docs/spec/cleanroom.md §3.1). A
// refusal is a *web.RemoteError, which carries the broker's kind of
// failure.
func (c *Client) Revoke(ctx context.Context, revocation, collaboration []byte) (*RevocationResponse, error) {
	body, err := json.Marshal(RevocationRequest{Revocation: revocation, Collaboration: collaboration})
	if err != nil {
		return nil, fmt.Errorf("key broker: revocation request: %w", err)
	}
	var out RevocationResponse
	if err := c.roundTrip(ctx, http.MethodPost, RevocationPath, body, &out, "revocation"); err != nil {
		return nil, err
	}
	return &out, nil
}

// roundTrip sends a request with a JSON body (none when body is nil) to
// the broker's path and decodes its JSON answer into out; a refusal is a
// *web.RemoteError.
func (c *Client) roundTrip(ctx context.Context, method, path string, body []byte, out any, what string) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("key broker: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxClientResponse))
	if err != nil {
		return fmt.Errorf("key broker: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return web.ReadProblem("key broker", resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("key broker: decode the %s answer: %w", what, err)
	}
	return nil
}
