package keybroker

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/keyfile"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/store"
)

// A shared broker serves rival owners ("tenants"). Each owner key owns
// repositories, and only its own: it reads, lists, writes and deletes their
// resources, stores and reads their repo/ and resource/ release policies,
// and reads the audit records of their resources. An operator key owns no
// repository: it manages what is the platform's (the default release
// policy, the tenant list). docs/spec/keybroker.md §6.

// ErrNotYourTenant means an owner-API key asked for what is not its
// tenant's: a resource, policy or audit record of a repository another key
// owns (or none does), or, for a tenant key, what only the operator
// manages (403 "not-your-tenant"). Every such refusal is logged and
// recorded in the audit trail as store.DecisionAdminRefused.
var ErrNotYourTenant = fault.NewCode(ErrKeyBroker, fault.Denied, "not-your-tenant", "not your tenant")

// ErrAdminKeys means an authorized-keys file or key list is unusable: a
// malformed line, a name or key given twice, a repository owned by two
// keys.
var ErrAdminKeys = fault.New(ErrKeyBroker, fault.Invalid, "bad authorized keys")

// AdminKey is an owner-API key: one line of an authorized-keys file.
type AdminKey struct {
	// Name is recorded with every write the key makes ("admin:<name>").
	Name string
	// Public is the Ed25519 public key.
	Public ed25519.PublicKey
	// Repos are the repositories the key owns. Nil means the one named
	// like the key (Name), unless Operator.
	Repos []string
	// Operator marks the platform operator's key: it owns no repository,
	// and alone stores the default release policy and lists the tenants.
	Operator bool
}

// Tenant is an owner-API key as GET /kbs/v0/admin/tenants lists it (to
// operator keys only).
type Tenant struct {
	Name         string   `json:"name"`
	KeyID        string   `json:"key_id"`
	Repositories []string `json:"repositories,omitempty"`
	Operator     bool     `json:"operator,omitempty"`
}

// Admins is the set of keys allowed to use the owner API, and the
// repositories each owns.
type Admins struct {
	keys  map[string]*admin // by key id
	owner map[string]*admin // by repository
	now   func() time.Time
}

type admin struct {
	AdminKey // Repos resolved and sorted
	id       string
}

// owns reports whether the key owns repo.
func (a *admin) owns(repo string) bool {
	_, found := slices.BinarySearch(a.Repos, repo)
	return found && !a.Operator
}

// NewAdmins returns the admin set of keys. It fails with ErrAdminKeys when a
// name, a key or a repository appears twice, a name or repository is not
// usable, or an operator key names repositories.
func NewAdmins(keys []AdminKey, now func() time.Time) (*Admins, error) {
	if now == nil {
		now = time.Now
	}
	a := &Admins{keys: map[string]*admin{}, owner: map[string]*admin{}, now: now}
	names := map[string]bool{}
	for _, k := range keys {
		if k.Name == "" || strings.ContainsFunc(k.Name, func(r rune) bool { return r <= ' ' || r == 0x7f }) || len(k.Name) > 128 {
			return nil, fmt.Errorf("%w: key name %q: want 1 to 128 characters without spaces", ErrAdminKeys, k.Name)
		}
		if names[k.Name] {
			return nil, fmt.Errorf("%w: two keys are named %s", ErrAdminKeys, k.Name)
		}
		names[k.Name] = true
		if len(k.Public) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: key %s is not an Ed25519 public key", ErrAdminKeys, k.Name)
		}
		ad := &admin{AdminKey: k, id: AdminKeyID(k.Public)}
		if prev, dup := a.keys[ad.id]; dup {
			return nil, fmt.Errorf("%w: keys %s and %s are the same key", ErrAdminKeys, prev.Name, k.Name)
		}
		switch {
		case k.Operator && k.Repos != nil:
			return nil, fmt.Errorf("%w: operator key %s cannot own repositories", ErrAdminKeys, k.Name)
		case k.Operator:
		case k.Repos == nil:
			if store.ValidateScope("repo/"+k.Name) != nil {
				return nil, fmt.Errorf("%w: key %s owns no repository: its name is not a repository name; give repos=", ErrAdminKeys, k.Name)
			}
			ad.Repos = []string{k.Name}
		case len(k.Repos) == 0:
			return nil, fmt.Errorf("%w: key %s: empty repository list", ErrAdminKeys, k.Name)
		default:
			ad.Repos = slices.Clone(k.Repos)
		}
		slices.Sort(ad.Repos)
		for _, r := range ad.Repos {
			if err := store.ValidateScope("repo/" + r); err != nil {
				return nil, fmt.Errorf("%w: key %s: repository %q is not a repository name", ErrAdminKeys, k.Name, r)
			}
			if prev, taken := a.owner[r]; taken {
				return nil, fmt.Errorf("%w: repository %s is owned by two keys, %s and %s", ErrAdminKeys, r, prev.Name, k.Name)
			}
			a.owner[r] = ad
		}
		a.keys[ad.id] = ad
	}
	if len(a.keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrAdminKeys)
	}
	return a, nil
}

// LoadAdmins reads an authorized-keys file, one key a line:
//
//	ed25519 <base64 public key> <name> [repos=<repository>[,<repository>...] | operator]
//
// A line without repos= or operator owns the one repository named like the
// key. Blank lines and #-comments are ignored. The file must be one that
// only its owner can write (internal/keyfile.ReadTrusted): otherwise the
// error names it and the chmod that fixes it.
func LoadAdmins(path string, now func() time.Time) (*Admins, error) {
	data, err := keyfile.ReadTrusted(path)
	if err != nil {
		return nil, fmt.Errorf("admin keys: %w", err)
	}
	var keys []AdminKey
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := parseAuthorizedKey(line)
		if err != nil {
			return nil, fmt.Errorf("admin keys %s:%d: %w", path, n, err)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrAdminKeys, path, err)
	}
	a, err := NewAdmins(keys, now)
	if err != nil {
		return nil, fmt.Errorf("admin keys %s: %w", path, err)
	}
	return a, nil
}

