package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/ws"
)

// Peers serves the peer routes (/ws, /v1/peers, /hook/set-status): the
// shared dependencies plus the WebSocket server, which owns live sessions.
type Peers struct {
	*Handler
	WS *ws.Server
}

// ListPeers pages the connected sessions of the caller's mesh, read from
// the database so sessions on every broker are listed: GET /v1/peers.
func (h *Peers) ListPeers(c echo.Context) error {
	pr, err := pageRequest(c)
	if err != nil {
		return err
	}
	page, err := h.Store.ListPeers(c.Request().Context(), middleware.PrincipalFrom(c), pr)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderPage(page, ws.ViewPeer))
}
