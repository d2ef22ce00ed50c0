package cli

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/auditlog/intake"
	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/keybroker"
)

// newDataUploadCmd is `kura data upload`: a sealed file into a kura
// server's blob store, for workers to fetch by its digest.
func newDataUploadCmd(g *globals) *cobra.Command {
	var url, adminKey string
	var asJSON bool
	cf := &clientFlags{g: g, url: &url, adminKey: &adminKey}
	cmd := &cobra.Command{
		Use:   "upload SEALED [--url URL --admin-key FILE]",
		Short: "Upload a sealed dataset to a kura server's blob store; prints the location to name in a manifest",
		Long: `Upload a sealed file to the blob store of a kura server (its log role), under the file's SHA-256,
signed with your key broker tenant key (--admin-key): only owners the operator admitted may upload.
The file is ciphertext and travels as it is; nothing about its key leaves this machine. Prints the
location to give the dataset in a manifest (datasets[].location), https://SERVER/v1/datasets/SHA256,
from which a clean-room worker fetches it and checks its digest. Uploading a file the server holds
already changes nothing.`,
		Example: `  kura data upload customers.kura --url https://kura.example:8443 --admin-key owner.pem`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			hc, err := cf.resolve()
			if err != nil {
				return err
			}
			priv, err := loadAdminKey(adminKey)
			if err != nil {
				return err
			}
			digest, size, err := dataset.FileSHA256(args[0])
			if err != nil {
				return usagef("%s: %w", args[0], err)
			}
			f, err := os.Open(args[0])
			if err != nil {
				return usagef("%s: %w", args[0], err)
			}
			defer f.Close()
			if _, err := dataset.ReadHeader(f); err != nil {
				return fmt.Errorf("%s: not a sealed dataset: %w", args[0], err)
			}
			if _, err := f.Seek(0, 0); err != nil {
				return err
			}
			admin := &keybroker.AdminClient{BaseURL: url, Key: priv, HTTP: hc}
			c := &intake.Client{BaseURL: url, HTTP: hc}
			res, err := c.UploadDataset(cmd.Context(), f, size, digest, func(r *http.Request) { admin.SignBody(r, nil, time.Now()) })
			if err != nil {
				return err
			}
			location := strings.TrimSuffix(url, "/") + res.Location
			if asJSON {
				return printJSON(cmd.OutOrStdout(), struct {
					SHA256   string `json:"sha256"`
					Size     int64  `json:"size"`
					Location string `json:"location"`
				}{digest, size, location})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "uploaded %s (%d bytes, sha256 %s)\nlocation: %s\n", args[0], size, digest, location)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&url, "url", g.envDefault("KURA_URL", ""), urlHelp("the kura server", "KURA_URL"))
	fs.StringVar(&adminKey, "admin-key", g.envDefault("KURA_ADMIN_KEY", ""), "your key broker tenant key file (KURA_ADMIN_KEY; client.yaml admin_key)")
	fs.BoolVar(&asJSON, "json", false, "print {sha256, size, location} as JSON")
	cf.addCA(cmd, false)
	return cmd
}
