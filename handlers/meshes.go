package handlers

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
)

type createMeshRequest struct {
	Name string `json:"name"`
	Slug string `json:"slug"`
}

// CreateMesh is createMyMesh: POST /v1/meshes.
func (h *Handler) CreateMesh(c echo.Context) error {
	p := middleware.PrincipalFrom(c)
	var req createMeshRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	ctx := c.Request().Context()
	u, err := h.Store.UserByID(ctx, p.UserID)
	if err != nil {
		return err
	}
	cm, err := h.Store.CreateMyMesh(ctx, u, models.CreateMeshInput{Name: req.Name, Slug: req.Slug})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, struct {
		Mesh   meshView   `json:"mesh"`
		Member memberView `json:"member"`
	}{viewMesh(&cm.Mesh), viewMember(&cm.Member)})
}

// ListMeshes pages the caller's own meshes: GET /v1/meshes.
func (h *Handler) ListMeshes(c echo.Context) error {
	p := middleware.PrincipalFrom(c)
	pr, err := pageRequest(c)
	if err != nil {
		return err
	}
	page, err := h.Store.ListMyMeshes(c.Request().Context(), p.UserID, pr)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderPage(page, viewMesh))
}

// GetMesh shows one of the caller's meshes: GET /v1/meshes/{id}.
func (h *Handler) GetMesh(c echo.Context) error {
	p := middleware.PrincipalFrom(c)
	m, err := h.Store.MyMesh(c.Request().Context(), p.UserID, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewMesh(m))
}

type sessionRequest struct {
	TTLSeconds int `json:"ttlSeconds"`
}

// CreateMemberSession mints a member token for the user's own membership of
// a mesh: POST /v1/meshes/{id}/session.
func (h *Handler) CreateMemberSession(c echo.Context) error {
	p := middleware.PrincipalFrom(c)
	var req sessionRequest
	if err := bind(c, &req, true); err != nil {
		return err
	}
	ttl := middleware.MaxMemberTokenTTL
	if req.TTLSeconds != 0 {
		if req.TTLSeconds < 60 || req.TTLSeconds > int(middleware.MaxMemberTokenTTL.Seconds()) {
			return models.Invalid(models.FieldError{Field: "ttlSeconds", Message: "must be 60 to 3600"})
		}
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	m, err := h.Store.MembershipFor(c.Request().Context(), p.UserID, c.Param("id"))
	if err != nil {
		return err
	}
	caps := models.CapsForRole(m.Role)
	tok, exp, err := h.Tokens.SignMember(m, caps, ttl, p.FamilyID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, struct {
		Token        string    `json:"token"`
		TokenType    string    `json:"tokenType"`
		ExpiresAt    time.Time `json:"expiresAt"`
		MeshID       string    `json:"meshId"`
		MemberID     string    `json:"memberId"`
		Capabilities []string  `json:"capabilities"`
	}{tok, "Bearer", exp.UTC(), m.MeshID, m.ID, caps})
}

type updateMeshRequest struct {
	Name string `json:"name"`
}

// UpdateMesh renames a mesh (admin): PATCH /v1/meshes/{id}.
func (h *Handler) UpdateMesh(c echo.Context) error {
	var req updateMeshRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	ctx := c.Request().Context()
	admin, err := h.Store.AuthorizeMeshAdmin(ctx, middleware.PrincipalFrom(c), c.Param("id"))
	if err != nil {
		return err
	}
	m, err := h.Store.RenameMesh(ctx, admin, req.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewMesh(m))
}

// ArchiveMesh archives a mesh (owner or admin): POST /v1/meshes/{id}/archive.
// Every credential, stream and peer connection of the mesh ends.
func (h *Handler) ArchiveMesh(c echo.Context) error {
	ctx := c.Request().Context()
	admin, err := h.Store.AuthorizeMeshAdmin(ctx, middleware.PrincipalFrom(c), c.Param("id"))
	if err != nil {
		return err
	}
	m, err := h.Store.ArchiveMesh(ctx, admin)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewMesh(m))
}

type leaveMeshRequest struct {
	SuccessorMemberID string `json:"successorMemberId"`
}

// LeaveMesh ends the caller's membership: POST /v1/meshes/{id}/leave.
func (h *Handler) LeaveMesh(c echo.Context) error {
	var req leaveMeshRequest
	if err := bind(c, &req, true); err != nil {
		return err
	}
	if err := h.Store.LeaveMesh(c.Request().Context(), middleware.PrincipalFrom(c), c.Param("id"), req.SuccessorMemberID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
