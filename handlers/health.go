package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/models"
)

type statusView struct {
	Status string `json:"status"`
}

// Health is liveness: the process answers. GET /health.
func (h *Handler) Health(c echo.Context) error {
	return c.JSON(http.StatusOK, statusView{"ok"})
}

// Ready is readiness: the database answers within two seconds. GET /ready.
func (h *Handler) Ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := h.Store.Ping(ctx); err != nil {
		return models.E(models.KindUnavailable, "database_unreachable", "the database does not answer")
	}
	return c.JSON(http.StatusOK, statusView{"ok"})
}

// OpenAPISpec serves the contract: GET /openapi.yaml.
func (h *Handler) OpenAPISpec(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", h.OpenAPI)
}
