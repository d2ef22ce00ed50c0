package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Client configuration: every command that talks to a kura server takes
// --ca FILE and reads the client configuration file, a YAML mapping with
// the keys url, ca, identity and admin_key, from KURA_CLIENT_CONFIG, else
// $XDG_CONFIG_HOME/kura/client.yaml, else ~/.config/kura/client.yaml.
// Precedence, as for kura serve: flag, environment (KURA_URL or
// KURA_KBS_URL, KURA_CA, KURA_IDENTITY, KURA_ADMIN_KEY), file, default. A
// relative path in the file is relative to the file's directory. --url
// defaults to https://127.0.0.1:8080, where kura serve --dev listens.

// defaultServerURL is where kura serve --dev listens, with TLS.
const defaultServerURL = "https://127.0.0.1:8080"

// clientConfig is the client configuration file.
type clientConfig struct {
	path     string
	url      string
	ca       string
	identity string
	adminKey string
}

// clientConfigPath returns the client configuration file, and whether it
// was named explicitly (then it must exist).
func (g *globals) clientConfigPath() (string, bool) {
	if p := g.env.Getenv("KURA_CLIENT_CONFIG"); p != "" {
		return p, true
	}
	if d := g.env.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "kura", "client.yaml"), false
	}
	if h := g.env.Getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "kura", "client.yaml"), false
	}
	return "", false
}

// loadClientConfig reads the client configuration file; a missing file at
// a default location is an empty configuration. An unknown or repeated key
// is an error naming the key and its line.
func (g *globals) loadClientConfig() (*clientConfig, error) {
	path, named := g.clientConfigPath()
	if path == "" {
		return &clientConfig{}, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !named {
		return &clientConfig{}, nil
	}
	if err != nil {
		return nil, usagef("client config (KURA_CLIENT_CONFIG): %w", err)
	}
	known := func(k string) bool { return k == "url" || k == "ca" || k == "identity" || k == "admin_key" }
	settings, err := parseSettings(path, data, known, "keys are url, ca, identity and admin_key")
	if err != nil {
		return nil, err
	}
	c := &clientConfig{path: path}
	dir := filepath.Dir(path)
	for name, s := range settings {
		if s.list || len(s.values) > 1 {
			return nil, usagef("config %s line %d: key %q: want a single value", path, s.line, name)
		}
		v := ""
		if len(s.values) == 1 {
			v = s.values[0]
		}
		switch name {
		case "url":
			c.url = v
		case "ca":
			c.ca = g.configPath(dir, v)
		case "identity":
			c.identity = g.configPath(dir, v)
		case "admin_key":
			c.adminKey = g.configPath(dir, v)
		}
	}
	return c, nil
}

// configPath resolves a path in the client configuration file: ~/ is the
// home directory, and a relative path is relative to the file's directory.
func (g *globals) configPath(dir, p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if h := g.env.Getenv("HOME"); h != "" {
			return filepath.Join(h, rest)
		}
	}
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// clientFlags are the connection settings of a command that talks to kura
// servers: --ca, and whichever of --url, --identity and --admin-key the
// command has. resolve fills what the command line left unset.
type clientFlags struct {
	g  *globals
	ca string
	// url, identity and adminKey point at the command's own flag values,
	// or are nil where it has no such flag.
	url, identity, adminKey *string
}

// addCA registers --ca on fs.
func (c *clientFlags) addCA(cmd *cobra.Command, persistent bool) {
	fs := cmd.Flags()
	if persistent {
		fs = cmd.PersistentFlags()
	}
	fs.StringVar(&c.ca, "ca", c.g.envDefault("KURA_CA", ""), "trust this PEM certificate (a CA, or the server's own: kura serve --dev prints its path) besides the system roots (KURA_CA; client.yaml ca)")
}

// urlHelp is the help text of a --url flag whose environment variable is env.
func urlHelp(what, env string) string {
	return fmt.Sprintf("%s (%s; client.yaml url; default %s)", what, env, defaultServerURL)
}

// resolve fills the settings the command line and the environment left
// empty (fill) and returns the command's HTTP client.
func (c *clientFlags) resolve() (*http.Client, error) {
	if err := c.fill(); err != nil {
		return nil, err
	}
	return clientTLS(c.ca, 16)
}

// fill sets what the command line and the environment left empty from the
// client configuration file, then from the defaults.
func (c *clientFlags) fill() error {
	cfg, err := c.g.loadClientConfig()
	if err != nil {
		return err
	}
	fill := func(v *string, from string) {
		if v != nil && *v == "" {
			*v = from
		}
	}
	fill(&c.ca, cfg.ca)
	fill(c.url, cfg.url)
	fill(c.url, defaultServerURL)
	fill(c.identity, cfg.identity)
	fill(c.adminKey, cfg.adminKey)
	return nil
}

// clientTLS returns the HTTP client of every command that talks to a
// server: it trusts the PEM certificates in caFile (a CA, or a self-signed
// server certificate to pin) as well as the system roots, since one command
// may reach both the party's own server and public ones (a verifier's JWKS,
// a drand endpoint); its TLS failures say what to pin.
func clientTLS(caFile string, maxConns int) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = maxConns
	tr.MaxIdleConnsPerHost = maxConns
	if caFile != "" {
		pemData, err := os.ReadFile(caFile)
		if err != nil {
			return nil, usagef("--ca: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, usagef("--ca %s: no PEM certificate in it", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: hintTransport{rt: tr, ca: caFile}, Timeout: time.Minute}, nil
}

// hintTransport adds to a TLS failure what the user can do about it.
type hintTransport struct {
	rt http.RoundTripper
	ca string
}

// RoundTrip sends req and explains a failure to verify the server.
func (h hintTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.rt.RoundTrip(req)
	if err != nil {
		err = tlsHint(err, h.ca)
	}
	return resp, err
}

// tlsHint wraps err with the next step when it is a failure to verify the
// server's certificate, or a scheme mismatch.
func tlsHint(err error, ca string) error {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var record tls.RecordHeaderError
	switch {
	case errors.As(err, &unknown) && ca == "":
		return fmt.Errorf("%w: pin the server's certificate with --ca FILE or client.yaml's ca (kura serve --dev prints its path, <data>/tls/dev-cert.pem)", err)
	case errors.As(err, &unknown):
		return fmt.Errorf("%w: the server's certificate is not signed by --ca %s: pin the server's own certificate or its CA", err, ca)
	case errors.As(err, &host):
		return fmt.Errorf("%w: use a --url host the certificate names", err)
	case errors.As(err, &record) && string(record.RecordHeader[:]) == "HTTP/":
		return fmt.Errorf("%w: the server speaks plain HTTP: use an http:// --url", http.ErrSchemeMismatch)
	}
	return err
}
