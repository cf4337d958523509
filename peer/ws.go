package peer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
)

// WSURL is the mesh's /ws address (ws:// for http://, wss:// for https://).
func (m *Mesh) WSURL() (string, error) {
	u, err := url.Parse(strings.TrimRight(m.Server, "/"))
	if err != nil {
		return "", fmt.Errorf("server %q: %w", m.Server, err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("server %q: want an http:// or https:// URL", m.Server)
	}
	u.Path += "/ws"
	return u.String(), nil
}

// DialWS connects to the mesh's /ws and says the signed hello as sessionID.
// A refused hello is an *APIError-like *WSRefusedError; a failed dial a
// *NetworkError.
func (m *Mesh) DialWS(ctx context.Context, id meshcrypto.Identity, sessionID string, hc *http.Client) (*Conn, error) {
	return m.DialSession(ctx, id, WSSession{ID: sessionID}, hc)
}

// WSSession names a /ws session: its id and, for a Claude Code session,
// the process and directory hooks will name it by (POST /hook/set-status).
type WSSession struct {
	ID  string
	Pid *int
	Cwd *string
}

// DialSession is DialWS with the session's pid and cwd in the hello.
func (m *Mesh) DialSession(ctx context.Context, id meshcrypto.Identity, s WSSession, hc *http.Client) (*Conn, error) {
	u, err := m.WSURL()
	if err != nil {
		return nil, err
	}
	c, err := Connect(ctx, u, hc)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &NetworkError{Server: m.Server, Err: unwrapURL(errors.Unwrap(err))}
	}
	err = c.Hello(ctx, HelloOptions{Identity: id, MeshID: m.ID, MemberID: m.MemberID, SessionID: s.ID,
		DisplayName: m.DisplayName, Pid: s.Pid, Cwd: s.Cwd})
	if err != nil {
		_ = c.CloseNow()
		if code, reason := CloseStatus(err); code >= 4000 {
			return nil, &WSRefusedError{Code: code, Reason: reason}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &NetworkError{Server: m.Server, Err: err}
	}
	return c, nil
}

// WSRefusedError is the broker closing /ws with an application code (44xx).
type WSRefusedError struct {
	Code   int
	Reason string
}

func (e *WSRefusedError) Error() string {
	return fmt.Sprintf("the broker refused the connection: %s (%d)", e.Reason, e.Code)
}
