package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
)

// ListMembers pages the caller's mesh: GET /v1/members.
func (h *Handler) ListMembers(c echo.Context) error {
	p := middleware.PrincipalFrom(c)
	pr, err := pageRequest(c)
	if err != nil {
		return err
	}
	all, err := boolQuery(c, "includeRevoked")
	if err != nil {
		return err
	}
	page, err := h.Store.ListMembers(c.Request().Context(), p.MeshID, all, pr)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderPage(page, viewMember))
}

// RevokeMember revokes a member and its keys (admin): DELETE /v1/members/{id}.
func (h *Handler) RevokeMember(c echo.Context) error {
	if err := h.Store.RevokeMember(c.Request().Context(), middleware.PrincipalFrom(c), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
