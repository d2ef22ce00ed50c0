package cli

import (
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/server"
)

// logFlags configure the transparency-log role.
type logFlags struct {
	key              string
	origin           string
	witnesses        []string
	witnessThreshold int
}

func (l *logFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&l.key, "log-key", "", "the log's checkpoint signing key (C2SP note key file), created if missing; default <data>/log-key (its public key is written next to it as .pub)")
	fs.StringVar(&l.origin, "log-origin", auditlog.DefaultOrigin, "the log's origin: the name in its checkpoints and key")
	fs.StringArrayVar(&l.witnesses, "log-witness", nil, "URL=VKEY: a witness ('kura audit witness serve') that must cosign each checkpoint, and its verifier key, file or text (repeatable)")
	fs.IntVar(&l.witnessThreshold, "log-witness-threshold", 0, "how many --log-witness cosignatures each checkpoint needs (default: all)")
}

// set reports whether any log flag differs from its default.
func (l *logFlags) set() bool {
	return l.key != "" || l.origin != auditlog.DefaultOrigin || len(l.witnesses) > 0 || l.witnessThreshold != 0
}

// config returns the log role's configuration, with the --log-witness
// values parsed and their keys read.
func (l *logFlags) config() (server.Log, error) {
	w, err := l.witnessEndpoints()
	return server.Log{KeyFile: l.key, Origin: l.origin, Witnesses: w, WitnessThreshold: l.witnessThreshold}, err
}

// witnessEndpoints parses --log-witness values.
func (l *logFlags) witnessEndpoints() ([]auditlog.WitnessEndpoint, error) {
	var out []auditlog.WitnessEndpoint
	for _, w := range l.witnesses {
		u, vkey, ok := strings.Cut(w, "=")
		if !ok || u == "" || vkey == "" {
			return nil, usagef("--log-witness %q: want URL=VKEY", w)
		}
		if data, err := os.ReadFile(vkey); err == nil {
			vkey = strings.TrimSpace(string(data))
		}
		if _, err := auditlog.ParseWitnessKey(vkey); err != nil {
			return nil, usagef("--log-witness %s: %w", u, err)
		}
		if c, err := auditlog.CosignatureKey(vkey); err == nil {
			vkey = c // an Ed25519 key file: the cosignature/v1 form witnesses sign with
		}
		out = append(out, auditlog.WitnessEndpoint{URL: u, VerifierKey: vkey})
	}
	if l.witnessThreshold < 0 || l.witnessThreshold > len(out) {
		return nil, usagef("--log-witness-threshold %d with %d --log-witness", l.witnessThreshold, len(out))
	}
	return out, nil
}
