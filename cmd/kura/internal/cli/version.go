package cli

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" driver
	"github.com/spf13/cobra"
)

// versionInfo is what `kura version` reports. Go records no build time in
// a binary: CommitTime is the time of the commit it was built from.
type versionInfo struct {
	Version    string `json:"version"`
	Module     string `json:"module"`
	ModVersion string `json:"module_version"`
	Commit     string `json:"commit,omitempty"`
	Dirty      bool   `json:"dirty,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	Go         string `json:"go"`
	DuckDB     string `json:"duckdb"`
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print kura's version, the commit it was built from, and its Go and DuckDB versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := buildVersion(cmd.Context())
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			printVersion(cmd.OutOrStdout(), v)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the version as a JSON object")
	return cmd
}

// buildVersion reads the module and VCS stamp from the binary's build
// information and asks DuckDB for its library version.
func buildVersion(ctx context.Context) versionInfo {
	v := versionInfo{Version: Version, Go: runtime.Version(), DuckDB: duckDBVersion(ctx)}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Module, v.ModVersion = bi.Main.Path, bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Dirty = s.Value == "true"
		case "vcs.time":
			v.CommitTime = s.Value
		}
	}
	return v
}

// duckDBVersion returns the linked DuckDB library's version, or "unknown".
func duckDBVersion(ctx context.Context) string {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return "unknown"
	}
	defer db.Close()
	var s string
	if err := db.QueryRowContext(ctx, "SELECT library_version FROM pragma_version()").Scan(&s); err != nil {
		return "unknown"
	}
	return s
}

func printVersion(w io.Writer, v versionInfo) {
	fmt.Fprintln(w, "kura", v.Version)
	or := func(s string) string {
		if s == "" {
			return "unknown (not built from a VCS checkout)"
		}
		return s
	}
	commit := or(v.Commit)
	if v.Dirty {
		commit += " (dirty: uncommitted changes)"
	}
	fmt.Fprintf(w, "  module      %s %s\n", v.Module, v.ModVersion)
	fmt.Fprintf(w, "  commit      %s\n", commit)
	fmt.Fprintf(w, "  commit time %s\n", or(v.CommitTime))
	fmt.Fprintf(w, "  go          %s\n", v.Go)
	fmt.Fprintf(w, "  duckdb      %s\n", v.DuckDB)
}
