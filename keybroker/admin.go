package keybroker

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/store"
)

// Admin requests are signed (docs/spec/keybroker.md §6):
//
//	Authorization: Kura-Signature key="<key id>", ts="<unix seconds>", nonce="<base64>", sig="<base64>"
//
// where sig is Ed25519 over AdminSigningString. The key id is the first 16
// bytes of SHA-256 of the public key, in hex.
const adminScheme = "Kura-Signature"

// AdminWindow is how far an admin request's timestamp may be from the
// broker's clock; nonces are remembered this long on either side.
const AdminWindow = 5 * time.Minute

// ErrAdminAuth means an admin request was not signed by an authorized key,
// or its signature, timestamp or nonce is wrong or replayed (401
// "admin-unauthenticated").
var ErrAdminAuth = fault.NewCode(ErrKeyBroker, fault.Unauthenticated, "admin-unauthenticated", "admin authentication failed")

// AdminSigningString is the message an admin signs.
func AdminSigningString(method, pathAndQuery string, ts int64, nonce string, body []byte) []byte {
	sum := sha256.Sum256(body)
	return fmt.Appendf(nil, "kura-admin-v1\n%s\n%s\n%d\n%s\n%s", method, pathAndQuery, ts, nonce, hex.EncodeToString(sum[:]))
}

// AdminKeyID names an admin public key.
func AdminKeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}

// Admins is the set of owner keys allowed to use the admin API.
type Admins struct {
	keys map[string]admin // by key id
	now  func() time.Time
}

type admin struct {
	name string
	pub  ed25519.PublicKey
}

// NewAdmins returns the admin set for keys, named by the map key.
func NewAdmins(keys map[string]ed25519.PublicKey, now func() time.Time) *Admins {
	if now == nil {
		now = time.Now
	}
	a := &Admins{keys: map[string]admin{}, now: now}
	for name, pub := range keys {
		a.keys[AdminKeyID(pub)] = admin{name: name, pub: pub}
	}
	return a
}

// LoadAdmins reads an authorized-keys file: one "ed25519 <base64 public
// key> <name>" per line; blank lines and #-comments are ignored.
func LoadAdmins(path string, now func() time.Time) (*Admins, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("admin keys: %w", err)
	}
	defer f.Close()
	keys := map[string]ed25519.PublicKey{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 || fields[0] != "ed25519" {
			return nil, fmt.Errorf("admin keys %s:%d: want \"ed25519 <base64 key> <name>\"", path, n)
		}
		pub, err := base64.StdEncoding.DecodeString(fields[1])
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("admin keys %s:%d: not a base64 Ed25519 public key", path, n)
		}
		keys[fields[2]] = pub
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("admin keys: %w", err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("admin keys %s: no keys", path)
	}
	return NewAdmins(keys, now), nil
}

// AuthorizedKeyLine formats pub for an authorized-keys file.
func AuthorizedKeyLine(pub ed25519.PublicKey, name string) string {
	return "ed25519 " + base64.StdEncoding.EncodeToString(pub) + " " + name
}

// authenticate checks an admin request's signature and returns the admin's
// name. seen remembers the nonces of accepted requests for twice
// AdminWindow, so that no request is accepted twice.
func (a *Admins) authenticate(r *http.Request, body []byte, seen store.Ephemeral) (string, error) {
	h, ok := strings.CutPrefix(r.Header.Get("Authorization"), adminScheme+" ")
	if !ok {
		return "", fmt.Errorf("%w: missing %s authorization", ErrAdminAuth, adminScheme)
	}
	params := map[string]string{}
	for _, kv := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return "", fmt.Errorf("%w: malformed authorization", ErrAdminAuth)
		}
		params[k] = strings.Trim(v, `"`)
	}
	ad, ok := a.keys[params["key"]]
	if !ok {
		return "", fmt.Errorf("%w: key %q is not an authorized admin key", ErrAdminAuth, params["key"])
	}
	ts, err := strconv.ParseInt(params["ts"], 10, 64)
	if err != nil {
		return "", fmt.Errorf("%w: bad timestamp", ErrAdminAuth)
	}
	now := a.now()
	if d := now.Sub(time.Unix(ts, 0)); d > AdminWindow || d < -AdminWindow {
		return "", fmt.Errorf("%w: timestamp is %s off the broker's clock (limit %s)", ErrAdminAuth, d.Round(time.Second), AdminWindow)
	}
	nonce := params["nonce"]
	if len(nonce) < 16 || len(nonce) > 64 {
		return "", fmt.Errorf("%w: nonce must be 16 to 64 characters", ErrAdminAuth)
	}
	sig, err := base64.StdEncoding.DecodeString(params["sig"])
	if err != nil || !ed25519.Verify(ad.pub, AdminSigningString(r.Method, r.URL.RequestURI(), ts, nonce, body), sig) {
		return "", fmt.Errorf("%w: signature does not verify", ErrAdminAuth)
	}
	sum := sha256.Sum256([]byte(params["key"] + "\x00" + nonce))
	fresh, err := seen.Add(r.Context(), "admin-nonce/"+hex.EncodeToString(sum[:]), nil, now.Add(2*AdminWindow))
	if err != nil {
		return "", fmt.Errorf("keybroker: admin replay cache: %w", err)
	}
	if !fresh {
		return "", fmt.Errorf("%w: replayed request (nonce already used)", ErrAdminAuth)
	}
	return ad.name, nil
}

