package collab

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/party"
)

// Limits on manifest contents.
const (
	MaxSQLSize      = 64 << 10 // bytes of custom SQL
	maxDescription  = 4 << 10
	maxInList       = 1000
	maxErrorsListed = 20
)

var (
	collabIDRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	sqlIdentRE   = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	analysisIDRE = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)
	teeRE        = regexp.MustCompile(`^[a-z0-9]{1,16}$`)
	hexRE        = regexp.MustCompile(`^[0-9a-fA-F]+$`)
)

// validator collects errors, each naming the path of the offending value.
type validator struct {
	errs []error
}

func (v *validator) errf(path, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%w: %s: %s", ErrInvalidManifest, path, fmt.Sprintf(format, args...)))
}

func (v *validator) err() error {
	if len(v.errs) > maxErrorsListed {
		v.errs = append(v.errs[:maxErrorsListed], fmt.Errorf("%w: and %d more errors", ErrInvalidManifest, len(v.errs)-maxErrorsListed))
	}
	return errors.Join(v.errs...)
}

// Validate checks the manifest: format version, id syntax, unique names,
// party cards (fingerprints included), roles, dataset descriptors and
// output policies, analyses against the schemas and the strictest of their
// owners' output policies, receivers, worker reference values and the
// verifier list (required from format 2 on, absent before). An
// aggregate analysis's Reads may be empty (it is derived); when given it
// must equal the derived list. All problems are reported, joined, each
// wrapping ErrInvalidManifest and naming its path.
func (m *Manifest) Validate() error { return m.validate(false) }

// validate checks the manifest; stored manifests must also list Reads.
func (m *Manifest) validate(stored bool) error {
	v := &validator{}
	if m.Format != FormatVersion && m.Format != LegacyFormatVersion {
		v.errf("kura_manifest", "format %d, want %d", m.Format, FormatVersion)
	}
	if !collabIDRE.MatchString(m.ID) {
		v.errf("id", "%q: want 1 to 63 of a-z 0-9 . _ - starting with a letter or digit", m.ID)
	}
	if len(m.Description) > maxDescription {
		v.errf("description", "longer than %d bytes", maxDescription)
	}
	if m.Previous != "" && !hexHash.MatchString(m.Previous) {
		v.errf("previous", "want 64 lowercase hex characters")
	}
	v.parties(m)
	v.datasets(m)
	for i, r := range m.Receivers {
		v.receiver(m, fmt.Sprintf("receivers[%d]", i), r, m.Receivers[:i])
	}
	seen := map[string]bool{}
	for i := range m.Analyses {
		a := &m.Analyses[i]
		path := fmt.Sprintf("analyses[%d]", i)
		if !analysisIDRE.MatchString(a.ID) {
			v.errf(path+".id", "%q: want 1 to 64 of a-z 0-9 _ -", a.ID)
		} else if seen[a.ID] {
			v.errf(path+".id", "%q appears twice", a.ID)
		}
		seen[a.ID] = true
		v.analysis(m, path, a, stored)
	}
	v.worker(m)
	v.verifiers(m)
	if m.Expires != "" {
		if t, err := time.Parse(time.RFC3339, m.Expires); err != nil || t.UTC().Format(time.RFC3339) != m.Expires {
			v.errf("expires", "%q: want an RFC 3339 time in UTC with whole seconds, e.g. 2027-06-30T00:00:00Z", m.Expires)
		}
	}
	if _, err := canonicalOf(m); err != nil {
		v.errf("manifest", "no canonical JSON encoding: %v", err)
	}
	return v.err()
}

func (v *validator) parties(m *Manifest) {
	if len(m.Parties) == 0 {
		v.errf("parties", "no parties")
	}
	names := map[string]bool{}
	keys := map[string]string{}
	for i := range m.Parties {
		p := &m.Parties[i]
		path := fmt.Sprintf("parties[%d]", i)
		if p.Name == "" {
			v.errf(path+".name", "missing")
		} else if names[p.Name] {
			v.errf(path+".name", "%q appears twice", p.Name)
		}
		names[p.Name] = true
		if len(p.Roles) == 0 {
			v.errf(path+".roles", "no roles: give some of data_provider, analyst, result_receiver, auditor")
		}
		for j, r := range p.Roles {
			switch r {
			case RoleDataProvider, RoleAnalyst, RoleResultReceiver, RoleAuditor:
			default:
				v.errf(fmt.Sprintf("%s.roles[%d]", path, j), "unknown role %q: want data_provider, analyst, result_receiver or auditor", r)
			}
			if slices.Contains(p.Roles[:j], r) {
				v.errf(fmt.Sprintf("%s.roles[%d]", path, j), "%q listed twice", r)
			}
		}
		if p.Card == nil {
			v.errf(path+".card", "missing: give the party's card (or card_file: card.json from kura party init)")
			continue
		}
		if err := checkCard(p.Card); err != nil {
			v.errf(path+".card", "%v", err)
			continue
		}
		if p.Card.Name != p.Name {
			v.errf(path+".card", "the card is for %q, the party is %q", p.Card.Name, p.Name)
		}
		if other, ok := keys[string(p.Card.SigningKey)]; ok {
			v.errf(path+".card", "same signing key as party %q", other)
		}
		keys[string(p.Card.SigningKey)] = p.Name
	}
}

