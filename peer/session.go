package peer

import (
	"net/http"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/meshcrypto"
)

// Session is one joined mesh ready to act in: the mesh, the identity it
// was joined with, and its REST client. The CLI, the MCP server and the
// hooks all start from one.
type Session struct {
	Mesh *Mesh
	ID   meshcrypto.Identity
	API  *client.ClientWithResponses
}

// Open loads the config and identity and selects the mesh sel (slug or
// id; "" is the default mesh). It refuses an identity that is not the one
// the mesh was joined with, since nothing it signs or opens would work.
func (h Home) Open(sel string, hc *http.Client) (*Session, error) {
	cfg, err := h.Load()
	if err != nil {
		return nil, err
	}
	m, err := cfg.Select(sel)
	if err != nil {
		return nil, err
	}
	id, err := h.Identity()
	if err != nil {
		return nil, err
	}
	if id.PublicKeyHex() != m.Pubkey {
		return nil, &IdentityMismatchError{Dir: h.Dir, Slug: m.Slug}
	}
	api, err := m.REST(hc)
	if err != nil {
		return nil, err
	}
	return &Session{Mesh: m, ID: id, API: api}, nil
}

// IdentityMismatchError: the identity file is not the mesh's member key.
type IdentityMismatchError struct{ Dir, Slug string }

func (e *IdentityMismatchError) Error() string {
	return "the identity in " + e.Dir + " is not the one mesh " + e.Slug + " was joined with: restore it, or join again"
}

// Check is peer.Check for the session's server.
func (s *Session) Check(err error, r Response, want ...int) error {
	return Check(s.Mesh.Server, err, r, want...)
}
