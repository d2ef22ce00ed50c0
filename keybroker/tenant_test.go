package keybroker

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kura-cc/kura/internal/keyfile"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/store"
)

// tenants is a broker shared by two rival owners and its operator, whose
// keys come from an authorized-keys file.
type tenants struct {
	*fixture
	airline, carrier, operator *AdminClient
}

const airlinePolicy = "package kura.release\nallow := false\ndeny contains \"the airline's policy\""

func newTenants(t *testing.T) *tenants {
	t.Helper()
	return newTenantsCompat(t, CompatKura)
}

// newTenantsCompat is newTenants with the KBS compatibility mode compat.
func newTenantsCompat(t *testing.T, compat Compat) *tenants {
	t.Helper()
	keys := map[string]ed25519.PrivateKey{}
	for _, name := range []string{"airline", "carrier", "ops"} {
		_, keys[name], _ = ed25519.GenerateKey(rand.Reader)
	}
	pub := func(name string) ed25519.PublicKey { return keys[name].Public().(ed25519.PublicKey) }
	file := filepath.Join(t.TempDir(), "admins")
	lines := "# two rivals and the platform\n" +
		AuthorizedKeyLine(pub("airline"), "airline", "airline", "airline-archive") + "\n\n" +
		AuthorizedKeyLine(pub("carrier"), "carrier") + "\n" + // owns "carrier"
		OperatorKeyLine(pub("ops"), "ops") + "\n"
	if err := os.WriteFile(file, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	admins, err := LoadAdmins(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, fixtureOpts{dev: true, admins: admins, compat: compat})
	c := func(name string) *AdminClient {
		return &AdminClient{BaseURL: f.srv.URL, Key: keys[name], HTTP: f.srv.Client()}
	}
	return &tenants{fixture: f, airline: c("airline"), carrier: c("carrier"), operator: c("ops")}
}

// seed stores each tenant's resource and policies.
func (ts *tenants) seed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, c := range []struct {
		admin *AdminClient
		repo  string
	}{{ts.airline, "airline"}, {ts.carrier, "carrier"}} {
		if _, err := c.admin.Put(ctx, c.repo+"/dataset-key/d1", []byte(c.repo+" data key"), map[string]string{"owner": c.repo}, ""); err != nil {
			t.Fatalf("%s stores its own key: %v", c.repo, err)
		}
		if _, err := c.admin.SetPolicy(ctx, "repo/"+c.repo, airlinePolicy); err != nil {
			t.Fatalf("%s stores its repository policy: %v", c.repo, err)
		}
		if _, err := c.admin.SetPolicy(ctx, "resource/"+c.repo+"/dataset-key/d1", airlinePolicy); err != nil {
			t.Fatalf("%s stores its resource policy: %v", c.repo, err)
		}
	}
}

// otherOps are every owner-API operation on the resources and policies of
// repository repo, as a key that does not own it would try them.
func otherOps(repo string) map[string]func(ctx context.Context, c *AdminClient) error {
	path := repo + "/dataset-key/d1"
	return map[string]func(ctx context.Context, c *AdminClient) error{
		"read metadata": func(ctx context.Context, c *AdminClient) error { _, err := c.Get(ctx, path); return err },
		"overwrite": func(ctx context.Context, c *AdminClient) error {
			_, err := c.Put(ctx, path, []byte("mine now"), nil, "")
			return err
		},
		"put new": func(ctx context.Context, c *AdminClient) error {
			_, err := c.Put(ctx, repo+"/dataset-key/planted", []byte("planted"), nil, "")
			return err
		},
		"delete":           func(ctx context.Context, c *AdminClient) error { _, err := c.Delete(ctx, path); return err },
		"list repository":  func(ctx context.Context, c *AdminClient) error { _, err := c.List(ctx, repo+"/"); return err },
		"list name prefix": func(ctx context.Context, c *AdminClient) error { _, err := c.List(ctx, repo); return err },
		"get repo policy":  func(ctx context.Context, c *AdminClient) error { _, err := c.Policy(ctx, "repo/"+repo); return err },
		"put repo policy": func(ctx context.Context, c *AdminClient) error {
			_, err := c.SetPolicy(ctx, "repo/"+repo, "package kura.release\nallow := true")
			return err
		},
		"get policy": func(ctx context.Context, c *AdminClient) error { _, err := c.Policy(ctx, "resource/"+path); return err },
		"put policy": func(ctx context.Context, c *AdminClient) error {
			_, err := c.SetPolicy(ctx, "resource/"+path, "package kura.release\nallow := true")
			return err
		},
		"get missing policy": func(ctx context.Context, c *AdminClient) error {
			_, err := c.Policy(ctx, "resource/"+repo+"/key/none")
			return err
		},
	}
}

