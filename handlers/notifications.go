package handlers

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
)

// NotificationView is a notification as REST and streams render it.
type NotificationView struct {
	ID                string     `json:"id"`
	Kind              string     `json:"kind"`
	TopicID           string     `json:"topicId"`
	Topic             string     `json:"topic"`
	MessageID         string     `json:"messageId"`
	Seq               int64      `json:"seq"`
	SenderMemberID    string     `json:"senderMemberId"`
	SenderDisplayName string     `json:"senderDisplayName"`
	BodyVersion       int        `json:"bodyVersion"`
	Ciphertext        string     `json:"ciphertext"`
	Nonce             string     `json:"nonce"`
	CreatedAt         time.Time  `json:"createdAt"`
	ReadAt            *time.Time `json:"readAt"`
}

// ViewNotification renders a notification.
func ViewNotification(n *models.NotificationRow) NotificationView {
	return NotificationView{ID: n.ID, Kind: n.Kind, TopicID: n.TopicID, Topic: n.TopicName, MessageID: n.MessageID, Seq: n.Seq,
		SenderMemberID: n.SenderMemberID, SenderDisplayName: n.SenderDisplayName, BodyVersion: n.BodyVersion,
		Ciphertext: n.Ciphertext, Nonce: n.Nonce, CreatedAt: utc(n.CreatedAt), ReadAt: utcPtr(n.ReadAt)}
}

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
	return c.JSON(http.StatusOK, renderPage(page, ViewNotification))
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
