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
	inv, token, err := h.Store.CreateInvite(ctx, admin, p.UserID, models.CreateInviteInput{
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
// its first API key: POST /v1/join.
func (h *Handler) Join(c echo.Context) error {
	var req joinRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	res, err := h.Store.Join(c.Request().Context(), models.JoinInput{Token: req.Token, Pubkey: req.Pubkey, DisplayName: req.DisplayName})
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
