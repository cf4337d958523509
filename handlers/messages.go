package handlers

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/stream"
)

type postMessageRequest struct {
	Topic           string    `json:"topic"`
	Ciphertext      string    `json:"ciphertext"`
	Nonce           string    `json:"nonce"`
	BodyVersion     int       `json:"bodyVersion"`
	KeyEpoch        int       `json:"keyEpoch"`
	Priority        string    `json:"priority"`
	Mentions        *[]string `json:"mentions"`
	ReplyToID       *string   `json:"replyToId"`
	ClientMessageID *string   `json:"clientMessageId"`
}

// PostMessage posts to a topic: POST /v1/messages. 201 for a new message,
// 200 with the original when the clientMessageId was already used.
func (h *Handler) PostMessage(c echo.Context) error {
	var req postMessageRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	in := models.PostInput{Topic: req.Topic, Ciphertext: req.Ciphertext, Nonce: req.Nonce, BodyVersion: req.BodyVersion, KeyEpoch: req.KeyEpoch, Priority: req.Priority}
	if req.Mentions != nil {
		in.Mentions = *req.Mentions
		if in.Mentions == nil {
			in.Mentions = []string{}
		}
	}
	if req.ReplyToID != nil {
		in.ReplyToID = *req.ReplyToID
	}
	if req.ClientMessageID != nil {
		in.ClientMessageID = *req.ClientMessageID
	}
	posted, err := h.Store.PostMessage(c.Request().Context(), middleware.PrincipalFrom(c), in)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if posted.Replayed {
		status = http.StatusOK
	}
	return c.JSON(status, stream.ViewMessage(&posted.Row))
}

// History pages a topic by seq: GET /v1/topics/{name}/messages.
func (h *Handler) History(c echo.Context) error {
	var q models.HistoryQuery
	if c.QueryParam("cursor") != "" {
		return models.E(models.KindBadRequest, "invalid_query", "history pages by seq: pass nextCursor as before= (or after= when paging forward)")
	}
	for name, dst := range map[string]*int64{"before": &q.Before, "after": &q.After} {
		if s := c.QueryParam(name); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 1 {
				return models.E(models.KindBadRequest, "invalid_query", "%s must be a positive seq", name)
			}
			*dst = n
		}
	}
	pr, err := pageRequest(c)
	if err != nil {
		return err
	}
	q.Limit = pr.Limit
	page, err := h.Store.History(c.Request().Context(), middleware.PrincipalFrom(c), topicParam(c), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderPage(page, stream.ViewMessage))
}
