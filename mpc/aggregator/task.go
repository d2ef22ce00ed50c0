package aggregator

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/kura-cc/kura/internal/keyfile"
	"github.com/kura-cc/kura/mpc/prio"
	"github.com/kura-cc/kura/party"
)

// Role is an aggregator's part in a task.
type Role string

// The two aggregator roles.
const (
	// RoleLeader takes the clients' reports and drives aggregation.
	RoleLeader Role = "leader"
	// RoleHelper prepares the reports the leader sends it.
	RoleHelper Role = "helper"
)

// TaskFileVersion is the only task file version.
const TaskFileVersion = 1

// MaxTaskFileSize bounds a task file.
const MaxTaskFileSize = 256 << 10

// Task is one secret-shared aggregation: what is measured, by whom it is
// aggregated and collected, and the output threshold. A task file is its
// JSON form (package doc); an aggregator's task file also holds the
// verify key and the aggregator's role, a public task file (for clients
// and the collector) holds neither.
type Task struct {
	// Prio is the measurement type and parameters, the task id, and for
	// an aggregator the verify key.
	Prio *prio.Task
	// LeaderURL and HelperURL are the aggregators' base URLs.
	LeaderURL, HelperURL string
	// Leader and Helper are the aggregators' party cards: the leader signs
	// its aggregation jobs, clients encrypt the helper's input share to
	// the helper's receiving key.
	Leader, Helper *party.Card
	// Collector is the party card of the only party that may collect;
	// aggregate shares are encrypted to its receiving key.
	Collector *party.Card
	// MinBatchSize is the output threshold: the batch is not collected
	// with fewer reports.
	MinBatchSize uint64
	// Role is this aggregator's role; "" in a public task file.
	Role Role
}

// taskJSON is the task file's encoding.
type taskJSON struct {
	Version      int             `json:"version"`
	TaskID       string          `json:"task_id"`
	VDAF         vdafJSON        `json:"vdaf"`
	LeaderURL    string          `json:"leader_url"`
	HelperURL    string          `json:"helper_url"`
	Leader       json.RawMessage `json:"leader"`
	Helper       json.RawMessage `json:"helper"`
	Collector    json.RawMessage `json:"collector"`
	MinBatchSize uint64          `json:"min_batch_size"`
	Role         Role            `json:"role,omitempty"`
	VerifyKey    string          `json:"verify_key,omitempty"`
}

type vdafJSON struct {
	Type   string `json:"type"`
	Bits   uint   `json:"bits,omitempty"`
	Length uint   `json:"length,omitempty"`
}

// typeNames are the task file's names of the measurement types.
var typeNames = [...]struct {
	name string
	typ  prio.Type
}{{"count", prio.TypeCount}, {"sum", prio.TypeSum}, {"histogram", prio.TypeHistogram}, {"sumvec", prio.TypeSumVec}}

// ParseType returns the measurement type named name: count, sum,
// histogram or sumvec.
func ParseType(name string) (prio.Type, error) {
	for _, n := range typeNames {
		if n.name == name {
			return n.typ, nil
		}
	}
	return 0, fmt.Errorf("%w: vdaf type %q (want count, sum, histogram or sumvec)", ErrTaskFile, name)
}

func typeName(t prio.Type) string {
	for _, n := range typeNames {
		if n.typ == t {
			return n.name
		}
	}
	return t.String()
}

// ID returns the task id as 64 lowercase hex digits, as URLs carry it.
func (t *Task) ID() string { return hex.EncodeToString(t.Prio.ID[:]) }

// Public returns a copy of t without its verify key and role, for clients
// and the collector.
func (t *Task) Public() *Task {
	c := *t
	c.Prio = t.Prio.Public()
	c.Role = ""
	return &c
}

