package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/ws"
)

type hookRequest struct {
	Status  string  `json:"status"`
	Pid     int     `json:"pid"`
	Cwd     string  `json:"cwd"`
	Summary *string `json:"summary"`
}

type hookView struct {
	// Result is "applied", "unchanged" (the rules kept the recorded
	// status) or "stashed" (no session yet; kept 10 s for its hello).
	Result  string       `json:"result"`
	Session *ws.PeerView `json:"session"`
}

// SetStatusHook takes a Claude Code hook's status report for one of the
// caller's own sessions: POST /hook/set-status.
func (h *Peers) SetStatusHook(c echo.Context) error {
	var req hookRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	res, err := h.WS.HookStatus(c.Request().Context(), middleware.PrincipalFrom(c),
		models.HookInput{Status: req.Status, Pid: req.Pid, Cwd: req.Cwd, Summary: req.Summary})
	if err != nil {
		return err
	}
	out := hookView{Result: "unchanged"}
	switch {
	case res.Stashed:
		out.Result = "stashed"
	case res.Applied:
		out.Result = "applied"
	}
	if res.Session != nil {
		v := ws.ViewPeer(res.Session)
		out.Session = &v
	}
	return c.JSON(http.StatusOK, out)
}
