package handlers

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/stream"
)

// The signed-in user's inbox across every mesh they belong to (user JWT).

type inboxNotificationView struct {
	stream.NotificationView
	MeshID   string `json:"meshId"`
	MeshName string `json:"meshName"`
	MemberID string `json:"memberId"`
}

// ListMyNotifications pages the user's notifications across meshes, newest
// first: GET /v1/me/notifications?unread=&cursor=&limit=.
func (h *Handler) ListMyNotifications(c echo.Context) error {
	pr, err := pageRequest(c)
	if err != nil {
		return err
	}
	unread, err := boolQuery(c, "unread")
	if err != nil {
		return err
	}
	page, err := h.Store.ListMyNotifications(c.Request().Context(), middleware.PrincipalFrom(c).UserID, unread, pr)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderPage(page, func(n *models.InboxNotification) inboxNotificationView {
		return inboxNotificationView{NotificationView: stream.ViewNotification(&n.NotificationRow), MeshID: n.MeshID, MeshName: n.MeshName,
			MemberID: n.RecipientMemberID}
	}))
}

// MarkMyNotificationsRead marks the user's notifications read across
// meshes: POST /v1/me/notifications/read.
func (h *Handler) MarkMyNotificationsRead(c echo.Context) error {
	var req markNotificationsRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	n, err := h.Store.MarkMyNotificationsRead(c.Request().Context(), middleware.PrincipalFrom(c).UserID, req.IDs, req.UpTo)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct {
		Updated int64 `json:"updated"`
	}{n})
}

type inboxTopicView struct {
	MeshID      string    `json:"meshId"`
	MeshName    string    `json:"meshName"`
	MemberID    string    `json:"memberId"`
	TopicID     string    `json:"topicId"`
	Name        string    `json:"name"`
	Visibility  string    `json:"visibility"`
	Keyed       bool      `json:"keyed"`
	KeyEpoch    int       `json:"keyEpoch"`
	Role        string    `json:"role"`
	LastReadSeq int64     `json:"lastReadSeq"`
	Unread      int64     `json:"unread"`
	CreatedAt   time.Time `json:"createdAt"`
}

// ListMyTopics pages the user's joined topics across meshes with unread
// counts: GET /v1/me/topics.
func (h *Handler) ListMyTopics(c echo.Context) error {
	pr, err := pageRequest(c)
	if err != nil {
		return err
	}
	page, err := h.Store.ListMyTopics(c.Request().Context(), middleware.PrincipalFrom(c).UserID, pr)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderPage(page, func(t *models.InboxTopic) inboxTopicView {
		return inboxTopicView{MeshID: t.MeshID, MeshName: t.MeshName, MemberID: t.MemberID, TopicID: t.ID, Name: t.Name, Visibility: t.Visibility,
			Keyed: t.Keyed(), KeyEpoch: t.KeyEpoch, Role: t.Role, LastReadSeq: t.LastReadSeq, Unread: t.Unread, CreatedAt: utc(t.CreatedAt)}
	}))
}

// MarkMyTopicRead moves the user's read mark in a topic by id:
// PATCH /v1/me/topics/{id}/read.
func (h *Handler) MarkMyTopicRead(c echo.Context) error {
	var req markReadRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	seq, err := h.Store.MarkMyTopicRead(c.Request().Context(), middleware.PrincipalFrom(c).UserID, c.Param("id"), req.Seq)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct {
		LastReadSeq int64 `json:"lastReadSeq"`
	}{seq})
}
