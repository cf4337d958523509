package peer

import (
	"context"
	"errors"
	"net/http"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// Caller sends a request on /ws and returns the frame that answers it: a
// *Conn, or a front end's long-lived connection that multiplexes refs.
type Caller interface {
	Call(ctx context.Context, req wsproto.Request) (*Frame, error)
}

// FrameError turns an /ws error frame into the *APIError every front end
// maps to exit codes and messages.
func FrameError(f *Frame) error {
	e, err := As[wsproto.Error](f)
	if err != nil {
		return err
	}
	msg := e.Message
	return &APIError{Status: http.StatusBadRequest, Problem: client.Problem{Code: e.Code, Title: msg, Detail: &msg}}
}

// Ask sends req and decodes the answer into T; an error frame comes back
// as *APIError, a broken connection as *NetworkError.
func Ask[T any](ctx context.Context, s *Session, c Caller, req wsproto.Request) (T, error) {
	var zero T
	f, err := c.Call(ctx, req)
	if err != nil {
		return zero, s.netError(err)
	}
	if f.Type == wsproto.TypeError {
		return zero, FrameError(f)
	}
	return As[T](f)
}

// netError wraps a transport failure as *NetworkError, leaving refusals,
// cancellations and errors already classified alone.
func (s *Session) netError(err error) error {
	var ae *APIError
	var ne *NetworkError
	var we *WSRefusedError
	switch {
	case err == nil, errors.As(err, &ae), errors.As(err, &ne), errors.As(err, &we),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return &NetworkError{Server: s.Mesh.Server, Err: err}
}
