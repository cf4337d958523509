package peer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

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

// ErrNoSuchMember: no member of the mesh matches a recipient.
var ErrNoSuchMember = errors.New("no such member")

// NoSuchMemberError is a recipient no member matches, with the names a
// person most likely meant ("@dan" for "dan", "@bob" for "@bpb").
type NoSuchMemberError struct {
	To, Mesh string
	Maybe    []string // display names with their @
}

func (e *NoSuchMemberError) Error() string {
	return fmt.Sprintf("%v %s in mesh %s", ErrNoSuchMember, e.To, e.Mesh)
}

func (e *NoSuchMemberError) Unwrap() error { return ErrNoSuchMember }

// ResolveMember finds a member by @name, member id or pubkey.
func (s *Session) ResolveMember(ctx context.Context, to string) (client.Member, error) {
	name := strings.ToLower(strings.TrimPrefix(to, "@"))
	limit := client.Limit(200)
	var cursor *string
	var names []string
	for {
		r, err := s.API.ListMembersWithResponse(ctx, &client.ListMembersParams{Limit: &limit, Cursor: cursor})
		if err := s.Check(err, r, http.StatusOK); err != nil {
			return client.Member{}, err
		}
		for _, m := range r.JSON200.Items {
			if m.Id.String() == to || (strings.HasPrefix(to, "@") && m.DisplayName == name) || m.Pubkey == to {
				return m, nil
			}
			names = append(names, m.DisplayName)
		}
		if !r.JSON200.HasMore || r.JSON200.NextCursor == nil {
			return client.Member{}, &NoSuchMemberError{To: to, Mesh: s.Mesh.Slug, Maybe: closeNames(name, names)}
		}
		cursor = r.JSON200.NextCursor
	}
}

// ListPeers reads the mesh's connected sessions, all pages.
func (s *Session) ListPeers(ctx context.Context) ([]client.Peer, error) {
	return allPages(ctx, func(ctx context.Context, limit client.Limit, cursor *string) ([]client.Peer, bool, *string, error) {
		r, err := s.API.ListPeersWithResponse(ctx, &client.ListPeersParams{Limit: &limit, Cursor: cursor})
		if err := s.Check(err, r, http.StatusOK); err != nil {
			return nil, false, nil, err
		}
		return r.JSON200.Items, r.JSON200.HasMore, r.JSON200.NextCursor, nil
	})
}

// allPages reads a keyset-paged list to its end, 200 items a request.
func allPages[T any](ctx context.Context, page func(ctx context.Context, limit client.Limit, cursor *string) ([]T, bool, *string, error)) ([]T, error) {
	var out []T
	var cursor *string
	for {
		items, more, next, err := page(ctx, 200, cursor)
		if err != nil {
			return out, err
		}
		out = append(out, items...)
		if !more || next == nil {
			return out, nil
		}
		cursor = next
	}
}

// ReportStatus reports the status of this member's session running in
// cwd over REST (POST /hook/set-status), as hooks and `claudemesh status`
// do; pid is the Claude Code process.
func (s *Session) ReportStatus(ctx context.Context, status string, summary *string, pid int, cwd string) (*client.HookStatusResult, error) {
	r, err := s.API.SetStatusFromHookWithResponse(ctx, client.HookStatusRequest{Status: client.PeerStatus(status), Pid: pid, Cwd: cwd, Summary: summary})
	if err := s.Check(err, r, http.StatusOK); err != nil {
		return nil, err
	}
	return r.JSON200, nil
}

// closeNames are the display names a person typing name most likely meant:
// the name itself (typed without its @), else at most three that are one
// typo away (two for names over four letters) or that it begins.
func closeNames(name string, names []string) []string {
	typos := 1
	if len(name) > 4 {
		typos = 2
	}
	var out []string
	for _, n := range names {
		if n == name {
			return []string{"@" + n}
		}
		if len(out) < 3 && (editDistance(name, n) <= typos || (len(name) >= 2 && strings.HasPrefix(n, name))) {
			out = append(out, "@"+n)
		}
	}
	return out
}

// editDistance counts the insertions, deletions, substitutions and swaps
// of neighbours that turn a into b (optimal string alignment; in bytes:
// display names are ASCII).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
