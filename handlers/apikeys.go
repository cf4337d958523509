package handlers

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
)

type createAPIKeyRequest struct {
	Name             string    `json:"name"`
	Capabilities     []string  `json:"capabilities"`
	TopicScopes      *[]string `json:"topicScopes"`
	ExpiresInSeconds int       `json:"expiresInSeconds"`
}

// CreateAPIKey mints a key for the caller, never above its own rights:
// POST /v1/api-keys.
func (h *Handler) CreateAPIKey(c echo.Context) error {
	var req createAPIKeyRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	in := models.CreateKeyInput{Name: req.Name, Caps: req.Capabilities, ExpiresIn: time.Duration(req.ExpiresInSeconds) * time.Second}
	if req.TopicScopes != nil {
		in.TopicScopes = *req.TopicScopes
		if in.TopicScopes == nil {
			in.TopicScopes = []string{}
		}
	}
	k, secret, err := h.Store.CreateAPIKey(c.Request().Context(), middleware.PrincipalFrom(c), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, apiKeyCreatedView{viewAPIKey(k), secret})
}

// ListAPIKeys pages the caller's own keys, prefix only: GET /v1/api-keys.
func (h *Handler) ListAPIKeys(c echo.Context) error {
	pr, err := pageRequest(c)
	if err != nil {
		return err
	}
	page, err := h.Store.ListAPIKeys(c.Request().Context(), middleware.PrincipalFrom(c), pr)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderPage(page, viewAPIKey))
}

// RevokeAPIKey revokes a key: DELETE /v1/api-keys/{id}.
func (h *Handler) RevokeAPIKey(c echo.Context) error {
	if err := h.Store.RevokeAPIKey(c.Request().Context(), middleware.PrincipalFrom(c), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
