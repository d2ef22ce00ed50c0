package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/dataset/convert"
	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/party"
)

func newDataCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "data", Short: "Seal, open and inspect datasets"}
	cmd.AddCommand(newDataSealCmd(g), newDataOpenCmd(g), newDataInspectCmd(g), newDataRegisterCmd(g), newDataUploadCmd(g))
	return cmd
}

type dataSealFlags struct {
	out, schema, keyFile, datasetID, format string
	chunkSize                               int
	json                                    bool
}

func newDataSealCmd(g *globals) *cobra.Command {
	f := &dataSealFlags{}
	cmd := &cobra.Command{
		Use:   "seal IN -o OUT",
		Short: "Validate a CSV, Parquet or JSON-lines file against a schema, convert it to Parquet and seal it",
		Long: `Validate IN (CSV with a header line, Parquet, or JSON lines) against the schema, normalise its
identity columns, convert it to Parquet with DuckDB and seal it under a data key
(docs/spec/dataset.md §5). Without --schema the schema is inferred from IN and embedded.
A Parquet IN that already conforms (the schema's columns, names, order and types, every
identity value already normalised) is checked in one scan and sealed unchanged; anything
else is converted in one pass and sealed as DuckDB writes it, with bounded memory (its
header then records no size).
When --key-file (default OUT.key) does not exist, a fresh data key is written to it
with mode 0600 once the dataset is sealed; keep it secret and register it with your key broker.
Exits 8 when IN does not match the schema.

--json prints {dataset_id, input, output, key_file, key_created, key_id, rows, plaintext_size,
sealed_size, sealed_sha256, chunk_size, format, schema}.`,
		Example: `  kura data seal customers.csv --schema customers.yaml -o customers.kura
  kura data seal visits.jsonl --key-file owner.key --dataset-id visits-2025 -o visits.kura`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDataSeal(cmd.Context(), g, f, args[0], cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.out, "output", "o", "", "sealed dataset to write (required)")
	fs.StringVar(&f.schema, "schema", "", "schema file, YAML or JSON (default: inferred from IN)")
	fs.StringVar(&f.keyFile, "key-file", "", "data key file; created with a fresh key when missing (default OUT.key)")
	fs.StringVar(&f.datasetID, "dataset-id", "", "dataset id recorded in the header (default: IN's name without extension)")
	fs.StringVar(&f.format, "format", "", "input format: csv, parquet or jsonl (default: from IN's extension)")
	fs.IntVar(&f.chunkSize, "chunk-size", dataset.DefaultChunkSize, "plaintext bytes per chunk")
	fs.BoolVar(&f.json, "json", false, jsonFlagHelp)
	return cmd
}

// sealedDataset is what `kura data seal --json` prints.
type sealedDataset struct {
	DatasetID     string          `json:"dataset_id"`
	Input         string          `json:"input"`
	Output        string          `json:"output"`
	KeyFile       string          `json:"key_file"`
	KeyCreated    bool            `json:"key_created"`
	KeyID         string          `json:"key_id"`
	Rows          int64           `json:"rows"`
	PlaintextSize int64           `json:"plaintext_size"`
	SealedSize    int64           `json:"sealed_size"`
	SealedSHA256  string          `json:"sealed_sha256"`
	ChunkSize     int             `json:"chunk_size"`
	Format        string          `json:"format"`
	Schema        json.RawMessage `json:"schema"`
}

func runDataSeal(ctx context.Context, g *globals, f *dataSealFlags, in string, out io.Writer) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	if f.out == "" {
		return usagef("give the sealed file to write with -o OUT")
	}
	if f.chunkSize < dataset.MinChunkSize || f.chunkSize > dataset.MaxChunkSize {
		return usagef("--chunk-size %d: want %d to %d", f.chunkSize, dataset.MinChunkSize, dataset.MaxChunkSize)
	}
	if _, err := os.Stat(in); err != nil {
		return usagef("%s: %w", in, err)
	}
	format := convert.Format(f.format)
	switch format {
	case "":
		if format, err = convert.DetectFormat(in); err != nil {
			return usageError{fmt.Errorf("%w; give --format csv, parquet or jsonl", err)}
		}
	case convert.CSV, convert.Parquet, convert.JSONL:
	default:
		return usagef("--format %q: want csv, parquet or jsonl", f.format)
	}
	id := f.datasetID
	if id == "" {
		id = strings.TrimSuffix(filepath.Base(in), filepath.Ext(in))
	}
	keyFile := f.keyFile
	if keyFile == "" {
		keyFile = f.out + ".key"
	}
	// Read an existing key before the work, so a bad key file fails fast.
	key, haveKey, err := loadKey(keyFile)
	if err != nil {
		return err
	}

	var sc *table.Schema
	if f.schema != "" {
		data, err := os.ReadFile(f.schema)
		if err != nil {
			return usagef("--schema: %w", err)
		}
		if sc, err = table.ParseSchema(data); err != nil {
			return usageError{fmt.Errorf("--schema %s: %w", f.schema, err)}
		}
	}
	if !haveKey {
		key = dataset.NewKey() // written to keyFile only once the dataset is sealed
	}
	p := newProgress(g.env.Stderr, "sealing", -1)
	res, err := convert.SealFile(ctx, convert.SealConfig{Format: format, Schema: sc,
		Header: dataset.Header{DatasetID: id, ChunkSize: f.chunkSize}, Progress: p.seal}, f.out, in, key)
	p.finish()
	if err != nil {
		if errors.Is(err, table.ErrInvalidSchema) {
			return usageError{err}
		}
		return fmt.Errorf("%s: %w", in, err)
	}
	if sc == nil {
		log.Info("inferred schema", "columns", len(res.Schema.Columns))
	}
	if !haveKey {
		if err := dataset.WriteKeyFile(keyFile, key); err != nil {
			os.Remove(f.out) // useless without its key
			return err
		}
		fmt.Fprintf(g.env.Stderr, "kura: wrote a new data key to %s (mode 0600): keep it secret, register it with your key broker\n", keyFile)
	}
	h := res.Header
	log.Info("sealed dataset", "dataset", id, "rows", res.Rows, "key_id", h.KeyID.String(), "out", f.out, "as_is", res.AsIs)
	digest, size, err := dataset.FileSHA256(f.out)
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(out, sealedDataset{DatasetID: id, Input: in, Output: f.out, KeyFile: keyFile, KeyCreated: !haveKey,
			KeyID: h.KeyID.String(), Rows: res.Rows, PlaintextSize: res.Size, SealedSize: size, SealedSHA256: digest,
			ChunkSize: h.ChunkSize, Format: h.Format, Schema: h.Schema})
	}
	how := "converted to Parquet"
	if res.AsIs {
		how = "Parquet already conforming, sealed as it is"
	}
	fmt.Fprintf(out, "sealed %s: %d rows, %d bytes of Parquet (%s) -> %s (%d bytes)\nkey id: %s\n", id, res.Rows, res.Size, how, f.out, size, h.KeyID)
	return nil
}