// parseAuthorizedKey parses one non-blank, non-comment line.
func parseAuthorizedKey(line string) (AdminKey, error) {
	const want = `want "ed25519 <base64 key> <name> [repos=<repository>,... | operator]"`
	fields := strings.Fields(line)
	if (len(fields) != 3 && len(fields) != 4) || fields[0] != "ed25519" {
		return AdminKey{}, fmt.Errorf("%w: %s", ErrAdminKeys, want)
	}
	pub, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return AdminKey{}, fmt.Errorf("%w: not a base64 Ed25519 public key", ErrAdminKeys)
	}
	k := AdminKey{Name: fields[2], Public: pub}
	if len(fields) == 4 {
		opt := fields[3]
		list, isRepos := strings.CutPrefix(opt, "repos=")
		switch {
		case opt == "operator":
			k.Operator = true
		case isRepos:
			k.Repos = strings.Split(list, ",")
			if slices.Contains(k.Repos, "") {
				return AdminKey{}, fmt.Errorf("%w: %q: an empty repository name", ErrAdminKeys, opt)
			}
		default:
			return AdminKey{}, fmt.Errorf("%w: unknown option %q: %s", ErrAdminKeys, opt, want)
		}
	}
	return k, nil
}

// AuthorizedKeyLine formats pub for an authorized-keys file: a key named
// name that owns repos, or without repos the repository named like it.
func AuthorizedKeyLine(pub ed25519.PublicKey, name string, repos ...string) string {
	line := "ed25519 " + base64.StdEncoding.EncodeToString(pub) + " " + name
	if len(repos) > 0 {
		line += " repos=" + strings.Join(repos, ",")
	}
	return line
}

// OperatorKeyLine formats pub for an authorized-keys file as the
// operator's key.
func OperatorKeyLine(pub ed25519.PublicKey, name string) string {
	return AuthorizedKeyLine(pub, name) + " operator"
}

// tenants lists the keys, by name.
func (a *Admins) tenants() []Tenant {
	out := make([]Tenant, 0, len(a.keys))
	for _, k := range a.keys {
		out = append(out, Tenant{Name: k.Name, KeyID: k.id, Repositories: k.Repos, Operator: k.Operator})
	}
	slices.SortFunc(out, func(x, y Tenant) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// repoOf is the repository an audit record is about: its resource up to the
// first "/" (as requested, so perhaps no valid path).
func repoOf(resource string) string {
	repo, _, _ := strings.Cut(resource, "/")
	return repo
}

// sees reports whether ad may read the audit record of resource: a tenant
// those of its repositories, the operator those of repositories no key
// owns (requests for no valid path, refusals about the default policy).
func (a *Admins) sees(ad *admin, resource string) bool {
	repo := repoOf(resource)
	if ad.Operator {
		return a.owner[repo] == nil
	}
	return ad.owns(repo)
}

// scopeRepo returns the repository of a valid policy scope; platform is true
// for the default scope, which no tenant owns.
func scopeRepo(scope string) (repo string, platform bool) {
	if rest, ok := strings.CutPrefix(scope, "repo/"); ok {
		return rest, false
	}
	if rest, ok := strings.CutPrefix(scope, "resource/"); ok {
		return repoOf(rest), false
	}
	return "", true
}

// scopeTarget is what an audit record of a refusal about scope names as its
// resource, so that the scope's owner sees it: the resource path, the
// repository, or nothing for the default scope.
func scopeTarget(scope string) string {
	if rest, ok := strings.CutPrefix(scope, "resource/"); ok {
		return rest
	}
	repo, _ := scopeRepo(scope)
	return repo
}

// notYours is the refusal of ad's request about repo.
func notYours(ad *admin, repo string) error {
	if ad.Operator {
		return fmt.Errorf("%w: operator key %s owns no repository (%s is a tenant's or nobody's)", ErrNotYourTenant, ad.Name, repo)
	}
	return fmt.Errorf("%w: key %s does not own repository %s", ErrNotYourTenant, ad.Name, repo)
}

// refuse records and logs an owner-API refusal (err wraps
// ErrNotYourTenant) and returns err. target is the resource, repository or
// prefix the request named (the audit trail shows the refusal to its
// owner), scope the policy scope if any. The record is not a release
// decision: it is not handed to the AuditSink, and the transparency log's
// follower skips it. A refusal that cannot be recorded is still refused.
func (b *Broker) refuse(r *http.Request, ad *admin, target, scope string, err error) error {
	ctx := r.Context()
	rec := &store.AuditRecord{
		Time: b.now().UTC(), Decision: store.DecisionAdminRefused, Reason: r.Method + " " + r.URL.Path + ": " + err.Error(),
		Resource: target, PolicyID: scope, Requester: "admin:" + ad.Name,
	}
	seq, aerr := b.store.AppendAudit(ctx, rec)
	if aerr != nil {
		b.log.ErrorContext(ctx, "owner API refusal not recorded", "by", ad.Name, "err", aerr)
	}
	b.log.WarnContext(ctx, "admin request refused", "by", ad.Name, "key", ad.id, "method", r.Method, "path", r.URL.Path,
		"target", target, "scope", scope, "reason", err, "audit_seq", seq, "client", web.ClientAddr(r))
	return err
}