// Marshal returns t as an indented task file with a final newline.
func (t *Task) Marshal() ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	j := taskJSON{Version: TaskFileVersion, TaskID: t.ID(), LeaderURL: t.LeaderURL, HelperURL: t.HelperURL,
		MinBatchSize: t.MinBatchSize, Role: t.Role,
		VDAF: vdafJSON{Type: typeName(t.Prio.Type), Bits: t.Prio.Bits, Length: t.Prio.Length}}
	if t.Role != "" {
		j.VerifyKey = hex.EncodeToString(t.Prio.VerifyKey[:])
	}
	for _, c := range []struct {
		dst  *json.RawMessage
		card *party.Card
	}{{&j.Leader, t.Leader}, {&j.Helper, t.Helper}, {&j.Collector, t.Collector}} {
		b, err := json.Marshal(c.card)
		if err != nil {
			return nil, err
		}
		*c.dst = b
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ParseTask parses a task file, public or an aggregator's, and checks it:
// known fields only, supported parameters, valid cards, http or https
// URLs, a verify key exactly when a role is set.
func ParseTask(data []byte) (*Task, error) {
	if len(data) > MaxTaskFileSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrTaskFile, MaxTaskFileSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var j taskJSON
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTaskFile, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the task", ErrTaskFile)
	}
	if j.Version != TaskFileVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrTaskFile, j.Version, TaskFileVersion)
	}
	typ, err := ParseType(j.VDAF.Type)
	if err != nil {
		return nil, err
	}
	t := &Task{Prio: &prio.Task{Type: typ, Bits: j.VDAF.Bits, Length: j.VDAF.Length, Aggregators: prio.Aggregators},
		LeaderURL: j.LeaderURL, HelperURL: j.HelperURL, MinBatchSize: j.MinBatchSize, Role: j.Role}
	if err := decodeHex(t.Prio.ID[:], j.TaskID, "task_id"); err != nil {
		return nil, err
	}
	if (j.Role == "") != (j.VerifyKey == "") {
		return nil, fmt.Errorf("%w: an aggregator's task file has both role and verify_key, a public one neither", ErrTaskFile)
	}
	if j.VerifyKey != "" {
		if err := decodeHex(t.Prio.VerifyKey[:], j.VerifyKey, "verify_key"); err != nil {
			return nil, err
		}
	}
	for _, c := range []struct {
		name string
		raw  json.RawMessage
		dst  **party.Card
	}{{"leader", j.Leader, &t.Leader}, {"helper", j.Helper, &t.Helper}, {"collector", j.Collector, &t.Collector}} {
		if len(c.raw) == 0 {
			return nil, fmt.Errorf("%w: %s card missing", ErrTaskFile, c.name)
		}
		card, err := party.ParseCard(c.raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %s card: %w", ErrTaskFile, c.name, err)
		}
		*c.dst = card
	}
	if err := t.check(); err != nil {
		return nil, err
	}
	return t, nil
}

// LoadTask reads an aggregator's task file, refusing one that group or
// others can read or write (it holds the verify key) and a public one.
func LoadTask(path string) (*Task, error) {
	data, err := keyfile.ReadSecret(path)
	if err != nil {
		return nil, fmt.Errorf("task file: %w", err)
	}
	t, err := ParseTask(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if t.Role == "" {
		return nil, fmt.Errorf("%s: %w: a public task file; an aggregator needs its own (role and verify_key)", path, ErrTaskFile)
	}
	return t, nil
}

// check validates what Marshal and ParseTask both need.
func (t *Task) check() error {
	if t.Prio == nil || t.Leader == nil || t.Helper == nil || t.Collector == nil {
		return fmt.Errorf("%w: incomplete task", ErrTaskFile)
	}
	if err := t.Prio.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrTaskFile, err)
	}
	switch t.Role {
	case "", RoleLeader, RoleHelper:
	default:
		return fmt.Errorf("%w: role %q (want leader or helper)", ErrTaskFile, t.Role)
	}
	if t.Role != "" && t.Prio.VerifyKey == (prio.VerifyKey{}) {
		return fmt.Errorf("%w: zero verify_key", ErrTaskFile)
	}
	if t.MinBatchSize < 1 {
		return fmt.Errorf("%w: min_batch_size must be at least 1", ErrTaskFile)
	}
	for _, u := range []struct{ name, v string }{{"leader_url", t.LeaderURL}, {"helper_url", t.HelperURL}} {
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("%w: %s %q is not an http(s) URL", ErrTaskFile, u.name, u.v)
		}
	}
	if t.Leader.Fingerprint == t.Helper.Fingerprint {
		return fmt.Errorf("%w: leader and helper are the same party; the two aggregators must be run by different organisations", ErrTaskFile)
	}
	return nil
}

func decodeHex(dst []byte, s, field string) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(dst) || strings.ToLower(s) != s {
		return fmt.Errorf("%w: %s must be %d lowercase hex digits", ErrTaskFile, field, 2*len(dst))
	}
	copy(dst, b)
	return nil
}

// endpoint returns base's path p, for base a task URL.
func endpoint(base, p string) string { return strings.TrimSuffix(base, "/") + p }