// wantNotYours checks that err is the 403 not-your-tenant refusal.
func wantNotYours(t *testing.T, what string, err error) {
	t.Helper()
	var re *RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusForbidden || re.Type != web.ProblemTypeBase+"not-your-tenant" || !errors.Is(err, ErrNotYourTenant) {
		t.Errorf("%s: %v, want 403 not-your-tenant", what, err)
	}
}

// TestTenantsIsolated: on one broker, each of two rival owners tries every
// owner-API operation on the other's resources and policies: each is
// refused with 403 not-your-tenant, logged with its reason and recorded in
// the victim's audit trail, never the attacker's; nothing of the victim's
// changes; their own operations still work.
func TestTenantsIsolated(t *testing.T) {
	ctx := context.Background()
	ts := newTenants(t)
	ts.seed(t)
	pairs := []struct {
		name             string
		attacker, victim *AdminClient
		attackerRepo     string // also the attacker's key name
		victimRepo       string
	}{
		{"carrier→airline", ts.carrier, ts.airline, "carrier", "airline"},
		{"carrier→airline-archive", ts.carrier, ts.airline, "carrier", "airline-archive"},
		{"airline→carrier", ts.airline, ts.carrier, "airline", "carrier"},
	}
	for _, p := range pairs {
		before, _ := p.victim.Audit(ctx, 0, 1000)
		ops := otherOps(p.victimRepo)
		for name, op := range ops {
			wantNotYours(t, p.name+" "+name, op(ctx, p.attacker))
		}
		// A resource of one's own bound to the other's policy.
		_, err := p.attacker.Put(ctx, p.attackerRepo+"/key/borrowed", []byte("x"), nil, "repo/"+p.victimRepo)
		wantNotYours(t, p.name+" bind to the other's policy", err)
		if _, err := p.attacker.Get(ctx, p.attackerRepo+"/key/borrowed"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: the resource bound to the other's policy was stored: %v", p.name, err)
		}

		// The victim's audit trail shows each attempt, by the attacker's
		// key, with its reason; the attacker's shows none of them.
		after, err := p.victim.Audit(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		refusals := 0
		for _, rec := range after[len(before):] {
			if rec.Decision != store.DecisionAdminRefused || rec.Requester != "admin:"+p.attackerRepo ||
				!strings.Contains(rec.Reason, "not your tenant") || repoOf(rec.Resource) != p.victimRepo {
				t.Errorf("%s: victim's audit record %+v", p.name, rec)
			}
			refusals++
		}
		if refusals != len(ops) {
			t.Errorf("%s: %d refusals in the victim's audit trail, want %d", p.name, refusals, len(ops))
		}
		mine, err := p.attacker.Audit(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range mine {
			if repoOf(rec.Resource) == p.victimRepo {
				t.Errorf("%s: the attacker's audit trail shows %+v", p.name, rec)
			}
		}
	}

	// Nothing of either tenant changed; their own operations still work.
	for _, c := range []struct {
		admin *AdminClient
		repo  string
	}{{ts.airline, "airline"}, {ts.carrier, "carrier"}} {
		m, err := c.admin.Get(ctx, c.repo+"/dataset-key/d1")
		if err != nil || m.Version != 1 || m.CreatedBy != "admin:"+c.repo {
			t.Errorf("%s's key after the attempts: %+v, %v", c.repo, m, err)
		}
		if p, err := c.admin.Policy(ctx, "repo/"+c.repo); err != nil || p.Version != 1 || p.Rego != airlinePolicy {
			t.Errorf("%s's policy after the attempts: %+v, %v", c.repo, p, err)
		}
		ms, err := c.admin.List(ctx, "")
		if err != nil || len(ms) != 1 || ms[0].Path != c.repo+"/dataset-key/d1" {
			t.Errorf("%s lists %+v, %v; want its own key alone", c.repo, ms, err)
		}
		if _, err := c.admin.Put(ctx, c.repo+"/key/own", []byte("v"), nil, "repo/"+c.repo); err != nil {
			t.Errorf("%s binds its own policy: %v", c.repo, err)
		}
		if _, err := c.admin.Delete(ctx, c.repo+"/key/own"); err != nil {
			t.Errorf("%s deletes its own: %v", c.repo, err)
		}
		// The default release policy is the platform's: a tenant reads it
		// (it governs its keys where it has no policy) but never writes it.
		if _, err := c.admin.Policy(ctx, "default"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s reads the default policy: %v", c.repo, err)
		}
		_, err = c.admin.SetPolicy(ctx, "default", "package kura.release\nallow := true")
		wantNotYours(t, c.repo+" stores the default policy", err)
		_, err = c.admin.Tenants(ctx)
		wantNotYours(t, c.repo+" lists the tenants", err)
	}
	if _, err := ts.airline.List(ctx, "airline-archive/"); err != nil {
		t.Errorf("the airline lists its second repository: %v", err)
	}
	if _, err := ts.airline.List(ctx, "air"); err != nil {
		t.Errorf("the airline lists by a prefix of its repositories' names: %v", err)
	}

	// Every refusal is logged with its reason and the key that asked.
	n := 0
	for line := range strings.Lines(ts.logs.String()) {
		var l struct{ Msg, By, Reason string }
		json.Unmarshal([]byte(line), &l)
		if l.Msg == "admin request refused" && l.By != "" {
			if !strings.Contains(l.Reason, "not your tenant") {
				t.Errorf("refusal logged without its reason: %s", line)
			}
			n++
		}
	}
	if want := 3*(len(otherOps("x"))+1) + 4; n != want {
		t.Errorf("%d refusals logged, want %d", n, want)
	}
}

// TestTenantReleaseAudit: a key-release decision is in the audit trail of
// the resource's owner only.
func TestTenantReleaseAudit(t *testing.T) {
	ctx := context.Background()
	ts := newTenants(t)
	ts.seed(t)
	resp, err := http.Get(ts.srv.URL + "/kbs/v0/resource/airline/dataset-key/d1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	has := func(c *AdminClient) bool {
		recs, err := c.Audit(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(recs, func(r store.AuditRecord) bool {
			return r.Decision == store.DecisionRefused && r.Resource == "airline/dataset-key/d1"
		})
	}
	if !has(ts.airline) || has(ts.carrier) || has(ts.operator) {
		t.Errorf("the refused release is in the audit of the airline %v, the carrier %v, the operator %v; want the airline's alone",
			has(ts.airline), has(ts.carrier), has(ts.operator))
	}
}

// TestOperatorKey: the operator manages the default release policy and
// lists the tenants, and is refused every tenant's resource, policy and
// audit record.
func TestOperatorKey(t *testing.T) {
	ctx := context.Background()
	ts := newTenants(t)
	ts.seed(t)
	if _, err := ts.operator.SetPolicy(ctx, "default", DefaultReleasePolicy); err != nil {
		t.Fatalf("the operator stores the default policy: %v", err)
	}
	if p, err := ts.operator.Policy(ctx, "default"); err != nil || p.CreatedBy != "admin:ops" {
		t.Errorf("the operator reads the default policy: %+v, %v", p, err)
	}
	list, err := ts.operator.Tenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Tenant{
		{Name: "airline", KeyID: AdminKeyID(ts.airline.Key.Public().(ed25519.PublicKey)), Repositories: []string{"airline", "airline-archive"}},
		{Name: "carrier", KeyID: AdminKeyID(ts.carrier.Key.Public().(ed25519.PublicKey)), Repositories: []string{"carrier"}},
		{Name: "ops", KeyID: AdminKeyID(ts.operator.Key.Public().(ed25519.PublicKey)), Operator: true},
	}
	if !reflect.DeepEqual(list, want) {
		t.Errorf("tenants = %+v, want %+v", list, want)
	}
	for _, repo := range []string{"airline", "carrier"} {
		for name, op := range otherOps(repo) {
			wantNotYours(t, "operator "+name+" of "+repo, op(ctx, ts.operator))
		}
	}
	if ms, err := ts.operator.List(ctx, ""); err != nil || len(ms) != 0 {
		t.Errorf("the operator lists %+v, %v; want nothing", ms, err)
	}
	// The operator's audit trail holds only what no tenant owns: here the
	// tenants' attempts on the default policy.
	if _, err := ts.carrier.SetPolicy(ctx, "default", "package kura.release\nallow := true"); !errors.Is(err, ErrNotYourTenant) {
		t.Fatal(err)
	}
	recs, err := ts.operator.Audit(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Requester != "admin:carrier" || recs[0].PolicyID != "default" || recs[0].Resource != "" {
		t.Errorf("operator's audit = %+v, want the carrier's attempt on the default policy alone", recs)
	}
	// The tenants see the operator's attempts on their repositories.
	airline, _ := ts.airline.Audit(ctx, 0, 1000)
	if !slices.ContainsFunc(airline, func(r store.AuditRecord) bool { return r.Requester == "admin:ops" }) {
		t.Error("the airline's audit trail does not show the operator's attempts")
	}
}

// TestTenantAuditPages: a tenant's audit page is filled from the whole
// trail, so that a short page still means its end.
func TestTenantAuditPages(t *testing.T) {
	ctx := context.Background()
	ts := newTenants(t)
	for i := range 2*auditScan + 10 {
		resource := "carrier/key/x"
		if i%500 == 0 {
			resource = "airline/key/x"
		}
		if _, err := ts.store.AppendAudit(ctx, &store.AuditRecord{Decision: store.DecisionRefused, Resource: resource}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := ts.airline.Audit(ctx, 0, 3)
	if err != nil || len(recs) != 3 || recs[0].Seq != 1 || recs[2].Seq != 1001 {
		t.Fatalf("airline's first page: %+v, %v", recs, err)
	}
	recs, err = ts.airline.Audit(ctx, recs[2].Seq, 3)
	if err != nil || len(recs) != 2 || recs[0].Seq != 1501 || recs[1].Seq != 2001 {
		t.Errorf("airline's second page: %+v, %v", recs, err)
	}
	if recs, err := ts.carrier.Audit(ctx, 0, 1000); err != nil || len(recs) != 1000 || recs[0].Seq != 2 {
		t.Errorf("carrier's page: %d records from %d, %v", len(recs), recs[0].Seq, err)
	}
}

// TestLoadAdmins: authorized-keys lines name their repositories (repos=),
// default to the one named like the key, or mark the operator; a malformed
// line, a name or key given twice, a repository owned by two keys, or a
// file others can write is refused.
func TestLoadAdmins(t *testing.T) {
	a, _, _ := ed25519.GenerateKey(rand.Reader)
	b, _, _ := ed25519.GenerateKey(rand.Reader)
	c, _, _ := ed25519.GenerateKey(rand.Reader)
	line := func(pub ed25519.PublicKey, rest string) string {
		return AuthorizedKeyLine(pub, "") + rest // AuthorizedKeyLine(pub, "") ends in a space
	}
	dir := t.TempDir()
	load := func(content string, mode os.FileMode) (*Admins, error) {
		path := filepath.Join(dir, "admins")
		os.Remove(path)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return LoadAdmins(path, nil)
	}
	for _, ok := range []struct {
		name, content string
		owners        map[string]string // repository → key name
		operators     []string
	}{
		{"repos=", line(a, "airline repos=airline,airline-archive") + "\n", map[string]string{"airline": "airline", "airline-archive": "airline"}, nil},
		{"default", "# comment\n\n" + line(a, "carrier") + "\n", map[string]string{"carrier": "carrier"}, nil},
		{"repos= not named like the key", line(a, "alice@example.com repos=alice") + "\n" + line(b, "bob repos=b1,b2"), map[string]string{"alice": "alice@example.com", "b1": "bob", "b2": "bob"}, nil},
		{"operator", line(a, "airline") + "\n" + line(b, "ops operator") + "\n" + line(c, "ops2 operator"), map[string]string{"airline": "airline"}, []string{"ops", "ops2"}},
		{"tabs and spaces", "  ed25519\t" + strings.TrimPrefix(line(a, "x  repos=r"), "ed25519 ") + "  \n", map[string]string{"r": "x"}, nil},
	} {
		got, err := load(ok.content, 0o644)
		if err != nil {
			t.Errorf("%s: %v", ok.name, err)
			continue
		}
		owners := map[string]string{}
		var ops []string
		for _, k := range got.tenants() {
			for _, r := range k.Repositories {
				owners[r] = k.Name
			}
			if k.Operator {
				ops = append(ops, k.Name)
			}
		}
		if !maps.Equal(owners, ok.owners) || !slices.Equal(ops, ok.operators) {
			t.Errorf("%s: owners %v operators %v, want %v %v", ok.name, owners, ops, ok.owners, ok.operators)
		}
	}

	for _, bad := range []struct{ name, content, want string }{
		{"empty", "# nobody\n", "no keys"},
		{"two fields", "ed25519 " + strings.Fields(line(a, "x"))[1] + "\n", "want \"ed25519"},
		{"five fields", line(a, "x repos=x operator"), "want \"ed25519"},
		{"other algorithm", strings.Replace(line(a, "x"), "ed25519", "ssh-ed25519", 1), "want \"ed25519"},
		{"bad base64", "ed25519 !!!! x\n", "not a base64 Ed25519 public key"},
		{"short key", "ed25519 AAAA x\n", "not a base64 Ed25519 public key"},
		{"unknown option", line(a, "x admin"), `unknown option "admin"`},
		{"empty repos", line(a, "x repos="), "empty repository name"},
		{"empty repo in list", line(a, "x repos=a,,b"), "empty repository name"},
		{"bad repository", line(a, "x repos=a/b"), `repository "a/b" is not a repository name`},
		{"name is no repository", line(a, "alice@example.com"), "its name is not a repository name"},
		{"same repository twice", line(a, "airline") + "\n" + line(b, "rival repos=airline"), "repository airline is owned by two keys, airline and rival"},
		{"same repository in one line", line(a, "x repos=r,r"), "repository r is owned by two keys, x and x"},
		{"same name twice", line(a, "x repos=r1") + "\n" + line(b, "x repos=r2"), "two keys are named x"},
		{"same key twice", line(a, "x") + "\n" + line(a, "y"), "keys x and y are the same key"},
	} {
		_, err := load(bad.content, 0o644)
		if !errors.Is(err, ErrAdminKeys) || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), filepath.Join(dir, "admins")) {
			t.Errorf("%s: %v, want ErrAdminKeys %q naming the file", bad.name, err, bad.want)
		}
	}
	if _, err := NewAdmins([]AdminKey{{Name: "ops", Public: a, Operator: true, Repos: []string{"r"}}}, nil); !errors.Is(err, ErrAdminKeys) {
		t.Errorf("an operator key owning repositories: %v", err)
	}

	// A file that group or others can write is refused, naming the file
	// and the chmod that fixes it.
	for _, mode := range []os.FileMode{0o666, 0o664, 0o646} {
		_, err := load(line(a, "x")+"\n", mode)
		if !errors.Is(err, keyfile.ErrInsecure) || !strings.Contains(err.Error(), "chmod 644") || !strings.Contains(err.Error(), filepath.Join(dir, "admins")) {
			t.Errorf("mode %04o: %v, want ErrInsecure naming the file and chmod 644", mode, err)
		}
	}
	if _, err := load(line(a, "x")+"\n", 0o600); err != nil {
		t.Errorf("mode 0600: %v", err)
	}
}
