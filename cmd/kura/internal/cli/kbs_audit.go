package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/store"
)

// auditPage is how many records `kbs audit` asks for at once: the owner
// API's default page, which stays well inside the client's bound on an
// answer's size.
const auditPage = 100

// auditLine is one line of `kura kbs audit --json`.
type auditLine struct {
	Seq           int64     `json:"seq"`
	Time          time.Time `json:"time"`
	Decision      string    `json:"decision"`
	Reason        string    `json:"reason,omitempty"`
	Resource      string    `json:"resource,omitempty"`
	Collaboration string    `json:"collaboration,omitempty"`
	ManifestHash  string    `json:"manifest_hash,omitempty"`
	Analysis      string    `json:"analysis,omitempty"`
	RunID         string    `json:"run_id,omitempty"`
	Epsilon       string    `json:"epsilon,omitempty"`
	TokenDigest   string    `json:"token_digest,omitempty"`
	PolicyID      string    `json:"policy_id,omitempty"`
	Requester     string    `json:"requester,omitempty"`
	TEE           string    `json:"tee,omitempty"`
	Measurement   string    `json:"measurement,omitempty"`
}

func newKBSAuditCmd(g *globals) *cobra.Command {
	var (
		url, keyPath string
		after        int64
		limit        int
		asJSON       bool
	)
	cf := &clientFlags{g: g, url: &url, adminKey: &keyPath}
	cmd := &cobra.Command{
		Use:   "audit --url URL --admin-key FILE",
		Short: "Print a key broker's audit trail: every release decision, and the clean-room run it was for",
		Long: `Read the key broker's audit trail through the owner API (requests signed with --admin-key) and
print each decision: sequence number, time, released or refused, the resource, and for a clean-room
run's request the collaboration, run, analysis and manifest, then the TEE, requester, policy and
reason. The trail is the broker's own record, written before it answers; a broker with a
transparency log ('kura kbs serve --log', or 'kura serve') also copies each decision there, where
'kura audit ls --broker-seq N' finds it.

Records after --after are printed, --limit at most (0: all).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 || after < 0 {
				return usagef("--after and --limit must not be negative")
			}
			hc, err := cf.resolve()
			if err != nil {
				return err
			}
			key, err := loadAdminKey(keyPath)
			if err != nil {
				return err
			}
			c := &keybroker.AdminClient{BaseURL: url, Key: key, HTTP: hc}
			w := cmd.OutOrStdout()
			n, last := 0, after
			for limit == 0 || n < limit {
				want := auditPage
				if limit > 0 {
					want = min(want, limit-n)
				}
				recs, err := c.Audit(cmd.Context(), last, want)
				if err != nil {
					return err
				}
				for _, r := range recs {
					if asJSON {
						b, err := json.Marshal(auditJSON(&r))
						if err != nil {
							return err
						}
						fmt.Fprintf(w, "%s\n", b)
					} else {
						fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", r.Seq, r.Time.UTC().Format(time.RFC3339), printable(r.Decision), auditSummary(&r))
					}
					last = r.Seq
				}
				n += len(recs)
				if len(recs) < want {
					break
				}
			}
			more := ""
			if limit > 0 && n == limit {
				more = fmt.Sprintf("; more may follow: --after %d", last)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d records after %d%s\n", n, after, more)
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", g.envDefault("KURA_KBS_URL", ""), urlHelp("key broker URL", "KURA_KBS_URL"))
	cmd.Flags().StringVar(&keyPath, "admin-key", g.envDefault("KURA_ADMIN_KEY", ""), "owner signing key file (KURA_ADMIN_KEY; client.yaml admin_key)")
	cf.addCA(cmd, false)
	cmd.Flags().Int64Var(&after, "after", 0, "print records after this sequence number")
	cmd.Flags().IntVar(&limit, "limit", 0, "print at most this many records (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	return cmd
}

func auditJSON(r *store.AuditRecord) auditLine {
	return auditLine{Seq: r.Seq, Time: r.Time.UTC(), Decision: r.Decision, Reason: r.Reason, Resource: r.Resource,
		Collaboration: r.Collaboration, ManifestHash: r.ManifestHash, Analysis: r.Analysis, RunID: r.RunID, Epsilon: r.Epsilon,
		TokenDigest: r.TokenDigest, PolicyID: r.PolicyID, Requester: r.Requester, TEE: r.TEE, Measurement: r.Measurement}
}

// auditSummary describes a record after its decision, key=value, the
// reason last (it may hold spaces).
func auditSummary(r *store.AuditRecord) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+printable(v))
		}
	}
	add("resource", r.Resource)
	add("collab", r.Collaboration)
	add("run", r.RunID)
	add("analysis", r.Analysis)
	add("epsilon", r.Epsilon)
	add("manifest", r.ManifestHash)
	add("tee", r.TEE)
	add("requester", r.Requester)
	add("policy", r.PolicyID)
	add("reason", r.Reason)
	return strings.Join(parts, " ")
}

// printable replaces control characters, which a client may have put in a
// recorded field (a requested path, a reason quoting it), so that a record
// cannot move the cursor or forge lines on the owner's terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
}