// loadKey reads path when it exists; have reports whether it did.
func loadKey(path string) (k dataset.Key, have bool, err error) {
	k, err = dataset.ReadKeyFile(path)
	switch {
	case err == nil:
		return k, true, nil
	case errors.Is(err, fs.ErrNotExist):
		return k, false, nil
	}
	return k, false, err
}

type dataOpenFlags struct {
	out, keyFile string
	json         bool
}

func newDataOpenCmd(g *globals) *cobra.Command {
	f := &dataOpenFlags{}
	cmd := &cobra.Command{
		Use:   "open IN -o OUT --key-file FILE",
		Short: "Decrypt a sealed dataset you own into its Parquet file",
		Long: `Decrypt a sealed dataset with its data key. OUT (mode 0600) appears only after every chunk
authenticated; on any failure nothing is written. Exits 6 when the file was tampered with or
truncated, 7 for a wrong key. --json prints {dataset_id, input, output, format, plaintext_size, key_id}.`,
		Example: `  kura data open customers.kura --key-file customers.kura.key -o customers.parquet`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDataOpen(cmd.Context(), g, f, args[0], cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&f.out, "output", "o", "", "Parquet file to write (required)")
	cmd.Flags().StringVar(&f.keyFile, "key-file", "", "data key file (required)")
	cmd.Flags().BoolVar(&f.json, "json", false, jsonFlagHelp)
	return cmd
}

// openedDataset is what `kura data open --json` prints.
type openedDataset struct {
	DatasetID     string `json:"dataset_id"`
	Input         string `json:"input"`
	Output        string `json:"output"`
	Format        string `json:"format"`
	PlaintextSize int64  `json:"plaintext_size"`
	KeyID         string `json:"key_id"`
}

func runDataOpen(ctx context.Context, g *globals, f *dataOpenFlags, in string, out io.Writer) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	if f.out == "" || f.keyFile == "" {
		return usagef("give the output with -o OUT and the data key with --key-file FILE")
	}
	key, err := dataset.ReadKeyFile(f.keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return usagef("--key-file: %w", err)
	} else if err != nil {
		return err
	}
	st, err := os.Stat(in)
	if err != nil {
		return usagef("%s: %w", in, err)
	}
	p := newProgress(g.env.Stderr, "opening", st.Size())
	h, err := dataset.OpenFile(ctx, f.out, in, key, dataset.Options{Progress: p.update})
	p.finish()
	if err != nil {
		log.Warn("refused sealed dataset", "file", in, "reason", err.Error())
		return fmt.Errorf("%s: %w (nothing written)", in, err)
	}
	log.Info("opened dataset", "dataset", h.DatasetID, "key_id", h.KeyID.String(), "out", f.out)
	opened, err := os.Stat(f.out) // a streamed dataset's header records no size
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(out, openedDataset{DatasetID: h.DatasetID, Input: in, Output: f.out, Format: h.Format, PlaintextSize: opened.Size(), KeyID: h.KeyID.String()})
	}
	fmt.Fprintf(out, "opened %s: %d bytes of %s -> %s\n", h.DatasetID, opened.Size(), h.Format, f.out)
	return nil
}

func newDataInspectCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Print a sealed dataset's header without any key",
		Long: `Print the header of a sealed dataset: id, schema, format, chunk size, key id and sizes.
No key is used, so the header is not authenticated here; kura data open and workers
authenticate it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDataInspect(args[0], asJSON, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the header as JSON")
	return cmd
}

// inspection is the JSON form of kura data inspect.
type inspection struct {
	File       string          `json:"file"`
	Version    int             `json:"version"`
	DatasetID  string          `json:"dataset_id"`
	Format     string          `json:"format"`
	KeyID      string          `json:"key_id"`
	ChunkSize  int             `json:"chunk_size"`
	Size       *int64          `json:"plaintext_size"`
	SealedSize int64           `json:"sealed_size"`
	HeaderSize int             `json:"header_size"`
	Chunks     int64           `json:"chunks"`
	Schema     json.RawMessage `json:"schema,omitempty"`
}

func runDataInspect(path string, asJSON bool, out io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return usagef("%s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h, err := dataset.ReadHeader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	in := inspection{File: path, Version: dataset.Version, DatasetID: h.DatasetID, Format: h.Format, KeyID: h.KeyID.String(),
		ChunkSize: h.ChunkSize, SealedSize: st.Size(), HeaderSize: h.Len(), Schema: h.Schema}
	unit := int64(h.ChunkSize + dataset.TagSize)
	in.Chunks = (st.Size() - int64(h.Len()) + unit - 1) / unit
	if h.Size != dataset.UnknownSize {
		in.Size, in.Chunks = &h.Size, h.NumChunks()
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	fmt.Fprintf(out, "file:         %s (not authenticated: inspect uses no key)\n", path)
	fmt.Fprintf(out, "dataset id:   %s\n", h.DatasetID)
	fmt.Fprintf(out, "format:       %s, sealed-dataset version %d\n", h.Format, dataset.Version)
	fmt.Fprintf(out, "key id:       %s\n", h.KeyID)
	fmt.Fprintf(out, "chunk size:   %d bytes\n", h.ChunkSize)
	if in.Size != nil {
		fmt.Fprintf(out, "plaintext:    %d bytes\n", *in.Size)
	} else {
		fmt.Fprintf(out, "plaintext:    size not recorded (streamed)\n")
	}
	fmt.Fprintf(out, "sealed:       %d bytes (header %d, %d chunks)\n", st.Size(), h.Len(), in.Chunks)
	if want := h.SealedSize(); want >= 0 && want != st.Size() {
		fmt.Fprintf(out, "warning:      the header announces %d sealed bytes\n", want)
	}
	if len(h.Schema) == 0 {
		return nil
	}
	sc, err := table.ParseSchema(h.Schema)
	if err != nil {
		fmt.Fprintf(out, "schema:       %s\n", h.Schema)
		return nil
	}
	if sc.DefaultCountryCode != "" {
		fmt.Fprintf(out, "schema:       (default country code +%s)\n", sc.DefaultCountryCode)
	} else {
		fmt.Fprintln(out, "schema:")
	}
	for _, c := range sc.Columns {
		var tags []string
		if c.Identity {
			tags = append(tags, "identity")
		}
		if c.Join {
			tags = append(tags, "join")
		}
		for _, n := range c.Normalize {
			tags = append(tags, string(n))
		}
		fmt.Fprintln(out, strings.TrimRight(fmt.Sprintf("  %-20s %-10s %s", c.Name, c.Type, strings.Join(tags, " ")), " "))
	}
	return nil
}

// progress draws a progress bar on a terminal and does nothing otherwise.
type progress struct {
	w      io.Writer
	label  string
	total  int64
	start  time.Time
	last   time.Time
	active bool
}

func newProgress(w io.Writer, label string, total int64) *progress {
	p := &progress{w: w, label: label, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.active = true
	}
	return p
}

func (p *progress) update(done int64) {
	if !p.active {
		return
	}
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond && done < p.total {
		return
	}
	p.last = now
	elapsed := now.Sub(p.start).Seconds()
	rate := float64(done) / max(elapsed, 1e-3)
	eta := "--"
	if rate > 0 && done <= p.total {
		eta = time.Duration(float64(p.total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	pct := 100.0
	if p.total > 0 {
		pct = min(100, max(0, 100*float64(done)/float64(p.total)))
	}
	const width = 30
	filled := int(pct / 100 * width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	fmt.Fprintf(p.w, "\r%s [%s] %5.1f%% %s / %s  %s/s  ETA %s   ", p.label, bar, pct, bytesize(done), bytesize(p.total), bytesize(int64(rate)), eta)
}

// seal draws kura data seal's progress: bytes of Parquet sealed and their
// rate, and rows and their rate where known (estimated from the bytes
// while an unchanged Parquet file is sealed; for converted input, once
// DuckDB reports them at the end). With the total size unknown there is no
// bar and no ETA.
func (p *progress) seal(s convert.Progress) {
	if !p.active {
		return
	}
	if s.TotalBytes >= 0 {
		p.total = s.TotalBytes
	}
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond && !s.Done {
		return
	}
	p.last = now
	elapsed := max(now.Sub(p.start).Seconds(), 1e-3)
	rows := ""
	if s.Rows >= 0 {
		rows = fmt.Sprintf("  %d rows  %s rows/s", s.Rows, siCount(float64(s.Rows)/elapsed))
	}
	if s.TotalBytes < 0 {
		fmt.Fprintf(p.w, "\r%s %s  %s/s%s   ", p.label, bytesize(s.Bytes), bytesize(int64(float64(s.Bytes)/elapsed)), rows)
		return
	}
	pct := 100.0
	if s.TotalBytes > 0 {
		pct = min(100, max(0, 100*float64(s.Bytes)/float64(s.TotalBytes)))
	}
	const width = 30
	filled := int(pct / 100 * width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	fmt.Fprintf(p.w, "\r%s [%s] %5.1f%% %s / %s  %s/s%s   ", p.label, bar, pct, bytesize(s.Bytes), bytesize(s.TotalBytes), bytesize(int64(float64(s.Bytes)/elapsed)), rows)
}

// siCount prints n with a k, M or G suffix.
func siCount(n float64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fG", n/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", n/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", n/1e3)
	}
	return fmt.Sprintf("%.0f", n)
}

func (p *progress) finish() {
	if p.active && !p.last.IsZero() {
		fmt.Fprintln(p.w)
	}
}

func bytesize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func newDataRegisterCmd(g *globals) *cobra.Command {
	var keyFile, identity, resource, url, adminKey, out string
	var asJSON bool
	cf := &clientFlags{g: g, url: &url, identity: &identity, adminKey: &adminKey}
	cmd := &cobra.Command{
		Use:   "register SEALED --key-file FILE --identity DIR",
		Short: "Put a dataset's key in the owner's key broker and write the dataset descriptor",
		Long: `Register a sealed dataset: check that the key file opens it, store the data key in the owner's
