package cli

import (
	"strings"

	"github.com/spf13/pflag"
)

// blobFlags configure the blob store (sealed datasets, results). No role
// stores blobs yet (the coordinator keeps collaboration files in --store,
// where replicas update them safely): `kura serve` checks the settings at
// start, and packages blob/local and blob/s3 are ready for the role that
// will.
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
