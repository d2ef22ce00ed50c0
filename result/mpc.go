package result

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/party"
)

// AgentType is the payload type of an mpc agent's statement.
const AgentType = "application/vnd.kura.mpc-agent+json"

// Roles of the two agents of an mpc run (docs/spec/mpc.md §3).
const (
	// RoleInitiator is the agent of the owner whose dataset holds the
	// analysis's dimensions: it starts the run and computes the result.
	RoleInitiator = "initiator"
	// RoleResponder is the other owner's agent: it answers one request.
	RoleResponder = "responder"
)

// AgentStatement is what an owner's agent signs, with the owner's party
// signing key, about its part in a run on the cryptographic backend: the
// analog, for a run without a TEE, of the attestation that binds a run to
// approved code. The initiator's statement vouches for the run context
// (and so the run's signing key); the responder's says which request it
// answered with which response, and that it kept nothing.
type AgentStatement struct {
	Version int    `json:"v"`
	Role    string `json:"role"`
	Run     []byte `json:"run"`   // the run context bytes
	Party   string `json:"party"` // the owner's party name
	// Dataset and SealedSHA256 name the owner's dataset the agent read.
	Dataset      string `json:"dataset"`
	SealedSHA256 string `json:"sealed_sha256"`
	// Session is the PSI session id, hex.
	Session string `json:"session"`
	// RequestSHA256 is the hex SHA-256 of the PSI request the initiator
	// sent; ResponseSHA256, in the responder's statement, of its answer.
	RequestSHA256  string `json:"request_sha256"`
	ResponseSHA256 string `json:"response_sha256,omitempty"`
	// ValueKey is the agent's public share (hex) of the two-party key the
	// responder's values are encrypted under, when the analysis sums them;
	// DecryptRequestSHA256 and DecryptResponseSHA256, in the responder's
	// statement, name the exchange in which it helped decrypt the sums.
	ValueKey string `json:"value_key,omitempty"`
	// ValuesSHA256, in the responder's statement, is the hex SHA-256 of
	// the initiator's encrypted values it received, when the analysis
	// sums the initiator's columns.
	ValuesSHA256          string `json:"values_sha256,omitempty"`
	DecryptRequestSHA256  string `json:"decrypt_request_sha256,omitempty"`
	DecryptResponseSHA256 string `json:"decrypt_response_sha256,omitempty"`
	// Identifiers is how many distinct identifiers the agent contributed.
	Identifiers int `json:"identifiers"`
	// Epsilon is the ε charged to the dataset's privacy budget, if any.
	Epsilon string `json:"epsilon,omitempty"`
	// PlaintextBytes is how much decrypted data the agent held for the run
	// and wiped afterwards.
	PlaintextBytes int64     `json:"plaintext_bytes"`
	SignedAt       time.Time `json:"signed_at"`
}

// SignAgent signs s with the party's signing key.
func SignAgent(s *AgentStatement, id *party.Identity) (*Envelope, error) {
	s.Version = FormatVersion
	payload, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	card := id.Card()
	return &Envelope{
		PayloadType: AgentType,
		Payload:     payload,
		Signatures:  []Signature{{KeyID: keyID(card.SigningKey), Sig: id.Sign(pae(AgentType, payload))}},
	}, nil
}

// VerifyAgent checks an agent statement's signature under the card's
// signing key and decodes it.
func VerifyAgent(e *Envelope, card *party.Card) (*AgentStatement, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: no agent statement", ErrMalformed)
	}
	if err := e.verify(AgentType, ed25519.PublicKey(card.SigningKey)); err != nil {
		return nil, fmt.Errorf("agent statement of %q: %w", card.Name, err)
	}
	var s AgentStatement
	if err := decodeStrict(e.Payload, &s); err != nil {
		return nil, fmt.Errorf("%w: agent statement: %v", ErrMalformed, err)
	}
	if s.Version != FormatVersion {
		return nil, fmt.Errorf("%w: agent statement version %d, want %d", ErrMalformed, s.Version, FormatVersion)
	}
	if s.Party != card.Name {
		return nil, fmt.Errorf("%w: a statement signed by %q names party %q", ErrUntrusted, card.Name, s.Party)
	}
	return &s, nil
}

