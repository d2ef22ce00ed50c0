package collab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kura-cc/kura/party"
)

// Size limits of the documents this package parses.
const (
	MaxManifestSize   = 1 << 20   // a manifest, YAML or JSON
	MaxDescriptorSize = 256 << 10 // a dataset descriptor
)

// ParseManifest parses a manifest written in YAML or JSON, strictly: unknown
// keys, duplicate keys, YAML aliases and tags other than the core scalar
// types are errors. Every party must carry its card inline and every
// dataset its descriptor (card_file and descriptor_file need LoadManifest).
// The datasets an aggregate analysis reads are filled in when not given.
// The manifest must be in FormatVersion (what people write now) and is
// validated; errors wrap ErrInvalidManifest.
func ParseManifest(data []byte) (*Manifest, error) {
	return parseManifest(data, nil)
}

// LoadManifest reads and parses the manifest file at path like
// ParseManifest, and resolves card_file and descriptor_file references
// relative to the file's directory: a card is checked by party.ParseCard
// (fingerprint included) and a descriptor by ParseDescriptor, then both are
// inlined, so the result is self-contained.
func LoadManifest(path string) (*Manifest, error) {
	data, err := readLimited(path, MaxManifestSize)
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	return parseManifest(data, func(name string, limit int64) ([]byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		return readLimited(name, limit)
	})
}

// errTooLarge is readLimited's error for a file over its limit; callers
// wrap it in their sentinel.
var errTooLarge = errors.New("file too large")

// readLimited reads a file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", path, errTooLarge, limit)
	}
	return data, nil
}

// resolver reads a file named in a manifest, at most limit bytes.
type resolver func(name string, limit int64) ([]byte, error)

// manifestSource is a manifest as people write it: parties may name a card
// file and datasets a descriptor file instead of inlining them.
type manifestSource struct {
	Manifest
	Parties  []partySource   `json:"parties"`
	Datasets []datasetSource `json:"datasets"`
}

type partySource struct {
	Party
	CardFile string `json:"card_file"`
}

type datasetSource struct {
	Dataset
	Descriptor     *Descriptor `json:"descriptor"`
	DescriptorFile string      `json:"descriptor_file"`
}

func parseManifest(data []byte, resolve resolver) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidManifest, len(data), MaxManifestSize)
	}
	js, idx, err := yamlToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	var src manifestSource
	if err := decodeStrict(js, &src); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, idx.locate(err))
	}
	m := src.Manifest
	m.Parties, m.Datasets = nil, nil
	var errs []error
	for i, p := range src.Parties {
		path := fmt.Sprintf("parties[%d]", i)
		switch {
		case p.CardFile != "" && p.Card != nil:
			errs = append(errs, fmt.Errorf("%w: %s: give card or card_file, not both", ErrInvalidManifest, path))
		case p.CardFile != "":
			c, err := resolveCard(p.CardFile, resolve)
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: %s.card_file: %w", ErrInvalidManifest, path, err))
			}
			p.Card = c
		}
		m.Parties = append(m.Parties, p.Party)
	}
	for i, d := range src.Datasets {
		path := fmt.Sprintf("datasets[%d]", i)
		switch {
		case d.DescriptorFile != "" && d.Descriptor != nil:
			errs = append(errs, fmt.Errorf("%w: %s: give descriptor or descriptor_file, not both", ErrInvalidManifest, path))
		case d.DescriptorFile != "":
			if resolve == nil {
				errs = append(errs, fmt.Errorf("%w: %s.descriptor_file: file references are resolved only when loading a manifest file (kura collab create)", ErrInvalidManifest, path))
				break
			}
			b, err := resolve(d.DescriptorFile, MaxDescriptorSize)
			if err == nil {
				d.Dataset.Descriptor, err = decodeDescriptor(b)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: %s.descriptor_file: %w", ErrInvalidManifest, path, err))
			}
		case d.Descriptor != nil:
			d.Dataset.Descriptor = *d.Descriptor
		default:
			errs = append(errs, fmt.Errorf("%w: %s: missing descriptor: give descriptor_file (written by kura data register) or descriptor", ErrInvalidManifest, path))
		}
		m.Datasets = append(m.Datasets, d.Dataset)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	m.complete()
	if err := m.checkNew(); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

func resolveCard(name string, resolve resolver) (*party.Card, error) {
	if resolve == nil {
		return nil, errors.New("file references are resolved only when loading a manifest file (kura collab create)")
	}
	b, err := resolve(name, party.MaxCardSize)
	if err != nil {
		return nil, err
	}
	return party.ParseCard(b)
}

// complete fills in the derived Reads of aggregate analyses.
func (m *Manifest) complete() {
	for i := range m.Analyses {
		a := &m.Analyses[i]
		if a.Kind == KindAggregate && a.Aggregate != nil && len(a.Reads) == 0 {
			a.Reads = a.Aggregate.derivedReads()
		}
	}
}

// ParseDescriptor parses a dataset descriptor written by `kura data
// register` (docs/spec/dataset.md §8), strictly, and checks it.
func ParseDescriptor(data []byte) (*Descriptor, error) {
	d, err := decodeDescriptor(data)
	if err != nil {
		return nil, err
	}
	v := &validator{}
	v.descriptor("descriptor", &d, d.Owner)
	if err := v.err(); err != nil {
		return nil, err
	}
	return &d, nil
}

func decodeDescriptor(data []byte) (Descriptor, error) {
	var d Descriptor
	if len(data) > MaxDescriptorSize {
		return d, fmt.Errorf("%w: descriptor: %d bytes, limit %d", ErrInvalidManifest, len(data), MaxDescriptorSize)
	}
	if err := decodeStrict(data, &d); err != nil {
		return d, fmt.Errorf("%w: descriptor: %w", ErrInvalidManifest, err)
	}
	return d, nil
}

// decodeStrict decodes one JSON value, refusing unknown fields and
// trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the document")
	}
	return nil
}

