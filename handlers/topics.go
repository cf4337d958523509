package handlers

import (
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
)

type topicView struct {
	ID                string     `json:"id"`
	Name              string     `json:"name"`
	Description       string     `json:"description"`
	Visibility        string     `json:"visibility"`
	Keyed             bool       `json:"keyed"`
	KeyPubkey         *string    `json:"keyPubkey"`
	KeyEpoch          int        `json:"keyEpoch"`
	CreatedByMemberID *string    `json:"createdByMemberId"`
	CreatedAt         time.Time  `json:"createdAt"`
	ArchivedAt        *time.Time `json:"archivedAt"`
	Joined            bool       `json:"joined"`
	Role              *string    `json:"role"`
	LastReadSeq       *int64     `json:"lastReadSeq"`
	Unread            *int64     `json:"unread"`
}

func viewTopic(ta *models.TopicAccess, unread *int64) topicView {
	t := &ta.Topic
	v := topicView{ID: t.ID, Name: t.Name, Description: t.Description, Visibility: t.Visibility, Keyed: t.Keyed(), KeyPubkey: t.EncryptedKeyPubkey, KeyEpoch: t.KeyEpoch,
		CreatedByMemberID: t.CreatedByMemberID, CreatedAt: utc(t.CreatedAt), ArchivedAt: utcPtr(t.ArchivedAt), Unread: unread}
	if ta.Membership != nil {
		v.Joined = true
		role, seq := ta.Membership.Role, ta.Membership.LastReadSeq
		v.Role, v.LastReadSeq = &role, &seq
	}
	return v
}

// topicParam reads the {name} path parameter; "%23general" and "general"
// name the same topic.
func topicParam(c echo.Context) string {
	raw := c.Param("name")
	if s, err := url.PathUnescape(raw); err == nil {
		return s
	}
	return raw
}

type createTopicRequest struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Visibility  string `json:"visibility"`
}

// CreateTopic creates a topic led by the caller: POST /v1/topics.
func (h *Handler) CreateTopic(c echo.Context) error {
	var req createTopicRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	ta, err := h.Store.CreateTopic(c.Request().Context(), middleware.PrincipalFrom(c),
		models.CreateTopicInput{Name: req.Name, Description: req.Description, Visibility: req.Visibility})
	if err != nil {
		return err
	}
	var zero int64
	return c.JSON(http.StatusCreated, viewTopic(ta, &zero))
}

// ListTopics pages the topics the caller can see: GET /v1/topics.
func (h *Handler) ListTopics(c echo.Context) error {
	pr, err := pageRequest(c)
	if err != nil {
		return err
	}
	archived, err := boolQuery(c, "includeArchived")
	if err != nil {
		return err
	}
	page, err := h.Store.ListTopics(c.Request().Context(), middleware.PrincipalFrom(c), c.QueryParam("q"), archived, pr)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderPage(page, func(it *models.TopicListItem) topicView { return viewTopic(&it.TopicAccess, it.Unread) }))
}

// GetTopic shows one visible topic: GET /v1/topics/{name}.
func (h *Handler) GetTopic(c echo.Context) error {
	ta, err := h.Store.TopicFor(c.Request().Context(), middleware.PrincipalFrom(c), topicParam(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewTopic(ta, nil))
}

// ArchiveTopic archives a topic (lead or admin): DELETE /v1/topics/{name}.
func (h *Handler) ArchiveTopic(c echo.Context) error {
	if err := h.Store.ArchiveTopic(c.Request().Context(), middleware.PrincipalFrom(c), topicParam(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// JoinTopic subscribes the caller to a public topic: POST /v1/topics/{name}/join.
func (h *Handler) JoinTopic(c echo.Context) error {
	ta, err := h.Store.JoinTopic(c.Request().Context(), middleware.PrincipalFrom(c), topicParam(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewTopic(ta, nil))
}

type topicMemberView struct {
	MemberID    string    `json:"memberId"`
	DisplayName string    `json:"displayName"`
	Pubkey      string    `json:"pubkey"`
	Role        string    `json:"role"`
	JoinedAt    time.Time `json:"joinedAt"`
	LastReadSeq int64     `json:"lastReadSeq"`
}

// ListTopicMembers pages a topic's members: GET /v1/topics/{name}/members.
func (h *Handler) ListTopicMembers(c echo.Context) error {
	pr, err := pageRequest(c)
	if err != nil {
		return err
	}
	page, err := h.Store.ListTopicMembers(c.Request().Context(), middleware.PrincipalFrom(c), topicParam(c), pr)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderPage(page, func(r *models.TopicMemberRow) topicMemberView {
		return topicMemberView{MemberID: r.MemberID, DisplayName: r.DisplayName, Pubkey: r.PeerPubkey, Role: r.Role, JoinedAt: utc(r.JoinedAt), LastReadSeq: r.LastReadSeq}
	}))
}

type addTopicMemberRequest struct {
	MemberID string `json:"memberId"`
	Role     string `json:"role"`
}

// AddTopicMember adds a mesh member to a topic (lead or admin):
// POST /v1/topics/{name}/members.
func (h *Handler) AddTopicMember(c echo.Context) error {
	var req addTopicMemberRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	tm, err := h.Store.AddTopicMember(c.Request().Context(), middleware.PrincipalFrom(c), topicParam(c), req.MemberID, req.Role)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, struct {
		TopicID  string    `json:"topicId"`
		MemberID string    `json:"memberId"`
		Role     string    `json:"role"`
		JoinedAt time.Time `json:"joinedAt"`
	}{tm.TopicID, tm.MemberID, tm.Role, utc(tm.JoinedAt)})
}

// RemoveTopicMember removes a member (lead or admin; anyone may leave):
// DELETE /v1/topics/{name}/members/{memberId}.
func (h *Handler) RemoveTopicMember(c echo.Context) error {
	if err := h.Store.RemoveTopicMember(c.Request().Context(), middleware.PrincipalFrom(c), topicParam(c), c.Param("memberId")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type markReadRequest struct {
	Seq int64 `json:"seq"`
}

// MarkRead moves the caller's read mark forward: PATCH /v1/topics/{name}/read.
func (h *Handler) MarkRead(c echo.Context) error {
	var req markReadRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	seq, err := h.Store.MarkRead(c.Request().Context(), middleware.PrincipalFrom(c), topicParam(c), req.Seq)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct {
		LastReadSeq int64 `json:"lastReadSeq"`
	}{seq})
}
