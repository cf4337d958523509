package handlers

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/stream"
)

// ListNotifications pages the caller's notifications, newest first:
// GET /v1/notifications?unread=&since=&cursor=&limit=.
func (h *Handler) ListNotifications(c echo.Context) error {
	pr, err := pageRequest(c)
	if err != nil {
		return err
	}
	unread, err := boolQuery(c, "unread")
	if err != nil {
		return err
	}
	q := models.NotificationQuery{UnreadOnly: unread, Page: pr}
	if s := c.QueryParam("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return models.E(models.KindBadRequest, "invalid_query", "since must be an RFC 3339 time")
		}
		q.Since = &t
	}
	page, err := h.Store.ListNotifications(c.Request().Context(), middleware.PrincipalFrom(c), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderPage(page, stream.ViewNotification))
}

type markNotificationsRequest struct {
	IDs  []string `json:"ids"`
	UpTo string   `json:"upTo"`
}

// MarkNotificationsRead marks notifications read and says how many changed:
// POST /v1/notifications/read.
func (h *Handler) MarkNotificationsRead(c echo.Context) error {
	var req markNotificationsRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	n, err := h.Store.MarkNotificationsRead(c.Request().Context(), middleware.PrincipalFrom(c), req.IDs, req.UpTo)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct {
		Updated int64 `json:"updated"`
	}{n})
}
