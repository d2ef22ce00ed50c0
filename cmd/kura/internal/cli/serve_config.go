package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/kura-cc/kura/server"
)

// Server configuration: every flag of a serve command can also be set by
// the environment variable KURA_<NAME> (upper case, dashes as underscores;
// --key is KURA_VERIFIER_KEY) and by the YAML file --config names (or
// KURA_CONFIG), under the flag's own name. Precedence: flag, environment,
// file, default. A list flag takes a YAML list, or in the environment a
// comma-separated value.

// notConfigurable reports whether a flag only makes sense on the command line.
func notConfigurable(name string) bool {
	return name == "help" || name == "config" || name == "print-config"
}

// effectiveConfig records where each setting came from.
type effectiveConfig struct {
	file   string
	fs     *pflag.FlagSet
	source map[string]string // flag name -> "flag", "env KURA_X", "file", "default"
}

// envName is the environment variable that sets flag name.
func envName(name string) string {
	if name == "key" {
		return "KURA_VERIFIER_KEY"
	}
	return "KURA_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// fileSetting is one key of a configuration file.
type fileSetting struct {
	values []string
	list   bool
	line   int
}

// readConfigFile parses a configuration file against the flags in fs. An
// unknown or repeated key is an error that names the key and its line.
func readConfigFile(path string, fs *pflag.FlagSet) (map[string]fileSetting, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("--config: %w", err)
	}
	known := func(name string) bool { return fs.Lookup(name) != nil && !notConfigurable(name) }
	return parseSettings(path, data, known, "keys are the flag names 'kura serve --help' lists")
}

// parseSettings parses the YAML mapping of a configuration file, the
// client's or the server's; known says which keys it may hold, hint how to
// find them. An unknown or repeated key is an error that names the key and
// its line.
func parseSettings(path string, data []byte, known func(string) bool, hint string) (map[string]fileSetting, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, usagef("config %s: %w", path, err)
	}
	out := map[string]fileSetting{}
	if len(doc.Content) == 0 {
		return out, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, usagef("config %s line %d: want a mapping of setting names to values", path, root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		name := k.Value
		if !known(name) {
			return nil, usagef("config %s line %d: unknown key %q (%s)", path, k.Line, name, hint)
		}
		if prev, dup := out[name]; dup {
			return nil, usagef("config %s line %d: key %q repeated (first on line %d)", path, k.Line, name, prev.line)
		}
		s := fileSetting{line: k.Line}
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag != "!!null" {
				s.values = []string{v.Value}
			}
		case yaml.SequenceNode:
			s.list = true
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					return nil, usagef("config %s line %d: key %q: list items must be plain values", path, item.Line, name)
				}
				s.values = append(s.values, item.Value)
			}
		default:
			return nil, usagef("config %s line %d: key %q: want a value or a list of values", path, v.Line, name)
		}
		out[name] = s
	}
	return out, nil
}

// applyConfig fills every flag the command line left unset from the
// environment, then from the configuration file.
func applyConfig(cmd *cobra.Command, g *globals) (*effectiveConfig, error) {
	fs := cmd.Flags()
	cfg := &effectiveConfig{fs: fs, source: map[string]string{}, file: fs.Lookup("config").Value.String()}
	if cfg.file == "" {
		cfg.file = g.env.Getenv("KURA_CONFIG")
	}
	var file map[string]fileSetting
	if cfg.file != "" {
		var err error
		if file, err = readConfigFile(cfg.file, fs); err != nil {
			return nil, err
		}
	}
	var errs []error
	fs.VisitAll(func(fl *pflag.Flag) {
		name := fl.Name
		if notConfigurable(name) {
			return
		}
		if fl.Changed {
			cfg.source[name] = "flag"
			return
		}
		list := strings.HasSuffix(fl.Value.Type(), "Array") || strings.HasSuffix(fl.Value.Type(), "Slice")
		if env := envName(name); g.env.Getenv(env) != "" {
			val := g.env.Getenv(env)
			vals := []string{val}
			if list && strings.HasSuffix(fl.Value.Type(), "Array") {
				vals = strings.Split(val, ",")
			}
			if err := setFlag(fs, name, vals); err != nil {
				errs = append(errs, usagef("%s: %w", env, err))
			}
			cfg.source[name] = "env " + env
			return
		}
		if s, ok := file[name]; ok {
			vals := s.values
			if s.list && !strings.HasSuffix(fl.Value.Type(), "Array") {
				vals = []string{strings.Join(s.values, ",")}
			}
			if len(vals) == 0 && !list {
				vals = []string{""}
			}
			if err := setFlag(fs, name, vals); err != nil {
				errs = append(errs, usagef("config %s line %d: %s: %w", cfg.file, s.line, name, err))
			}
			cfg.source[name] = "file"
			return
		}
		cfg.source[name] = "default"
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

func setFlag(fs *pflag.FlagSet, name string, vals []string) error {
	for _, v := range vals {
		if err := fs.Set(name, v); err != nil {
			return err
		}
	}
	return nil
}

// print writes the effective configuration as a YAML file that --config
// accepts, each value commented with its source. Passwords in URLs are
// replaced by "xxxxx"; every other setting is a path or a plain value
// (secrets are read from files, never given as values).
func (c *effectiveConfig) print(w io.Writer) error {
	doc := &yaml.Node{Kind: yaml.MappingNode}
	var err error
	c.fs.VisitAll(func(fl *pflag.Flag) {
		if notConfigurable(fl.Name) || err != nil {
			return
		}
		key := &yaml.Node{Kind: yaml.ScalarNode, Value: fl.Name}
		var val *yaml.Node
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			val = &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
			for _, s := range sv.GetSlice() {
				val.Content = append(val.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: server.RedactURL(s)})
			}
		} else {
			val = &yaml.Node{Kind: yaml.ScalarNode, Value: server.RedactURL(fl.Value.String())}
			if fl.Value.Type() == "string" {
				val.Style = yaml.DoubleQuotedStyle
			}
		}
		val.LineComment = c.source[fl.Name]
		doc.Content = append(doc.Content, key, val)
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "# kura serve: effective configuration (flag > env > file > default); secrets omitted")
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return enc.Close()
}
