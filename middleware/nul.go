package middleware

import (
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/models"
)

// RefuseNUL refuses a request whose path or query holds U+0000 before any
// handler can pass it to the database (PostgreSQL cannot store NUL in text;
// SQLite would): a path is then no resource (404), a query parameter is a
// 400 naming it, as other bad query parameters are. JSON bodies are checked
// where they are decoded (422 naming the field).
func RefuseNUL(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u := c.Request().URL
		if strings.IndexByte(u.Path, 0) >= 0 {
			return models.ErrNotFound
		}
		if strings.Contains(u.RawQuery, "%00") {
			for name, vals := range u.Query() {
				for _, v := range vals {
					if strings.IndexByte(name, 0) >= 0 || strings.IndexByte(v, 0) >= 0 {
						name = strings.ReplaceAll(name, "\x00", "")
						return &models.Error{Kind: models.KindBadRequest, Code: "invalid_query",
							Detail: "query parameters must not contain the NUL character (U+0000)",
							Fields: []models.FieldError{{Field: name, Message: "must not contain the NUL character (U+0000)"}}}
					}
				}
			}
		}
		return next(c)
	}
}