key broker under a resource path (signed owner request), and write a descriptor with the dataset
id, owner, schema, SHA-256 of the sealed file and the key-broker resource. The key goes only to
the key broker; the descriptor holds no secret and is what a collaboration manifest references.
The owner is the party of --identity (from 'kura party init'): its signing key is pinned in the
key's metadata, and the broker releases the key only to clean-room runs of analyses that party
approved (docs/spec/cleanroom.md §3).

--json prints {dataset_id, owner, descriptor (the file written), sealed_sha256, sealed_size, key_id,
key_broker: {url, resource, version}}.`,
		Example: `  kura data register customers.kura --key-file customers.kura.key --identity airline \
    --url https://kbs.airline.example --admin-key owner.pem`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			hc, err := cf.resolve()
			if err != nil {
				return err
			}
			if keyFile == "" || identity == "" {
				return usagef("--key-file and --identity are required")
			}
			id, err := party.Load(identity)
			if err != nil {
				return err
			}
			owner := id.Name()
			key, err := dataset.ReadKeyFile(keyFile)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return usagef("%s: %w", args[0], err)
			}
			defer f.Close()
			h, err := dataset.ReadHeader(f)
			if err != nil {
				return err
			}
			sc, err := table.ParseSchema(h.Schema)
			if err != nil {
				return fmt.Errorf("%s: the sealed header's schema: %w", args[0], err)
			}
			if key.ID() != h.KeyID {
				return fmt.Errorf("%w: %s is not sealed under the key in %s", dataset.ErrWrongKey, args[0], keyFile)
			}
			digest, size, err := dataset.FileSHA256(args[0])
			if err != nil {
				return err
			}
			if resource == "" {
				resource = owner + "/dataset-key/" + safeTag(h.DatasetID)
			}
			if _, err := keybroker.ParsePath(resource); err != nil {
				return usagef("--resource %q: %w", resource, err)
			}
			priv, err := loadAdminKey(adminKey)
			if err != nil {
				return err
			}
			admin := &keybroker.AdminClient{BaseURL: url, Key: priv, HTTP: hc}
			value := key.Bytes()
			v, err := admin.Put(ctx, resource, value, keybroker.DatasetKeyMetadata(h.DatasetID, digest, hex.EncodeToString(h.KeyID[:]), id.Card()), "")
			clear(value)
			if err != nil {
				return err
			}
			d := collab.Descriptor{
				Version: 1, DatasetID: h.DatasetID, Owner: owner, Format: h.Format, Schema: sc,
				KeyID: h.KeyID.String(), SealedSHA256: digest, SealedSize: size,
				KeyBroker:    collab.KeyBrokerRef{URL: url, Resource: resource, Version: v},
				RegisteredAt: time.Now().UTC().Format(time.RFC3339),
			}
			data, err := json.MarshalIndent(d, "", "  ")
			if err != nil {
				return err
			}
			if out == "" {
				out = args[0] + ".descriptor.json"
			}
			if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), registeredDataset{DatasetID: d.DatasetID, Owner: d.Owner, Descriptor: out,
					SealedSHA256: d.SealedSHA256, SealedSize: d.SealedSize, KeyID: d.KeyID, KeyBroker: d.KeyBroker})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "registered %s: key stored at %s version %d; descriptor %s (sealed sha256 %s)\n", h.DatasetID, resource, v, out, digest)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&keyFile, "key-file", "", "the dataset's data key file (required)")
	fs.StringVar(&identity, "identity", g.envDefault("KURA_IDENTITY", ""), "the owning party's identity directory (required; KURA_IDENTITY; client.yaml identity)")
	fs.StringVar(&resource, "resource", "", "key-broker resource path (default OWNER/dataset-key/DATASET-ID)")
	fs.StringVar(&url, "url", g.envDefault("KURA_KBS_URL", ""), urlHelp("the owner's key broker", "KURA_KBS_URL"))
	fs.StringVar(&adminKey, "admin-key", g.envDefault("KURA_ADMIN_KEY", ""), "owner signing key file (KURA_ADMIN_KEY; client.yaml admin_key)")
	cf.addCA(cmd, false)
	fs.StringVarP(&out, "output", "o", "", "descriptor file to write (default SEALED.descriptor.json)")
	fs.BoolVar(&asJSON, "json", false, jsonFlagHelp)
	return cmd
}

// registeredDataset is what `kura data register --json` prints.
type registeredDataset struct {
	DatasetID    string              `json:"dataset_id"`
	Owner        string              `json:"owner"`
	Descriptor   string              `json:"descriptor"`
	SealedSHA256 string              `json:"sealed_sha256"`
	SealedSize   int64               `json:"sealed_size"`
	KeyID        string              `json:"key_id"`
	KeyBroker    collab.KeyBrokerRef `json:"key_broker"`
}

// safeTag maps a dataset id to a key-broker path segment.
func safeTag(id string) string {
	b := []byte(id)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 128 {
		b = b[:128]
	}
	return string(b)
}