// checkCard applies party.ParseCard to an inline card.
func checkCard(c *party.Card) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = party.ParseCard(b)
	return err
}

func (v *validator) datasets(m *Manifest) {
	ids := map[string]bool{}
	resources := map[string]string{}
	digests := map[string]string{}
	for i := range m.Datasets {
		d := &m.Datasets[i]
		path := fmt.Sprintf("datasets[%d]", i)
		if !sqlIdentRE.MatchString(d.ID) {
			v.errf(path+".id", "%q: want a SQL identifier ([a-z_][a-z0-9_]*, at most 63 bytes)", d.ID)
		} else if ids[d.ID] {
			v.errf(path+".id", "%q appears twice", d.ID)
		}
		ids[d.ID] = true
		if p := m.Party(d.Owner); p == nil {
			v.errf(path+".owner", "no party %q", d.Owner)
		} else if !p.HasRole(RoleDataProvider) {
			v.errf(path+".owner", "party %q does not have the data_provider role", d.Owner)
		}
		v.descriptor(path+".descriptor", &d.Descriptor, d.Owner)
		res := d.Descriptor.KeyBroker.URL + " " + d.Descriptor.KeyBroker.Resource
		if other, ok := resources[res]; ok {
			v.errf(path+".descriptor.key_broker", "same key-broker resource as dataset %q", other)
		}
		resources[res] = d.ID
		if other, ok := digests[d.Descriptor.SealedSHA256]; ok && d.Descriptor.SealedSHA256 != "" {
			v.errf(path+".descriptor.sealed_sha256", "same sealed file as dataset %q", other)
		}
		digests[d.Descriptor.SealedSHA256] = d.ID
		v.outputPolicy(path+".output_policy", d)
	}
}

func (v *validator) descriptor(path string, d *Descriptor, owner string) {
	if d.Version != 1 {
		v.errf(path+".version", "%d, want 1", d.Version)
	}
	if d.DatasetID == "" {
		v.errf(path+".dataset_id", "missing")
	}
	if d.Owner == "" || d.Owner != owner {
		v.errf(path+".owner", "%q, but the dataset's owner is %q", d.Owner, owner)
	}
	if d.Format != "parquet" {
		v.errf(path+".format", "%q, want parquet", d.Format)
	}
	if d.Schema == nil {
		v.errf(path+".schema", "missing")
	} else if err := d.Schema.Validate(); err != nil {
		v.errf(path+".schema", "%v", err)
	}
	if d.KeyID == "" || !hexRE.MatchString(d.KeyID) {
		v.errf(path+".key_id", "want hex")
	}
	if !hexHash.MatchString(d.SealedSHA256) {
		v.errf(path+".sealed_sha256", "want 64 lowercase hex characters")
	}
	if d.SealedSize <= 0 {
		v.errf(path+".sealed_size", "%d, want the sealed file's size in bytes", d.SealedSize)
	}
	if u, err := url.Parse(d.KeyBroker.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		v.errf(path+".key_broker.url", "%q: want an http or https URL", d.KeyBroker.URL)
	}
	if segs := strings.Split(d.KeyBroker.Resource, "/"); len(segs) != 3 || slices.Contains(segs, "") {
		v.errf(path+".key_broker.resource", "%q: want repository/type/tag", d.KeyBroker.Resource)
	}
	if d.KeyBroker.Version < 0 {
		v.errf(path+".key_broker.version", "negative")
	}
	if d.RegisteredAt != "" {
		if _, err := time.Parse(time.RFC3339, d.RegisteredAt); err != nil {
			v.errf(path+".registered_at", "%q: want RFC 3339", d.RegisteredAt)
		}
	}
}