// yamlToJSON converts a single YAML document to JSON, keeping key order,
// and returns where in the YAML each JSON value came from.
func yamlToJSON(data []byte) ([]byte, *sourceIndex, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, errors.New("empty document")
		}
		return nil, nil, err // "yaml: line N: ..."
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, errors.New("more than one YAML document")
	}
	idx := &sourceIndex{}
	if err := idx.write(&doc, "", 0); err != nil {
		return nil, nil, err
	}
	return idx.buf.Bytes(), idx, nil
}

// sourceIndex is a YAML document converted to JSON, with the YAML path and
// line of every JSON value and key, so that an error decoding the JSON can
// name where in the YAML it is.
type sourceIndex struct {
	buf    bytes.Buffer
	values []sourceSpan // in order of their start offset
	keys   []sourceSpan // end is unused
}

// sourceSpan is the JSON value at buf[start:end], from path at line.
type sourceSpan struct {
	start, end int
	path       string
	line       int
	key        string
}

// locate rewrites a JSON decoding error as one naming the YAML path and
// line it is about; other errors are returned as they are.
func (x *sourceIndex) locate(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		// The innermost value that ends where the decoder stopped.
		var at *sourceSpan
		for i := range x.values {
			v := &x.values[i]
			if v.start < int(te.Offset) && int(te.Offset) <= v.end {
				at = v
			}
		}
		if at != nil {
			return fmt.Errorf("line %d: %s: %s where %s belongs", at.line, displayPath(at.path), valueName(te.Value), kindName(te.Type))
		}
		return err
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ = strconv.Unquote(name)
		var where []string
		for _, k := range x.keys {
			if k.key == name {
				where = append(where, fmt.Sprintf("line %d: %s", k.line, displayPath(k.path)))
			}
		}
		if len(where) > 0 {
			return fmt.Errorf("%s: unknown key %q", strings.Join(where, ", "), name)
		}
	}
	return err
}

func displayPath(p string) string {
	if p == "" {
		return "the document"
	}
	return p
}

// valueName says in words what a JSON value (json.UnmarshalTypeError's
// Value) is.
func valueName(v string) string {
	switch {
	case v == "array":
		return "a list"
	case v == "object":
		return "a mapping"
	case v == "bool":
		return "true or false"
	case strings.HasPrefix(v, "number"):
		return "a number"
	}
	return "a " + v
}

// kindName says in words what a Go type accepts.
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return kindName(t.Elem())
	}
	return t.String()
}

func (x *sourceIndex) write(n *yaml.Node, path string, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("line %d: nested deeper than %d", n.Line, maxJSONDepth)
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) != 1 {
			return errors.New("empty document")
		}
		return x.write(n.Content[0], path, depth)
	}
	buf := &x.buf
	vi := len(x.values)
	x.values = append(x.values, sourceSpan{start: buf.Len(), path: path, line: n.Line})
	switch n.Kind {
	case yaml.MappingNode:
		buf.WriteByte('{')
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
				return fmt.Errorf("line %d: mapping keys must be strings (merge keys and aliases are not supported)", k.Line)
			}
			if seen[k.Value] {
				return fmt.Errorf("line %d: key %q appears twice", k.Line, k.Value)
			}
			seen[k.Value] = true
			if i > 0 {
				buf.WriteByte(',')
			}
			sub := k.Value
			if path != "" {
				sub = path + "." + k.Value
			}
			x.keys = append(x.keys, sourceSpan{path: sub, line: k.Line, key: k.Value})
			kb, _ := json.Marshal(k.Value)
			buf.Write(kb)
			buf.WriteByte(':')
			if err := x.write(v, sub, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := x.write(c, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case yaml.ScalarNode:
		if err := writeJSONScalar(buf, n); err != nil {
			return err
		}
	case yaml.AliasNode:
		return fmt.Errorf("line %d: YAML aliases are not supported", n.Line)
	default:
		return fmt.Errorf("line %d: unsupported YAML node", n.Line)
	}
	x.values[vi].end = buf.Len()
	return nil
}

func writeJSONScalar(buf *bytes.Buffer, n *yaml.Node) error {
	var out []byte
	var err error
	switch tag := n.ShortTag(); tag {
	case "!!str", "!!timestamp": // timestamps stay strings (RFC 3339)
		out, err = json.Marshal(n.Value)
	case "!!null":
		out = []byte("null")
	case "!!bool":
		var b bool
		if err = n.Decode(&b); err == nil {
			out = []byte(strconv.FormatBool(b))
		}
	case "!!int", "!!float":
		var v any
		if err = n.Decode(&v); err == nil {
			out, err = json.Marshal(v)
		}
	default:
		return fmt.Errorf("line %d: unsupported YAML type %s", n.Line, tag)
	}
	if err != nil {
		return fmt.Errorf("line %d: %q: %w", n.Line, n.Value, err)
	}
	buf.Write(out)
	return nil
}
