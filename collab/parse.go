package collab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

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
	js, err := yamlToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	var src manifestSource
	if err := decodeStrict(js, &src); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
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

// yamlToJSON converts a single YAML document to JSON, keeping key order.
func yamlToJSON(data []byte) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty document")
		}
		return nil, fmt.Errorf("yaml: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	var buf bytes.Buffer
	if err := writeJSONNode(&buf, &doc, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeJSONNode(buf *bytes.Buffer, n *yaml.Node, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("line %d: nested deeper than %d", n.Line, maxJSONDepth)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return errors.New("empty document")
		}
		return writeJSONNode(buf, n.Content[0], depth)
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
			kb, _ := json.Marshal(k.Value)
			buf.Write(kb)
			buf.WriteByte(':')
			if err := writeJSONNode(buf, v, depth+1); err != nil {
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
			if err := writeJSONNode(buf, c, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case yaml.ScalarNode:
		return writeJSONScalar(buf, n)
	case yaml.AliasNode:
		return fmt.Errorf("line %d: YAML aliases are not supported", n.Line)
	default:
		return fmt.Errorf("line %d: unsupported YAML node", n.Line)
	}
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