func (v *validator) outputPolicy(path string, d *Dataset) {
	op := &d.OutputPolicy
	if op.MinDistinctIdentities < 1 {
		v.errf(path+".min_distinct_identities", "%d, want at least 1 (10 or more recommended)", op.MinDistinctIdentities)
	}
	for i, f := range op.AllowedAggregates {
		p := fmt.Sprintf("%s.allowed_aggregates[%d]", path, i)
		if !slices.Contains(AggregateFunctions(), f) {
			v.errf(p, "unknown function %q: want one of %s", f, funcList(AggregateFunctions()))
		} else if slices.Contains(op.AllowedAggregates[:i], f) {
			v.errf(p, "%q listed twice", f)
		}
	}
	for i, c := range op.AllowedColumns {
		p := fmt.Sprintf("%s.allowed_columns[%d]", path, i)
		col := column(d, c)
		switch {
		case d.Descriptor.Schema == nil:
		case col == nil:
			v.errf(p, "dataset %q has no column %q", d.ID, c)
		case col.Identity:
			v.errf(p, "%q is an identity column: identity columns are never output", c)
		case col.Join:
			v.errf(p, "%q is a join column: join columns are never output", c)
		case slices.Contains(op.AllowedColumns[:i], c):
			v.errf(p, "%q listed twice", c)
		}
	}
	if op.PrivacyBudget != "" {
		if _, err := parseEpsilon(op.PrivacyBudget); err != nil {
			v.errf(path+".privacy_budget", "%v", err)
		}
	}
}

func column(d *Dataset, name string) *table.Column {
	if d.Descriptor.Schema == nil {
		return nil
	}
	for i := range d.Descriptor.Schema.Columns {
		if d.Descriptor.Schema.Columns[i].Name == name {
			return &d.Descriptor.Schema.Columns[i]
		}
	}
	return nil
}

func funcList(fs []AggFunc) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

func (v *validator) receiver(m *Manifest, path, name string, before []string) {
	p := m.Party(name)
	switch {
	case p == nil:
		v.errf(path, "no party %q", name)
	case !p.HasRole(RoleResultReceiver):
		v.errf(path, "party %q does not have the result_receiver role", name)
	case slices.Contains(before, name):
		v.errf(path, "%q listed twice", name)
	}
}

func (v *validator) analysis(m *Manifest, path string, a *Analysis, stored bool) {
	if a.MaxRuns < 0 {
		v.errf(path+".max_runs", "%d: want a positive number of runs, or none for no limit", a.MaxRuns)
	}
	for i, r := range a.Receivers {
		v.receiver(m, fmt.Sprintf("%s.receivers[%d]", path, i), r, a.Receivers[:i])
	}
	if len(m.ReceiversOf(a)) == 0 {
		v.errf(path+".receivers", "no receivers: list them here or in the manifest's receivers")
	}
	switch a.Kind {
	case KindAggregate:
		if a.SQL != "" {
			v.errf(path+".sql", "an aggregate analysis has no sql (use kind: sql)")
		}
		if a.Aggregate == nil {
			v.errf(path+".aggregate", "missing")
			return
		}
		v.aggregate(m, path+".aggregate", a.Aggregate)
		derived := a.Aggregate.derivedReads()
		switch {
		case len(a.Reads) == 0 && stored:
			v.errf(path+".reads", "missing: want %q", derived)
		case len(a.Reads) > 0 && !slices.Equal(a.Reads, derived):
			v.errf(path+".reads", "%q, but the aggregate reads %q", a.Reads, derived)
		}
	case KindSQL:
		if a.Aggregate != nil {
			v.errf(path+".aggregate", "a sql analysis has no aggregate")
		}
		if strings.TrimSpace(a.SQL) == "" {
			v.errf(path+".sql", "missing")
		} else if len(a.SQL) > MaxSQLSize {
			v.errf(path+".sql", "longer than %d bytes", MaxSQLSize)
		}
		if len(a.Reads) == 0 {
			v.errf(path+".reads", "missing: a sql analysis lists the datasets it reads")
		}
		for i, id := range a.Reads {
			p := fmt.Sprintf("%s.reads[%d]", path, i)
			if m.Dataset(id) == nil {
				v.errf(p, "no dataset %q", id)
			} else if slices.Contains(a.Reads[:i], id) {
				v.errf(p, "%q listed twice", id)
			}
		}
	default:
		v.errf(path+".kind", "%q: want aggregate or sql", a.Kind)
	}
	v.privacy(m, path, a)
	v.backend(m, path, a)
}

// ref is a resolved "dataset.column" reference.
type ref struct {
	ds  *Dataset
	col *table.Column
}

