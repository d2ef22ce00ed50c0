// Package datakey is what a data owner registers with its key broker for a
// sealed dataset: the key's metadata (docs/spec/cleanroom.md §3) and the
// sealed file's digest. `kura data register` and the demo's clean-room story
// both register datasets with it.
package datakey

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"os"

	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/party"
)

// Metadata is the key-broker metadata of a clean-room dataset key
// (docs/spec/cleanroom.md §3).
func Metadata(datasetID, sealedSHA256 string, keyID dataset.KeyID, owner *party.Card) map[string]string {
	return map[string]string{
		keybroker.MetaKind:            keybroker.KindDatasetKey,
		"dataset_id":                  datasetID,
		keybroker.MetaSealedSHA256:    sealedSHA256,
		"key_id":                      hex.EncodeToString(keyID[:]),
		keybroker.MetaOwnerSigningKey: base64.StdEncoding.EncodeToString(owner.SigningKey),
		"owner_fingerprint":           owner.Fingerprint,
	}
}

// FileSHA256 returns the hex SHA-256 and size of a file.
func FileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