// maxAdminBody bounds admin request bodies: a resource, base64, plus metadata.
const maxAdminBody = 2*MaxResourceSize + 64<<10

// PutRequest is the body of PUT /kbs/v0/admin/resource/{repo}/{type}/{tag}.
type PutRequest struct {
	Value    []byte            `json:"value"` // base64
	Metadata map[string]string `json:"metadata,omitempty"`
	Policy   string            `json:"policy,omitempty"` // scope of a stored policy bound to this resource
}

// VersionResponse reports the version a write created.
type VersionResponse struct {
	Version int64 `json:"version"`
	// LogProof is, for a release policy stored by a server that runs the
	// transparency log, the inclusion proof of its policy_change entry
	// (docs/spec/auditlog.md §5).
	LogProof json.RawMessage `json:"log_proof,omitempty"`
}

// PolicyResponse is the body of GET /kbs/v0/admin/policy/{scope}.
type PolicyResponse struct {
	Scope     string    `json:"scope"`
	Version   int64     `json:"version"`
	Rego      string    `json:"rego"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

func (b *Broker) registerAdmin(mux *http.ServeMux, admins *Admins) {
	if admins == nil {
		return // never open by default: no admin keys, no admin API
	}
	h := func(f func(w http.ResponseWriter, r *http.Request, body []byte, by string) error) http.Handler {
		return web.Handle(b.log, nil, func(w http.ResponseWriter, r *http.Request) error {
			body, err := web.ReadBody(w, r, maxAdminBody)
			if err != nil {
				return err
			}
			by, err := admins.authenticate(r, body, b.ephemeral)
			if err != nil {
				b.log.WarnContext(r.Context(), "admin request refused", "method", r.Method, "path", r.URL.Path, "reason", err, "client", clientAddr(r))
				return err
			}
			return f(w, r, body, "admin:"+by)
		})
	}
	res := func(r *http.Request) string {
		return r.PathValue("repo") + "/" + r.PathValue("type") + "/" + r.PathValue("tag")
	}
	mux.Handle("PUT /kbs/v0/admin/resource/{repo}/{type}/{tag}", h(func(w http.ResponseWriter, r *http.Request, body []byte, by string) error {
		var req PutRequest
		if err := decodeStrict(body, &req); err != nil {
			return err
		}
		if req.Policy != "" {
			if err := PolicyScope(req.Policy); err != nil {
				return err
			}
		}
		v, err := b.Put(r.Context(), res(r), req.Value, req.Metadata, req.Policy, by)
		if err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, VersionResponse{Version: v})
	}))
	mux.Handle("GET /kbs/v0/admin/resource/{repo}/{type}/{tag}", h(func(w http.ResponseWriter, r *http.Request, _ []byte, _ string) error {
		m, err := b.Get(r.Context(), res(r))
		if err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, m)
	}))
	mux.Handle("DELETE /kbs/v0/admin/resource/{repo}/{type}/{tag}", h(func(w http.ResponseWriter, r *http.Request, _ []byte, by string) error {
		v, err := b.Delete(r.Context(), res(r), by)
		if err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, VersionResponse{Version: v})
	}))
	mux.Handle("GET /kbs/v0/admin/resources", h(func(w http.ResponseWriter, r *http.Request, _ []byte, _ string) error {
		ms, err := b.List(r.Context(), r.URL.Query().Get("prefix"))
		if err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, ms)
	}))
	mux.Handle("PUT /kbs/v0/admin/policy/{scope...}", h(func(w http.ResponseWriter, r *http.Request, body []byte, by string) error {
		v, proof, err := b.SetPolicy(r.Context(), r.PathValue("scope"), string(body), by)
		if err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, VersionResponse{Version: v, LogProof: proof})
	}))
	mux.Handle("GET /kbs/v0/admin/policy/{scope...}", h(func(w http.ResponseWriter, r *http.Request, _ []byte, _ string) error {
		scope := r.PathValue("scope")
		if err := PolicyScope(scope); err != nil {
			return err
		}
		p, err := b.store.GetPolicy(r.Context(), scope)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: no policy for %s", ErrNotFound, scope)
		}
		if err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, PolicyResponse{Scope: p.Scope, Version: p.Version, Rego: p.Rego, CreatedAt: p.CreatedAt, CreatedBy: p.CreatedBy})
	}))
	mux.Handle("GET /kbs/v0/admin/audit", h(func(w http.ResponseWriter, r *http.Request, _ []byte, _ string) error {
		q := r.URL.Query()
		after, _ := strconv.ParseInt(q.Get("after"), 10, 64)
		limit, _ := strconv.Atoi(q.Get("limit"))
		if limit <= 0 || limit > 1000 {
			limit = 100
		}
		recs, err := b.store.ListAudit(r.Context(), after, limit)
		if err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, recs)
	}))
}

// marshalCompact is json.Marshal without HTML escaping.
func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