func (v *validator) aggregate(m *Manifest, path string, g *Aggregate) {
	inQuery := []*Dataset{}
	if d := m.Dataset(g.From); d == nil {
		v.errf(path+".from", "no dataset %q", g.From)
		return
	} else {
		inQuery = append(inQuery, d)
	}
	// resolve finds a column of a dataset among those given.
	resolve := func(p, s string, among []*Dataset) (ref, bool) {
		dsID, colName, ok := strings.Cut(s, ".")
		if !ok {
			v.errf(p, "%q: want dataset.column", s)
			return ref{}, false
		}
		var d *Dataset
		for _, x := range among {
			if x.ID == dsID {
				d = x
			}
		}
		if d == nil {
			if m.Dataset(dsID) == nil {
				v.errf(p, "%q: no dataset %q", s, dsID)
			} else {
				v.errf(p, "%q: dataset %q is not in the query at this point", s, dsID)
			}
			return ref{}, false
		}
		c := column(d, colName)
		if c == nil {
			v.errf(p, "%q: dataset %q has no column %q", s, dsID, colName)
			return ref{}, false
		}
		return ref{d, c}, true
	}
	for i, j := range g.Joins {
		p := fmt.Sprintf("%s.joins[%d]", path, i)
		d := m.Dataset(j.Dataset)
		if d == nil {
			v.errf(p+".dataset", "no dataset %q", j.Dataset)
			return
		}
		if slices.Contains(inQuery, d) {
			v.errf(p+".dataset", "%q is already in the query", j.Dataset)
			return
		}
		l, lok := resolve(p+".left", j.Left, inQuery)
		r, rok := resolve(p+".right", j.Right, []*Dataset{d})
		if lok && !l.col.Join {
			v.errf(p+".left", "%q is not declared join: true in its schema", j.Left)
		}
		if rok && !r.col.Join {
			v.errf(p+".right", "%q is not declared join: true in its schema", j.Right)
		}
		if lok && rok && l.col.Type != r.col.Type {
			v.errf(p, "%q is %s but %q is %s", j.Left, l.col.Type, j.Right, r.col.Type)
		}
		inQuery = append(inQuery, d)
	}
	pol := effective(inQuery)
	// output checks that a column may be output or filtered on.
	output := func(p, s string) (ref, bool) {
		r, ok := resolve(p, s, inQuery)
		if !ok {
			return r, false
		}
		switch {
		case r.col.Identity:
			v.errf(p, "%q is an identity column", s)
		case r.col.Join:
			v.errf(p, "%q is a join column", s)
		case !slices.Contains(pol.AllowedColumns, s):
			v.errf(p, "%q is not in the allowed_columns of %s (dataset %q)", s, r.ds.Owner, r.ds.ID)
		default:
			return r, true
		}
		return r, false
	}
	for i, f := range g.Where {
		p := fmt.Sprintf("%s.where[%d]", path, i)
		r, ok := output(p+".column", f.Column)
		v.filter(p, f, r, ok)
	}
	groupNames := map[string]bool{}
	for i, c := range g.GroupBy {
		p := fmt.Sprintf("%s.group_by[%d]", path, i)
		if slices.Contains(g.GroupBy[:i], c) {
			v.errf(p, "%q listed twice", c)
			continue
		}
		if r, ok := output(p, c); ok {
			groupNames[r.col.Name] = true
		}
	}
	if len(g.Measures) == 0 {
		v.errf(path+".measures", "no measures")
	}
	as := map[string]bool{}
	for i, ms := range g.Measures {
		p := fmt.Sprintf("%s.measures[%d]", path, i)
		if !slices.Contains(AggregateFunctions(), ms.Func) {
			v.errf(p+".fn", "unknown function %q: want one of %s", ms.Func, funcList(AggregateFunctions()))
		} else if !slices.Contains(pol.AllowedAggregates, ms.Func) {
			by := pol.excludedBy(string(ms.Func))
			v.errf(p+".fn", "%q is not allowed by %s", ms.Func, by)
		}
		switch ms.Func {
		case AggCount:
			if ms.Column != "" || ms.Dataset != "" {
				v.errf(p, "count takes no column or dataset")
			}
		case AggCountDistinctIdentities:
			if ms.Column != "" {
				v.errf(p+".column", "count_distinct_identities takes a dataset, not a column")
			}
			var d *Dataset
			for _, x := range inQuery {
				if x.ID == ms.Dataset {
					d = x
				}
			}
			if d == nil {
				v.errf(p+".dataset", "%q is not a dataset of the query", ms.Dataset)
			} else if !hasIdentity(d) {
				v.errf(p+".dataset", "dataset %q has no identity column", ms.Dataset)
			}
		case AggSum, AggAvg, AggMin, AggMax:
			if ms.Dataset != "" {
				v.errf(p+".dataset", "%s takes a column, not a dataset", ms.Func)
			}
			if ms.Column == "" {
				v.errf(p+".column", "missing: %s needs a column", ms.Func)
				break
			}
			r, ok := output(p+".column", ms.Column)
			if !ok {
				break
			}
			numeric := r.col.Type == table.Int64 || r.col.Type == table.Double
			if !numeric && (ms.Func == AggSum || ms.Func == AggAvg || (r.col.Type != table.Date && r.col.Type != table.Timestamp)) {
				v.errf(p+".column", "%s of %q: the column is %s", ms.Func, ms.Column, r.col.Type)
			}
		}
		switch {
		case !sqlIdentRE.MatchString(ms.As):
			v.errf(p+".as", "%q: want a SQL identifier ([a-z_][a-z0-9_]*)", ms.As)
		case as[ms.As]:
			v.errf(p+".as", "%q is used twice", ms.As)
		case groupNames[ms.As]:
			v.errf(p+".as", "%q is also a group-by column", ms.As)
		}
		as[ms.As] = true
	}
}

