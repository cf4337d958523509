package handlers

import "github.com/labstack/echo/v4"

// ConnectWS upgrades GET /ws to the peer protocol. The peer authenticates
// inside it (challenge and signed hello), so the route has no guard; a
// request that is not a WebSocket handshake is a 400 problem.
func (h *Peers) ConnectWS(c echo.Context) error {
	return h.WS.Handle(c.Response(), c.Request())
}
