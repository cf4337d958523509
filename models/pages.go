package models

import (
	"encoding/base64"
	"fmt"

	"gorm.io/gorm"
)

// Paging bounds shared by every list.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 200
)

// PageRequest is a keyset page request: items after Cursor, at most Limit.
type PageRequest struct {
	Limit  int
	Cursor string
}

// Page is one page of a list.
type Page[T any] struct {
	Items      []T
	NextCursor string // empty when HasMore is false
	HasMore    bool
}

// normalise clamps the limit and decodes the cursor.
func (p PageRequest) normalise() (limit int, after string, err error) {
	limit = p.Limit
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	if limit > MaxPageLimit {
		limit = MaxPageLimit
	}
	if p.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(p.Cursor)
		if err != nil || !ValidID(string(b)) {
			return 0, "", E(KindBadRequest, "invalid_query", "cursor is not a cursor this server issued")
		}
		after = string(b)
	}
	return limit, after, nil
}

// pageByID pages q in id order. UUIDv7 ids sort by creation time, and the id
// is unique, so the keyset never skips or repeats a row.
func pageByID[T any](q *gorm.DB, p PageRequest, idOf func(T) string) (Page[T], error) {
	limit, after, err := p.normalise()
	if err != nil {
		return Page[T]{}, err
	}
	if after != "" {
		q = q.Where("id > ?", after)
	}
	var rows []T
	if err := q.Order("id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return Page[T]{}, fmt.Errorf("list: %w", err)
	}
	return cut(rows, limit, idOf), nil
}

// encodeCursor makes an opaque cursor from an id.
func encodeCursor(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }
