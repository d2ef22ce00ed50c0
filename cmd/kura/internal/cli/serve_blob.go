package cli

import (
	"context"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kura-cc/kura/blob"
	"github.com/kura-cc/kura/blob/local"
	"github.com/kura-cc/kura/blob/s3"
)

// blobFlags configure the blob store: the log role's archive of the result
// bundles and deletion receipts it logged. `kura serve` checks the settings
// at start; config opens it.
type blobFlags struct {
	spec          string
	s3Endpoint    string
	s3Region      string
	s3AccessFile  string
	s3SecretFile  string
	s3PlainHTTP   bool
	s3PartSizeMiB int64
}

func (b *blobFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&b.spec, "blob", "", "blob store: a directory, or s3://BUCKET[/PREFIX] (default <data>/blobs)")
	fs.StringVar(&b.s3Endpoint, "s3-endpoint", "", "S3 endpoint HOST[:PORT] for an s3:// --blob")
	fs.StringVar(&b.s3Region, "s3-region", "", "S3 region (empty: discovered)")
	fs.StringVar(&b.s3AccessFile, "s3-access-key-file", "", "file holding the S3 access key ID")
	fs.StringVar(&b.s3SecretFile, "s3-secret-key-file", "", "file holding the S3 secret access key")
	fs.BoolVar(&b.s3PlainHTTP, "s3-plain-http", false, "talk to S3 over plain HTTP (requests stay signed; objects are ciphertext)")
	fs.Int64Var(&b.s3PartSizeMiB, "s3-part-size-mib", 0, "S3 multipart part size in MiB (0: the blob/s3 default)")
}

// check validates the settings without connecting.
func (b *blobFlags) check() error {
	if !strings.HasPrefix(b.spec, "s3://") {
		return nil
	}
	if b.s3Endpoint == "" {
		return usagef("--blob %s needs --s3-endpoint", b.spec)
	}
	if b.s3AccessFile == "" || b.s3SecretFile == "" {
		return usagef("--blob %s needs --s3-access-key-file and --s3-secret-key-file", b.spec)
	}
	return nil
}

// open opens the configured blob store; nil means the server's default
// (a local store in the data directory).
func (b *blobFlags) open(ctx context.Context, log *slog.Logger) (blob.Store, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	rest, isS3 := strings.CutPrefix(b.spec, "s3://")
	if !isS3 {
		if b.spec == "" {
			return nil, nil
		}
		return local.New(ctx, local.Config{Dir: b.spec, Logger: log})
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	access, err := readSecretLine("--s3-access-key-file", b.s3AccessFile)
	if err != nil {
		return nil, err
	}
	secret, err := readSecretLine("--s3-secret-key-file", b.s3SecretFile)
	if err != nil {
		return nil, err
	}
	return s3.New(ctx, s3.Config{
		Endpoint: b.s3Endpoint, Bucket: bucket, Prefix: prefix, Region: b.s3Region,
		AccessKey: access, SecretKey: secret, UseTLS: !b.s3PlainHTTP, PartSize: b.s3PartSizeMiB << 20,
	})
}

// readSecretLine reads the credential in the file flag names, refusing a
// file that group or others can reach.
func readSecretLine(flag, path string) (string, error) {
	data, err := readKeyFile(flag, path)
	if err != nil {
		return "", err
	}
	defer clear(data)
	v := strings.TrimSpace(string(data))
	if v == "" {
		return "", usagef("%s %s is empty", flag, path)
	}
	return v, nil
}
