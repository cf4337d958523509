package handlers

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
)

type createInviteRequest struct {
	Role             string `json:"role"`
	MaxUses          int    `json:"maxUses"`
	ExpiresInSeconds int    `json:"expiresInSeconds"`
}

type inviteView struct {
	ID        string    `json:"id"`
	MeshID    string    `json:"meshId"`
	Token     string    `json:"token"`
	Role      string    `json:"role"`
	MaxUses   int       `json:"maxUses"`
	Uses      int       `json:"uses"`
	ExpiresAt time.Time `json:"expiresAt"`
	CreatedAt time.Time `json:"createdAt"`
}

// CreateInvite mints an invite; the token is shown only here:
// POST /v1/meshes/{id}/invites (a user who is a mesh admin, or an admin key).
func (h *Handler) CreateInvite(c echo.Context) error {
	p := middleware.PrincipalFrom(c)
	var req createInviteRequest
	if err := bind(c, &req, true); err != nil {
		return err
	}
	ctx := c.Request().Context()
	admin, err := h.Store.AuthorizeMeshAdmin(ctx, p, c.Param("id"))
	if err != nil {
		return err
	}
	inv, token, err := h.Store.CreateInvite(ctx, p, admin, models.CreateInviteInput{
		Role: req.Role, MaxUses: req.MaxUses, ExpiresIn: time.Duration(req.ExpiresInSeconds) * time.Second})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, inviteView{ID: inv.ID, MeshID: inv.MeshID, Token: token, Role: inv.Role,
		MaxUses: inv.MaxUses, Uses: inv.Uses, ExpiresAt: utc(inv.ExpiresAt), CreatedAt: utc(inv.CreatedAt)})
}

type joinRequest struct {
	Token       string `json:"token"`
	Pubkey      string `json:"pubkey"`
	DisplayName string `json:"displayName"`
}

// Join turns an invite token and an ed25519 public key into a member and
// its first API key: POST /v1/join. Called with a user token, the member is
// linked to that user (who can then open member sessions for it).
func (h *Handler) Join(c echo.Context) error {
	var req joinRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	in := models.JoinInput{Token: req.Token, Pubkey: req.Pubkey, DisplayName: req.DisplayName}
	switch p := middleware.PrincipalFrom(c); {
	case p.IsUser():
		in.UserID = p.UserID
	case p != nil:
		return models.E(models.KindForbidden, "user_token_required", "join anonymously or with a dashboard user token, not a member credential")
	}
	res, err := h.Store.Join(c.Request().Context(), in)
	if err != nil {
		return err
	}
	type meshSummary struct {
		ID   string `json:"id"`
		Slug string `json:"slug"`
		Name string `json:"name"`
	}
	return c.JSON(http.StatusCreated, struct {
		Mesh   meshSummary       `json:"mesh"`
		Member memberView        `json:"member"`
		APIKey apiKeyCreatedView `json:"apiKey"`
	}{meshSummary{res.Mesh.ID, res.Mesh.Slug, res.Mesh.Name}, viewMember(&res.Member), apiKeyCreatedView{viewAPIKey(&res.Key), res.KeySecret}})
}

type inviteSummaryView struct {
	ID                   string     `json:"id"`
	MeshID               string     `json:"meshId"`
	TokenPrefix          string     `json:"tokenPrefix"`
	Role                 string     `json:"role"`
	MaxUses              int        `json:"maxUses"`
	Uses                 int        `json:"uses"`
	ExpiresAt            time.Time  `json:"expiresAt"`
	CreatedAt            time.Time  `json:"createdAt"`
	RevokedAt            *time.Time `json:"revokedAt"`
	CreatedByMemberID    *string    `json:"createdByMemberId"`
	CreatedByDisplayName *string    `json:"createdByDisplayName"`
}

// ListInvites pages a mesh's invites, never their tokens:
// GET /v1/meshes/{id}/invites (a user who is a mesh admin, or an admin key).
func (h *Handler) ListInvites(c echo.Context) error {
	pr, err := pageRequest(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	admin, err := h.Store.AuthorizeMeshAdmin(ctx, middleware.PrincipalFrom(c), c.Param("id"))
	if err != nil {
		return err
	}
	page, err := h.Store.ListInvites(ctx, admin, pr)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderPage(page, func(r *models.InviteRow) inviteSummaryView {
		return inviteSummaryView{ID: r.ID, MeshID: r.MeshID, TokenPrefix: r.TokenPrefix, Role: r.Role, MaxUses: r.MaxUses, Uses: r.Uses,
			ExpiresAt: utc(r.ExpiresAt), CreatedAt: utc(r.CreatedAt), RevokedAt: utcPtr(r.RevokedAt),
			CreatedByMemberID: r.CreatedByMemberID, CreatedByDisplayName: r.CreatedByDisplayName}
	}))
}

// RevokeInvite revokes an invite; joins with it fail at once with 410:
// DELETE /v1/meshes/{id}/invites/{inviteId}.
func (h *Handler) RevokeInvite(c echo.Context) error {
	ctx := c.Request().Context()
	admin, err := h.Store.AuthorizeMeshAdmin(ctx, middleware.PrincipalFrom(c), c.Param("id"))
	if err != nil {
		return err
	}
	if err := h.Store.RevokeInvite(ctx, admin, c.Param("inviteId")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// PreviewInvite shows what an invite token opens without spending a use:
// GET /v1/invites/{token} (public, rate limited per IP).
func (h *Handler) PreviewInvite(c echo.Context) error {
	pv, err := h.Store.PreviewInvite(c.Request().Context(), c.Param("token"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct {
		MeshName           string    `json:"meshName"`
		InviterDisplayName *string   `json:"inviterDisplayName"`
		Role               string    `json:"role"`
		ExpiresAt          time.Time `json:"expiresAt"`
		UsesLeft           int       `json:"usesLeft"`
	}{pv.MeshName, pv.InviterDisplayName, pv.Role, utc(pv.ExpiresAt), pv.UsesLeft})
}
