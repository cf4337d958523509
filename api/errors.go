package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
)

// problem is an RFC 9457 problem document with our stable code.
type problem struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail,omitempty"`
	Code      string              `json:"code"`
	Instance  string              `json:"instance,omitempty"`
	RequestID string              `json:"requestId,omitempty"`
	Errors    []models.FieldError `json:"errors,omitempty"`
}

var kindStatus = map[models.Kind]int{
	models.KindInternal:     http.StatusInternalServerError,
	models.KindBadRequest:   http.StatusBadRequest,
	models.KindInvalid:      http.StatusUnprocessableEntity,
	models.KindUnauthorized: http.StatusUnauthorized,
	models.KindForbidden:    http.StatusForbidden,
	models.KindNotFound:     http.StatusNotFound,
	models.KindConflict:     http.StatusConflict,
	models.KindGone:         http.StatusGone,
	models.KindTooLarge:     http.StatusRequestEntityTooLarge,
	models.KindRateLimited:  http.StatusTooManyRequests,
	models.KindUnavailable:  http.StatusServiceUnavailable,
}

var httpCodes = map[int]string{
	http.StatusBadRequest:            "bad_request",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "route_not_found",
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusRequestEntityTooLarge: "body_too_large",
	http.StatusUnsupportedMediaType:  "unsupported_media_type",
	http.StatusTooManyRequests:       "rate_limited",
	http.StatusServiceUnavailable:    "unavailable",
}

// errorHandler is the one place where errors become HTTP responses.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := problem{Type: "about:blank", RequestID: middleware.RequestIDFrom(c)}
		var (
			he    *echo.HTTPError
			extra map[string]any
		)
		if _, domain := models.AsError(err); !domain && models.IsUnavailable(err) {
			// The database is unreachable: a 503 the client may retry, not a
			// 500 (and never the driver's text, which names hosts and users).
			log.Warn("database unavailable", slog.String("request_id", p.RequestID), slog.String("route", c.Path()))
			err = models.ErrDatabaseUnavailable
		}
		if de, ok := models.AsError(err); ok {
			extra = de.Extra
			p.Status = kindStatus[de.Kind]
			p.Code, p.Detail, p.Errors = de.Code, de.Detail, de.Fields
			if de.Code == models.ErrDatabaseUnavailable.Code {
				p.Detail = unavailableDetail(c)
			}
			if de.Kind == models.KindRateLimited || (de.Kind == models.KindUnavailable && de.RetryAfterSeconds > 0) {
				c.Response().Header().Set("Retry-After", strconv.Itoa(max(de.RetryAfterSeconds, 1)))
			}
			if de.Kind == models.KindUnauthorized {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="claudemesh"`)
			}
		} else if errors.As(err, &he) {
			p.Status = he.Code
			p.Code = httpCodes[he.Code]
			if p.Code == "" {
				p.Code = "http_" + strconv.Itoa(he.Code)
			}
			if msg, ok := he.Message.(string); ok {
				p.Detail = msg
			}
			if he.Code == http.StatusRequestEntityTooLarge {
				p.Detail = "the request body is larger than this server accepts"
			}
		} else {
			p.Status, p.Code = http.StatusInternalServerError, "internal"
			p.Detail = "an internal error occurred; quote the request id when reporting it"
			log.Error("request failed", slog.String("request_id", p.RequestID), slog.String("route", c.Path()), slog.String("error", err.Error()))
		}
		if p.Status == 0 {
			p.Status = http.StatusInternalServerError
		}
		p.Title = http.StatusText(p.Status)
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(p.Status)
			return
		}
		c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
		c.Response().WriteHeader(p.Status)
		_ = jsonEncode(c, withExtra(p, extra))
	}
}

// unavailableDetail words database_unavailable for the request: only a
// message post carries a clientMessageId, which makes its retry safe even
// if the first attempt was stored after all; a read, a login or any other
// request just retries.
func unavailableDetail(c echo.Context) string {
	if c.Request().Method == http.MethodPost && c.Path() == "/v1/messages" {
		return "the database is unreachable; retry shortly with the same clientMessageId (the post is stored once, however often it is retried)"
	}
	return models.ErrDatabaseUnavailable.Detail
}

// withExtra adds a domain error's extension members (RFC 9457 §3.2) to the
// problem, never overriding the standard ones.
func withExtra(p problem, extra map[string]any) any {
	if len(extra) == 0 {
		return p
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return p
	}
	out := map[string]any{}
	if err := json.Unmarshal(raw, &out); err != nil {
		return p
	}
	for k, v := range extra {
		if _, taken := out[k]; !taken {
			out[k] = v
		}
	}
	return out
}
