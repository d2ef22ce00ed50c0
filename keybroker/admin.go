package keybroker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/httpsig"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/store"
)

// Admin requests are signed (docs/spec/keybroker.md §6):
//
//	Authorization: Kura-Signature key="<key id>", ts="<unix seconds>", nonce="<base64>", sig="<base64>"
//
// where sig is Ed25519 over AdminSigningString (internal/httpsig with the
// context "kura-admin-v1"). The key id is the first 16 bytes of SHA-256 of
// the public key, in hex.
const adminContext = "kura-admin-v1"

// AdminWindow is how far an admin request's timestamp may be from the
// broker's clock; nonces are remembered this long on either side.
const AdminWindow = httpsig.Window

// ErrAdminAuth means an admin request was not signed by an authorized key,
// or its signature, timestamp or nonce is wrong or replayed (401
// "admin-unauthenticated").
var ErrAdminAuth = fault.NewCode(ErrKeyBroker, fault.Unauthenticated, "admin-unauthenticated", "admin authentication failed")

// AdminSigningString is the message an admin signs.
func AdminSigningString(method, pathAndQuery string, ts int64, nonce string, body []byte) []byte {
	return httpsig.SigningString(adminContext, method, pathAndQuery, ts, nonce, body)
}

// AdminKeyID names an admin public key.
func AdminKeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}

// authenticate checks an admin request's signature and returns the admin's
// key. seen remembers the nonces of accepted requests for twice
// AdminWindow, so that no request is accepted twice.
func (a *Admins) authenticate(r *http.Request, body []byte, seen store.Ephemeral) (*admin, error) {
	v := &httpsig.Verifier{Context: adminContext, Nonces: seen, Now: a.now}
	id, err := v.Verify(r, body, func(id string) (ed25519.PublicKey, bool) {
		ad, ok := a.keys[id]
		if !ok {
			return nil, false
		}
		return ad.Public, true
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAdminAuth, err)
	}
	return a.keys[id], nil
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
	h := func(f adminFunc) http.Handler {
		return b.adminHandler(func(r *http.Request, body []byte) (*admin, error) {
			return admins.authenticate(r, body, b.ephemeral)
		}, f)
	}
	resource := b.adminResource
	// scope validates the request's policy scope and checks that ad may
	// read it (write: store it): a tenant its repositories' scopes and, to
	// read, the default; the operator the default alone.
	scope := func(r *http.Request, ad *admin, write bool) (string, error) {
		s := r.PathValue("scope")
		if err := PolicyScope(s); err != nil {
			return "", err
		}
		repo, platform := scopeRepo(s)
		switch {
		case platform && write && !ad.Operator:
			return "", b.refuse(r, ad, "", s, fmt.Errorf("%w: the %s release policy is the operator's: key %s is a tenant's", ErrNotYourTenant, s, ad.Name))
		case !platform && !ad.owns(repo):
			return "", b.refuse(r, ad, scopeTarget(s), s, notYours(ad, repo))
		}
		return s, nil
	}
	by := func(ad *admin) string { return "admin:" + ad.Name }

	mux.Handle("PUT /kbs/v0/admin/resource/{repo}/{type}/{tag}", h(func(w http.ResponseWriter, r *http.Request, body []byte, ad *admin) error {
		path, err := resource(r, ad)
		if err != nil {
			return err
		}
		var req PutRequest
		if err := decodeStrict(body, &req); err != nil {
			return err
		}
		if req.Policy != "" {
			if err := PolicyScope(req.Policy); err != nil {
				return err
			}
			// A resource may be bound to the default policy or to one of
			// its owner's, never to another tenant's.
			if repo, platform := scopeRepo(req.Policy); !platform && !ad.owns(repo) {
				return b.refuse(r, ad, path, req.Policy, fmt.Errorf("the bound policy %s: %w", req.Policy, notYours(ad, repo)))
			}
		}
		v, err := b.Put(r.Context(), path, req.Value, req.Metadata, req.Policy, by(ad))
		if err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, VersionResponse{Version: v})
	}))
	mux.Handle("GET /kbs/v0/admin/resource/{repo}/{type}/{tag}", h(func(w http.ResponseWriter, r *http.Request, _ []byte, ad *admin) error {
		path, err := resource(r, ad)
		if err != nil {
			return err
		}
		m, err := b.Get(r.Context(), path)
		if err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, m)
	}))
	mux.Handle("DELETE /kbs/v0/admin/resource/{repo}/{type}/{tag}", h(func(w http.ResponseWriter, r *http.Request, _ []byte, ad *admin) error {
		path, err := resource(r, ad)
		if err != nil {
			return err
		}
		v, err := b.Delete(r.Context(), path, by(ad))
		if err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, VersionResponse{Version: v})
	}))
	mux.Handle("GET /kbs/v0/admin/resources", h(func(w http.ResponseWriter, r *http.Request, _ []byte, ad *admin) error {
		prefix := r.URL.Query().Get("prefix")
		if err := listable(ad, prefix); err != nil {
			return b.refuse(r, ad, prefix, "", err)
		}
		ms, err := b.List(r.Context(), prefix)
		if err != nil {
			return err
		}
		mine := make([]Meta, 0, len(ms))
		for _, m := range ms {
			if ad.owns(repoOf(m.Path)) {
				mine = append(mine, m)
			}
		}
		return web.WriteJSON(w, http.StatusOK, mine)
	}))
	mux.Handle("PUT /kbs/v0/admin/policy/{scope...}", h(func(w http.ResponseWriter, r *http.Request, body []byte, ad *admin) error {
		s, err := scope(r, ad, true)
		if err != nil {
			return err
		}
		v, proof, err := b.SetPolicy(r.Context(), s, string(body), by(ad))
		if err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, VersionResponse{Version: v, LogProof: proof})
	}))
	mux.Handle("GET /kbs/v0/admin/policy/{scope...}", h(func(w http.ResponseWriter, r *http.Request, _ []byte, ad *admin) error {
		s, err := scope(r, ad, false)
		if err != nil {
			return err
		}
		p, err := b.store.GetPolicy(r.Context(), s)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: no policy for %s", ErrNotFound, s)
		}
		if err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, PolicyResponse{Scope: p.Scope, Version: p.Version, Rego: p.Rego, CreatedAt: p.CreatedAt, CreatedBy: p.CreatedBy})
	}))
	mux.Handle("GET /kbs/v0/admin/audit", h(func(w http.ResponseWriter, r *http.Request, _ []byte, ad *admin) error {
		q := r.URL.Query()
		after, _ := strconv.ParseInt(q.Get("after"), 10, 64)
		limit, _ := strconv.Atoi(q.Get("limit"))
		if limit <= 0 || limit > 1000 {
			limit = 100
		}
		recs, err := b.auditFor(r.Context(), admins, ad, after, limit)
		if err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, recs)
	}))
	mux.Handle("GET /kbs/v0/admin/tenants", h(func(w http.ResponseWriter, r *http.Request, _ []byte, ad *admin) error {
		if !ad.Operator {
			return b.refuse(r, ad, "", "", fmt.Errorf("%w: only an operator key lists the tenants; key %s is a tenant's", ErrNotYourTenant, ad.Name))
		}
		return web.WriteJSON(w, http.StatusOK, admins.tenants())
	}))
	b.registerTrusteeAdmin(mux, admins)
}

