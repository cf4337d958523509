package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
)

type auditEventView struct {
	Seq           int64           `json:"seq"`
	Kind          string          `json:"kind"`
	ActorMemberID *string         `json:"actorMemberId"`
	Target        string          `json:"target"`
	Metadata      json.RawMessage `json:"metadata"`
	CreatedAt     time.Time       `json:"createdAt"`
	PrevHash      string          `json:"prevHash"`
	Hash          string          `json:"hash"`
}

type auditVerificationView struct {
	OK             bool   `json:"ok"`
	Checked        int64  `json:"checked"`
	FirstBrokenSeq *int64 `json:"firstBrokenSeq"`
	Reason         string `json:"reason,omitempty"`
}

// ListAudit pages the caller's mesh audit log by seq (admin credential);
// ?verify=true adds the result of walking the whole hash chain:
// GET /v1/audit?after=&limit=&verify=.
func (h *Handler) ListAudit(c echo.Context) error {
	p := middleware.PrincipalFrom(c)
	var after int64
	if s := c.QueryParam("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return models.E(models.KindBadRequest, "invalid_query", "after must be a seq")
		}
		after = n
	}
	pr, err := pageRequest(c)
	if err != nil {
		return err
	}
	verify, err := boolQuery(c, "verify")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	evs, more, err := h.Store.ListAudit(ctx, p, after, pr.Limit)
	if err != nil {
		return err
	}
	out := struct {
		Items        []auditEventView       `json:"items"`
		NextCursor   *string                `json:"nextCursor"`
		HasMore      bool                   `json:"hasMore"`
		Verification *auditVerificationView `json:"verification"`
	}{Items: make([]auditEventView, 0, len(evs)), HasMore: more}
	for _, ev := range evs {
		out.Items = append(out.Items, auditEventView{Seq: ev.Seq, Kind: ev.Kind, ActorMemberID: ev.ActorMemberID, Target: ev.Target,
			Metadata: json.RawMessage(ev.Metadata), CreatedAt: utc(ev.CreatedAt), PrevHash: ev.PrevHash, Hash: ev.Hash})
	}
	if more {
		cur := fmt.Sprint(evs[len(evs)-1].Seq)
		out.NextCursor = &cur
	}
	if verify {
		broken, checked, err := h.Store.VerifyMeshAudit(ctx, p.MeshID)
		if err != nil {
			return err
		}
		v := &auditVerificationView{OK: broken == nil, Checked: checked}
		if broken != nil {
			v.FirstBrokenSeq, v.Reason = &broken.Seq, broken.Reason
		}
		out.Verification = v
	}
	return c.JSON(http.StatusOK, out)
}
