// Package collab holds clean-room collaborations: manifests (parties,
// datasets, analyses, output policies, worker reference values, receivers),
// their canonical hash, approvals signed by the parties, and the manifest
// history as a hash chain (docs/spec/manifest.md).
package collab