// adminFunc handles an owner-API request whose body has been read and
// whose signer, ad, authenticated.
type adminFunc func(w http.ResponseWriter, r *http.Request, body []byte, ad *admin) error

// adminHandler reads an owner-API request's body (at most maxAdminBody),
// authenticates it with auth, and hands it to f. A request that does not
// authenticate is logged and refused.
func (b *Broker) adminHandler(auth func(r *http.Request, body []byte) (*admin, error), f adminFunc) http.Handler {
	return web.Handle(b.log, nil, func(w http.ResponseWriter, r *http.Request) error {
		body, err := web.ReadBody(w, r, maxAdminBody)
		if err != nil {
			return err
		}
		ad, err := auth(r, body)
		if err != nil {
			b.log.WarnContext(r.Context(), "admin request refused", "method", r.Method, "path", r.URL.Path, "reason", err, "client", web.ClientAddr(r))
			return err
		}
		return f(w, r, body, ad)
	})
}

// adminResource validates the request's resource path
// ({repo}/{type}/{tag}) and checks that ad owns its repository, before
// anything about the resource is read.
func (b *Broker) adminResource(r *http.Request, ad *admin) (string, error) {
	path := r.PathValue("repo") + "/" + r.PathValue("type") + "/" + r.PathValue("tag")
	req, err := ParsePath(path)
	if err != nil {
		return "", err
	}
	if !ad.owns(req.Repository) {
		return "", b.refuse(r, ad, path, "", notYours(ad, req.Repository))
	}
	return path, nil
}

// listable checks that a listing under prefix stays within ad's
// repositories: a prefix with a "/" must name one of them, a prefix
// without must begin the name of one. The empty prefix lists all of them
// (for the operator, none).
func listable(ad *admin, prefix string) error {
	if prefix == "" {
		return nil
	}
	if repo, _, ok := strings.Cut(prefix, "/"); ok {
		if !ad.owns(repo) {
			return notYours(ad, repo)
		}
		return nil
	}
	for _, repo := range ad.Repos {
		if !ad.Operator && strings.HasPrefix(repo, prefix) {
			return nil
		}
	}
	return notYours(ad, prefix+"*")
}

// auditScan is how many records auditFor reads from the store at a time.
const auditScan = 1000

// auditFor returns up to limit audit records after seq after that ad may
// read (Admins.sees). It reads the trail in order until it has limit of
// them or the trail ends, so a short answer means the end of the trail, as
// for an unfiltered one.
func (b *Broker) auditFor(ctx context.Context, admins *Admins, ad *admin, after int64, limit int) ([]store.AuditRecord, error) {
	out := []store.AuditRecord{}
	for len(out) < limit {
		recs, err := b.store.ListAudit(ctx, after, auditScan)
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			if admins.sees(ad, rec.Resource) {
				out = append(out, rec)
				if len(out) == limit {
					break
				}
			}
		}
		if len(recs) < auditScan {
			break
		}
		after = recs[len(recs)-1].Seq
	}
	return out, nil
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

// Authenticate checks a request signed with the owner API's signature by
// one of these keys — over body, which is nil for a request whose URL
// names the digest of what it sends — and returns the key's name. seen
// remembers nonces, as for the owner API.
func (a *Admins) Authenticate(r *http.Request, body []byte, seen store.Ephemeral) (string, error) {
	ad, err := a.authenticate(r, body, seen)
	if err != nil {
		return "", err
	}
	return ad.Name, nil
}