func hasIdentity(d *Dataset) bool {
	if d.Descriptor.Schema == nil {
		return false
	}
	for _, c := range d.Descriptor.Schema.Columns {
		if c.Identity {
			return true
		}
	}
	return false
}

func (v *validator) filter(p string, f Filter, r ref, colOK bool) {
	switch f.Op {
	case "=", "!=", "<", "<=", ">", ">=":
		if !isScalar(f.Value) {
			v.errf(p+".value", "want a string, number or boolean")
			return
		}
		if colOK {
			v.filterValue(p+".value", f.Value, r.col)
		}
	case "in":
		list, ok := f.Value.([]any)
		if !ok || len(list) == 0 || len(list) > maxInList {
			v.errf(p+".value", "in takes a list of 1 to %d values", maxInList)
			return
		}
		for i, x := range list {
			if !isScalar(x) {
				v.errf(fmt.Sprintf("%s.value[%d]", p, i), "want a string, number or boolean")
			} else if colOK {
				v.filterValue(fmt.Sprintf("%s.value[%d]", p, i), x, r.col)
			}
		}
	default:
		v.errf(p+".op", "%q: want =, !=, <, <=, >, >= or in", f.Op)
	}
}

func isScalar(x any) bool {
	switch x.(type) {
	case string, bool, float64:
		return true
	}
	return false
}

// filterValue checks a filter value against its column's type.
func (v *validator) filterValue(p string, x any, c *table.Column) {
	switch c.Type {
	case table.String:
		if _, ok := x.(string); !ok {
			v.errf(p, "column %q is a string", c.Name)
		}
	case table.Int64:
		f, ok := x.(float64)
		if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			v.errf(p, "column %q is int64: want an integer of magnitude at most 2^53", c.Name)
		}
	case table.Double:
		if _, ok := x.(float64); !ok {
			v.errf(p, "column %q is a double", c.Name)
		}
	case table.Bool:
		if _, ok := x.(bool); !ok {
			v.errf(p, "column %q is a bool", c.Name)
		}
	case table.Date:
		if s, ok := x.(string); !ok {
			v.errf(p, "column %q is a date: want \"YYYY-MM-DD\"", c.Name)
		} else if _, err := time.Parse(time.DateOnly, s); err != nil {
			v.errf(p, "column %q is a date: want \"YYYY-MM-DD\"", c.Name)
		}
	case table.Timestamp:
		if s, ok := x.(string); !ok {
			v.errf(p, "column %q is a timestamp: want RFC 3339", c.Name)
		} else if _, err := time.Parse(time.RFC3339, s); err != nil {
			v.errf(p, "column %q is a timestamp: want RFC 3339", c.Name)
		}
	}
}

func (v *validator) worker(m *Manifest) {
	rv := &m.Worker.ReferenceValues
	if len(rv.Measurements) == 0 {
		v.errf("worker.reference_values.measurements", "none: list the measurements of the worker builds that may see the data")
	}
	for i, ms := range rv.Measurements {
		p := fmt.Sprintf("worker.reference_values.measurements[%d]", i)
		if !teeRE.MatchString(ms.TEE) {
			v.errf(p+".tee", "%q: want snp, tdx or sim", ms.TEE)
		}
		if b, err := hex.DecodeString(ms.Value); err != nil || len(b) == 0 {
			v.errf(p+".value", "want a hex measurement")
		}
	}
}
