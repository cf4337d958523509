package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/claudemesh/claudemesh-go/client"
)

// APIError is a refusal from the broker: an HTTP error with its problem.
type APIError struct {
	Status  int
	Problem client.Problem
}

func (e *APIError) Error() string {
	msg := e.Problem.Title
	if e.Problem.Detail != nil && *e.Problem.Detail != "" {
		msg = *e.Problem.Detail
	}
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	// A 422 names each field and its rule: say them, not just "invalid".
	if e.Problem.Errors != nil {
		for i, fe := range *e.Problem.Errors {
			sep := "; "
			if i == 0 {
				sep = ": "
			}
			msg += sep + fe.Field + " " + fe.Message
		}
	}
	if e.Problem.Code != "" {
		return fmt.Sprintf("%s (%d %s)", msg, e.Status, e.Problem.Code)
	}
	return fmt.Sprintf("%s (%d)", msg, e.Status)
}

// Code is the problem's stable code ("" when the body had none).
func (e *APIError) Code() string { return e.Problem.Code }

// NetworkError is a failure to reach the broker at all.
type NetworkError struct {
	Server string
	Err    error
}

func (e *NetworkError) Error() string {
	return fmt.Sprintf("cannot reach the broker at %s: %v", e.Server, e.Err)
}

func (e *NetworkError) Unwrap() error { return e.Err }

// NewREST builds the generated client for a broker, authenticated with key
// (none when empty).
func NewREST(server, key string, hc *http.Client) (*client.ClientWithResponses, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	opts := []client.ClientOption{client.WithHTTPClient(hc)}
	if key != "" {
		opts = append(opts, client.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+key)
			return nil
		}))
	}
	return client.NewClientWithResponses(strings.TrimRight(server, "/"), opts...)
}

// REST is the generated client for this mesh, with its API key.
func (m *Mesh) REST(hc *http.Client) (*client.ClientWithResponses, error) {
	return NewREST(m.Server, m.APIKey, hc)
}

// Response is what every generated *XxxResponse has.
type Response interface {
	StatusCode() int
	GetBody() []byte
}

// Check turns a generated call's outcome into an error: a transport error
// becomes a *NetworkError, a status other than want an *APIError. r is
// only read when err is nil.
func Check(server string, err error, r Response, want ...int) error {
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return &NetworkError{Server: server, Err: unwrapURL(err)}
	}
	for _, w := range want {
		if r.StatusCode() == w {
			return nil
		}
	}
	ae := &APIError{Status: r.StatusCode()}
	_ = json.Unmarshal(r.GetBody(), &ae.Problem)
	return ae
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		var oe *net.OpError
		if errors.As(ue.Err, &oe) {
			return oe.Err
		}
		return ue.Err
	}
	return err
}
