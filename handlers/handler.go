// Package handlers holds one file per REST resource. Each handler does four
// things: find the caller, decode the input, make one store call, render.
// No SQL and no business rule lives here.
package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/stream"
)

// Handler carries the dependencies every handler needs; built once in api.
type Handler struct {
	Store  *models.Store
	Tokens *middleware.Tokens
	Log    *slog.Logger
	// OpenAPI is the contract served at /openapi.yaml.
	OpenAPI []byte
	// Hub fans committed messages out to streams.
	Hub *stream.Hub
	// StreamHeartbeat and StreamRevalidate override the SSE timings (tests).
	StreamHeartbeat, StreamRevalidate time.Duration
	// StreamUnavailableGrace: how long a stream outlives an unreachable
	// database (zero: the stream package's default).
	StreamUnavailableGrace time.Duration
	// Closing is closed when the server shuts down; open streams end then.
	Closing <-chan struct{}
	// Streams counts open SSE streams per credential (the cap).
	Streams *stream.Slots
	// NATS reports the link to the other nodes for /ready
	// (stream.NATSConnected, …); nil when the broker runs alone.
	NATS func() string
}

// bind decodes a JSON body strictly: unknown fields and trailing data are
// 400s, a non-JSON content type is 415. An empty body leaves v untouched
// when optional is true.
func bind(c echo.Context, v any, optional bool) error {
	req := c.Request()
	if req.ContentLength == 0 && optional {
		return nil
	}
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return echo.NewHTTPError(http.StatusUnsupportedMediaType, "the body must be application/json")
		}
	} else if !optional {
		return echo.NewHTTPError(http.StatusUnsupportedMediaType, "the body must be application/json")
	}
	// The body is bounded by the body-limit middleware; reading it whole
	// lets one scan refuse NUL in any field before anything is decoded.
	raw, err := io.ReadAll(req.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) || strings.Contains(err.Error(), "request body too large") {
			return echo.ErrStatusRequestEntityTooLarge
		}
		return models.E(models.KindBadRequest, "malformed_json", "the body could not be read")
	}
	if len(raw) == 0 && optional {
		return nil
	}
	if field, ok := models.NULField(raw); ok {
		return models.NULFieldError(field)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) && optional {
			return nil
		}
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) || (err != nil && strings.Contains(err.Error(), "request body too large")) {
			return echo.ErrStatusRequestEntityTooLarge
		}
		return models.E(models.KindBadRequest, "malformed_json", "the body is not valid JSON for this operation: %s", jsonErrorDetail(err))
	}
	if dec.More() {
		return models.E(models.KindBadRequest, "malformed_json", "the body has data after the JSON value")
	}
	return nil
}

// jsonErrorDetail describes a decode error without echoing body contents.
func jsonErrorDetail(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the body is empty or cut short"
	}
	return "unreadable JSON"
}

// pageRequest reads ?limit= and ?cursor=.
func pageRequest(c echo.Context) (models.PageRequest, error) {
	var p models.PageRequest
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > models.MaxPageLimit {
			return p, models.E(models.KindBadRequest, "invalid_query", "limit must be an integer from 1 to %d", models.MaxPageLimit)
		}
		p.Limit = n
	}
	p.Cursor = c.QueryParam("cursor")
	return p, nil
}

// boolQuery reads an optional boolean query parameter.
func boolQuery(c echo.Context, name string) (bool, error) {
	s := c.QueryParam(name)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, models.E(models.KindBadRequest, "invalid_query", "%s must be true or false", name)
	}
	return b, nil
}

// pageView is the JSON of every list.
type pageView[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"nextCursor"`
	HasMore    bool    `json:"hasMore"`
}

func renderPage[M, V any](p models.Page[M], view func(*M) V) pageView[V] {
	out := pageView[V]{Items: make([]V, 0, len(p.Items)), HasMore: p.HasMore}
	for i := range p.Items {
		out.Items = append(out.Items, view(&p.Items[i]))
	}
	if p.HasMore {
		c := p.NextCursor
		out.NextCursor = &c
	}
	return out
}

// utc renders times in UTC.
func utc(t time.Time) time.Time { return t.UTC() }

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
