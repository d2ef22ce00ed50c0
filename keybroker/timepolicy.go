package keybroker

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"

	"github.com/drand/drand/chain"
	"github.com/drand/drand/crypto"

	"github.com/kura-cc/kura/store"
)

// Time-release metadata (a kura extension, docs/spec/timelock.md §7). A
// resource whose metadata holds MetaNotBeforeRound is released only to a
// request that presents the signature of that round, or of a later one, by
// the drand chain whose public key the owner pinned in MetaBeaconPublicKey.
const (
	// MetaNotBeforeRound is the first round (decimal) at which the
	// resource may be released.
	MetaNotBeforeRound = "not_before_round"
	// MetaBeaconChainHash is the hex chain hash of the pinned chain; it
	// tells clients where to fetch beacons and is recorded in refusals.
	MetaBeaconChainHash = "beacon_chain_hash"
	// MetaBeaconPublicKey is the hex public key (a compressed G2 point,
	// scheme bls-unchained-g1-rfc9380) that beacon signatures must verify
	// under.
	MetaBeaconPublicKey = "beacon_public_key"
)

// Query parameters that carry a beacon on GET /kbs/v0/resource/...
const (
	BeaconRoundParam     = "kura-beacon-round"
	BeaconSignatureParam = "kura-beacon-signature"
)

// maxBeaconSignature bounds the hex signature a request may carry.
const maxBeaconSignature = 512

// checkTimePolicy refuses a time-released resource unless query carries a
// verified beacon of the release round or a later one.
func checkTimePolicy(r *store.Resource, query map[string]string) error {
	nb, ok := r.Metadata[MetaNotBeforeRound]
	if !ok {
		return nil
	}
	chainHash := r.Metadata[MetaBeaconChainHash]
	notBefore, err := strconv.ParseUint(nb, 10, 64)
	if err != nil || notBefore == 0 {
		return fmt.Errorf("%w: %s has an invalid %s %q: the owner must fix its metadata", ErrDenied, r.Path, MetaNotBeforeRound, nb)
	}
	sch, err := crypto.SchemeFromName(crypto.SigsOnG1ID)
	if err != nil {
		return err
	}
	pub := sch.KeyGroup.Point()
	pk, err := hex.DecodeString(r.Metadata[MetaBeaconPublicKey])
	if err == nil {
		err = pub.UnmarshalBinary(pk)
	}
	if err != nil || pub.Equal(pub.Null()) {
		return fmt.Errorf("%w: %s is time-released but has no valid %s: the owner must pin the chain's public key", ErrDenied, r.Path, MetaBeaconPublicKey)
	}
	rs, sigHex := query[BeaconRoundParam], query[BeaconSignatureParam]
	if rs == "" || sigHex == "" {
		return fmt.Errorf("%w: %s is time-released at round %d of chain %s: present that round's beacon (%s, %s)", ErrDenied, r.Path, notBefore, chainHash, BeaconRoundParam, BeaconSignatureParam)
	}
	round, err := strconv.ParseUint(rs, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not a round number", ErrBadRequest, BeaconRoundParam, rs)
	}
	if len(sigHex) > maxBeaconSignature {
		return fmt.Errorf("%w: %s too long", ErrBadRequest, BeaconSignatureParam)
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil {
		return fmt.Errorf("%w: %s is not hex", ErrBadRequest, BeaconSignatureParam)
	}
	if round < notBefore {
		return fmt.Errorf("%w: %s is time-released at round %d of chain %s; the beacon presented is round %d, earlier", ErrDenied, r.Path, notBefore, chainHash, round)
	}
	if err := sch.VerifyBeacon(&chain.Beacon{Round: round, Signature: sig}, pub); err != nil {
		return fmt.Errorf("%w: the beacon presented for round %d does not verify under the public key pinned on %s (chain %s)", ErrDenied, round, r.Path, chainHash)
	}
	return nil
}

// ResourceWithBeacon fetches and decrypts the resource at path, presenting
// the beacon of round (its signature by the chain) for a time-released
// resource (docs/spec/timelock.md §7).
func (s *Session) ResourceWithBeacon(ctx context.Context, path string, round uint64, signature []byte) ([]byte, error) {
	if _, err := ParsePath(path); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Set(BeaconRoundParam, strconv.FormatUint(round, 10))
	q.Set(BeaconSignatureParam, hex.EncodeToString(signature))
	var raw json.RawMessage
	if err := s.do(ctx, "GET", "/kbs/v0/resource/"+path+"?"+q.Encode(), nil, &raw); err != nil {
		return nil, err
	}
	return s.decrypt(raw)
}
