package models

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm/clause"
)

var lockingUpdate = clause.Locking{Strength: "UPDATE"}

// Kind classifies a domain error; the api package maps each kind to one HTTP
// status, so no other package decides status codes.
type Kind int

// The kinds of domain error.
const (
	KindInternal     Kind = iota
	KindBadRequest        // unparsable input
	KindInvalid           // parsable but invalid input (field errors)
	KindUnauthorized      // no or bad credentials
	KindForbidden         // authenticated but not allowed
	KindNotFound          // absent, or invisible to the caller
	KindConflict          // state conflict (duplicate, already done)
	KindGone              // existed but is used up or expired
	KindTooLarge          // body or field over a limit
	KindRateLimited       // over a rate limit
	KindUnavailable       // dependency down
)

// FieldError names one invalid input field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is a domain error with a stable machine-readable code.
type Error struct {
	Kind   Kind
	Code   string // stable snake_case code for clients
	Detail string // human sentence, safe to show
	Fields []FieldError
	// RetryAfterSeconds is set for KindRateLimited.
	RetryAfterSeconds int
	// Extra is merged into the problem body (e.g. the winning key pubkey).
	Extra map[string]any
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return e.Code + ": " + e.Detail
	}
	return e.Code
}

// E builds a domain error.
func E(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Invalid builds a 422-class error from field errors.
func Invalid(fields ...FieldError) *Error {
	return &Error{Kind: KindInvalid, Code: "validation_failed", Detail: "the request has invalid fields", Fields: fields}
}

// AsError extracts a domain error from err's chain.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// Common errors shared across resources.
var (
	ErrNotFound     = E(KindNotFound, "not_found", "no such resource")
	ErrUnauthorized = E(KindUnauthorized, "unauthorized", "missing or invalid credentials")
)

// notFound builds a not-found error naming the resource.
func notFound(what string) *Error {
	return E(KindNotFound, what+"_not_found", "no such %s", what)
}

// ErrDatabaseUnavailable is what callers see when the database cannot be
// reached; the api package answers it with 503 and Retry-After (and adds
// the clientMessageId note to a message post, the one request it fits).
var ErrDatabaseUnavailable = &Error{Kind: KindUnavailable, Code: "database_unavailable",
	Detail:            "the database is unreachable; retry shortly",
	RetryAfterSeconds: 2}

// IsUnavailable reports whether err means the database could not be reached
// or dropped the connection (refused, reset, shutting down, not accepting
// connections), as opposed to refusing the statement itself. Such an error
// is worth retrying and must not be read as "revoked" or "not found".
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if de, ok := AsError(err); ok {
		return de.Kind == KindUnavailable
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // admin/crash shutdown, cannot connect now
			pe.Code == "53300": // too many connections
			return true
		}
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	// pgx reports a connection lost mid-statement as "conn closed" or an
	// unexpected EOF wrapped in text; database/sql as "bad connection".
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "unexpected EOF") ||
		strings.Contains(msg, "bad connection") || strings.Contains(msg, "connection reset by peer") ||
		strings.Contains(msg, "broken pipe")
}
