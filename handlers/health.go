package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/stream"
)

type statusView struct {
	Status string `json:"status"`
	// NATS is the link to the other nodes, when NATS_URL is set.
	NATS string `json:"nats,omitempty"`
}

// Health is liveness: the process answers. GET /health.
func (h *Handler) Health(c echo.Context) error {
	return c.JSON(http.StatusOK, statusView{Status: "ok"})
}

// Ready is readiness: the database answers within two seconds. GET /ready.
// A missing NATS link is "degraded", still 200: this node serves its own
// clients fully, commits from other nodes still arrive through the
// database reconciler (seconds late), and a 503 would take every replica
// out of rotation during a NATS blip (docs/DESIGN.md).
func (h *Handler) Ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := h.Store.Ping(ctx); err != nil {
		return models.E(models.KindUnavailable, "database_unreachable", "the database does not answer")
	}
	v := statusView{Status: "ok"}
	if h.NATS != nil {
		if v.NATS = h.NATS(); v.NATS != stream.NATSConnected {
			v.Status = "degraded"
		}
	}
	return c.JSON(http.StatusOK, v)
}

// OpenAPISpec serves the contract: GET /openapi.yaml.
func (h *Handler) OpenAPISpec(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", h.OpenAPI)
}