// mpcRun is attestedRun's counterpart for the cryptographic backend: the
// collaboration verifies and its current manifest is the run's; the
// analysis is approved for the mpc backend; the run carries one statement
// by each owner whose dataset the analysis reads, signed with the signing
// key on that owner's card, naming exactly this run, the manifest's sealed
// file, the same session and request, and a responder's response.
//
// The owners' cards are trusted because the verifying party approved the
// manifest that lists them: t.Party must be set and its approval must
// cover the run's version.
func mpcRun(run []byte, evidence json.RawMessage, ear string, collabFile json.RawMessage, agents []*Envelope, t Trust) (*Attested, error) {
	if len(bytes.TrimSpace(evidence)) > 0 && !bytes.Equal(bytes.TrimSpace(evidence), []byte("null")) || ear != "" {
		return nil, fmt.Errorf("%w: a run with agent statements carries no attestation", ErrMalformed)
	}
	rc, err := collab.ParseRunContext(run)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	c, err := collab.ParseCollaboration(collabFile)
	if err != nil {
		return nil, fmt.Errorf("%w: collaboration: %w", ErrMalformed, err)
	}
	if err := c.Verify(); err != nil {
		return nil, fmt.Errorf("%w: collaboration: %w", ErrUntrusted, err)
	}
	m := c.Current()
	if h := m.Hash(); h != rc.ManifestHash || m.ID != rc.Collaboration {
		return nil, fmt.Errorf("%w: the run is for %s manifest %s, the collaboration's current version is %s manifest %s", ErrUntrusted, rc.Collaboration, rc.ManifestHash, m.ID, h)
	}
	a := &Attested{Run: rc, Manifest: m, collab: c, TEE: "mpc", Status: "affirming"}
	a.Checks = append(a.Checks, "collaboration history and approvals' signatures verify; manifest "+rc.ManifestHash[:16]+"…")
	if len(t.Party) == 0 {
		return nil, fmt.Errorf("%w: a run of the mpc backend is vouched for by the owners' cards in the manifest, which only a party that approved it can trust: verify as a party", ErrUntrusted)
	}
	if err := c.CheckPartyApproved(t.Party); err != nil {
		return nil, fmt.Errorf("%w: the owners' cards are trusted through your approval of this version: %w", ErrUntrusted, err)
	}
	a.Checks = append(a.Checks, "your approval covers this version, so its owners' cards are trusted")
	an := m.Analysis(rc.Analysis)
	if an == nil || an.BackendOf() != collab.BackendMPC {
		return nil, fmt.Errorf("%w: analysis %q is not approved for the mpc backend", ErrUntrusted, rc.Analysis)
	}
	reads := collab.ReadsOf(an)
	if len(agents) != len(reads) {
		return nil, fmt.Errorf("%w: %d agent statements for %d datasets", ErrUntrusted, len(agents), len(reads))
	}
	var session, request string
	roles := map[string]int{}
	for i, id := range reads {
		ds := m.Dataset(id)
		p := m.Party(ds.Owner)
		s, err := VerifyAgent(agents[i], p.Card)
		if err != nil {
			return nil, err
		}
		switch {
		case !bytes.Equal(s.Run, run):
			return nil, fmt.Errorf("%w: %s's statement is for another run", ErrUntrusted, p.Name)
		case s.Dataset != id || s.SealedSHA256 != ds.Descriptor.SealedSHA256:
			return nil, fmt.Errorf("%w: %s's statement names dataset %q (%.16s…), the manifest %q (%.16s…)", ErrUntrusted, p.Name, s.Dataset, s.SealedSHA256, id, ds.Descriptor.SealedSHA256)
		case s.Role != RoleInitiator && s.Role != RoleResponder || s.Role == RoleInitiator && roles[s.Role] > 0:
			return nil, fmt.Errorf("%w: %s's statement has role %q", ErrUntrusted, p.Name, s.Role)
		case s.Role == RoleResponder && s.ResponseSHA256 == "":
			return nil, fmt.Errorf("%w: the responder's statement names no response", ErrUntrusted)
		case s.Role == RoleResponder && sums(an) && (s.ValueKey == "" || s.DecryptRequestSHA256 == "" || s.DecryptResponseSHA256 == ""):
			return nil, fmt.Errorf("%w: the analysis sums the responder's values, but its statement names no decryption of them", ErrUntrusted)
		case i > 0 && (s.Session != session || s.RequestSHA256 != request):
			return nil, fmt.Errorf("%w: the agents' statements name different sessions or requests", ErrUntrusted)
		}
		if _, err := hex.DecodeString(s.Session); err != nil || len(s.Session) != 64 {
			return nil, fmt.Errorf("%w: %s's statement: session %q", ErrMalformed, p.Name, s.Session)
		}
		roles[s.Role]++
		session, request = s.Session, s.RequestSHA256
	}
	if roles[RoleInitiator] != 1 || roles[RoleResponder] < 1 {
		return nil, fmt.Errorf("%w: a run has one initiator and at least one responder, these statements %v", ErrUntrusted, roles)
	}
	who := "both owners' agents"
	if len(reads) > 2 {
		who = fmt.Sprintf("all %d owners' agents", len(reads))
	}
	a.Checks = append(a.Checks, fmt.Sprintf("%s signed this run (session %.16s…) with the keys on their cards", who, session))
	a.Measurement = "session " + session
	return a, nil
}

// sums reports whether an analysis has sum or avg measures, which the
// cryptographic backend decrypts with both agents.
func sums(an *collab.Analysis) bool {
	for _, ms := range an.Aggregate.Measures {
		if ms.Func == collab.AggSum || ms.Func == collab.AggAvg {
			return true
		}
	}
	return false
}
