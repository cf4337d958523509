package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/handlers"
	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/web"
)

// routes is the whole REST surface, grouped by who may call it. Nothing
// registers routes anywhere else; openapi.yaml lists exactly these (a test
// fails when the two differ). Guards are attached per route rather than with
// Group.Use, which would also swallow unknown paths under the prefix.
func (s *Server) routes(h *handlers.Handler, auth *middleware.Authenticator, metrics http.Handler) {
	e := s.Echo
	authLimited := s.authLimiter.Middleware

	// ---- public: probes, contract, metrics ----
	e.GET("/health", h.Health)
	e.GET("/ready", h.Ready)
	e.GET("/metrics", echo.WrapHandler(metrics))
	e.GET("/openapi.yaml", h.OpenAPISpec)

	// ---- public: the dashboard (web/), static files with strict headers.
	// "/" is an operation in openapi.yaml like /openapi.yaml; /assets/* are
	// files, not API: a wildcard route, which the route-parity test skips by
	// design. The page routes by URL fragment, so every other path (/v1/…
	// included) keeps the API's problem+json 404. ----
	dash := web.New()
	e.GET("/", echo.WrapHandler(dash))
	e.HEAD("/", echo.WrapHandler(dash))
	e.GET("/assets/*", func(c echo.Context) error {
		if !dash.Has(c.Request().URL.Path) {
			return models.E(models.KindNotFound, "asset_not_found", "no such dashboard file")
		}
		dash.ServeHTTP(c.Response(), c.Request())
		return nil
	})

	// ---- public, rate limited per IP: accounts and joining ----
	e.POST("/v1/auth/signup", h.Signup, authLimited)
	e.POST("/v1/auth/login", h.Login, authLimited)
	e.POST("/v1/auth/refresh", h.Refresh, authLimited)
	e.POST("/v1/auth/logout", h.Logout, authLimited)
	e.POST("/v1/join", h.Join, authLimited) // a user token, if sent, links the new member to the user
	e.GET("/v1/invites/:token", h.PreviewInvite, authLimited)

	// ---- user (dashboard JWT): the user's own account and meshes ----
	user := middleware.RequireUser
	e.GET("/v1/me", h.Me, user)
	e.POST("/v1/meshes", h.CreateMesh, user)
	e.GET("/v1/meshes", h.ListMeshes, user)
	e.GET("/v1/meshes/:id", h.GetMesh, user)
	e.POST("/v1/meshes/:id/session", h.CreateMemberSession, user)
	// the cross-mesh inbox over the user's own memberships
	e.GET("/v1/me/notifications", h.ListMyNotifications, user)
	e.POST("/v1/me/notifications/read", h.MarkMyNotificationsRead, user)
	e.GET("/v1/me/topics", h.ListMyTopics, user)
	e.PATCH("/v1/me/topics/:id/read", h.MarkMyTopicRead, user)

	// ---- user or member: mesh administration ----
	// (a user who is an admin member of the mesh, or an admin credential of it)
	e.POST("/v1/meshes/:id/invites", h.CreateInvite, middleware.RequireAny)
	e.GET("/v1/meshes/:id/invites", h.ListInvites, middleware.RequireAny)
	e.DELETE("/v1/meshes/:id/invites/:inviteId", h.RevokeInvite, middleware.RequireAny)
	e.PATCH("/v1/meshes/:id", h.UpdateMesh, middleware.RequireAny)
	e.POST("/v1/meshes/:id/archive", h.ArchiveMesh, middleware.RequireAny)
	// (the user's members in the mesh, or the calling member itself)
	e.POST("/v1/meshes/:id/leave", h.LeaveMesh, middleware.RequireAny)

	// ---- member (API key or member JWT): one mesh only ----
	read := middleware.RequireMember(models.CapRead)
	anyMember := middleware.RequireMember()
	send := middleware.RequireMember(models.CapSend)
	e.GET("/v1/members", h.ListMembers, read)
	e.DELETE("/v1/members/:id", h.RevokeMember, middleware.RequireMember(models.CapAdmin))
	e.POST("/v1/api-keys", h.CreateAPIKey, anyMember)
	e.GET("/v1/api-keys", h.ListAPIKeys, anyMember)
	e.DELETE("/v1/api-keys/:id", h.RevokeAPIKey, anyMember)
	e.POST("/v1/me/peer-pubkey", h.SetPeerPubkey, anyMember)
	e.GET("/v1/audit", h.ListAudit, middleware.RequireMember(models.CapAdmin))

	// topics
	e.GET("/v1/topics", h.ListTopics, read)
	e.POST("/v1/topics", h.CreateTopic, send)
	e.GET("/v1/topics/:name", h.GetTopic, read)
	e.DELETE("/v1/topics/:name", h.ArchiveTopic, send)
	e.POST("/v1/topics/:name/join", h.JoinTopic, read)
	e.GET("/v1/topics/:name/members", h.ListTopicMembers, read)
	e.POST("/v1/topics/:name/members", h.AddTopicMember, send)
	e.DELETE("/v1/topics/:name/members/:memberId", h.RemoveTopicMember, anyMember)
	e.PATCH("/v1/topics/:name/read", h.MarkRead, read)

	// messages
	e.POST("/v1/messages", h.PostMessage, send)
	e.GET("/v1/topics/:name/messages", h.History, read)

	// topic keys (seed 003)
	e.GET("/v1/topics/:name/key", h.MyTopicKey, read)
	e.POST("/v1/topics/:name/claim-key", h.ClaimKey, send)
	e.GET("/v1/topics/:name/pending-seals", h.PendingSeals, read)
	e.POST("/v1/topics/:name/seal", h.Seal, send)
	e.POST("/v1/topics/:name/rotate-key", h.RotateTopicKey, send)

	// notifications
	e.GET("/v1/notifications", h.ListNotifications, read)
	e.POST("/v1/notifications/read", h.MarkNotificationsRead, read)

	// ---- member streams (SSE): header credential, or ?token= from /v1/stream/token ----
	e.POST("/v1/stream/token", h.CreateStreamToken, read)
	e.GET("/v1/topics/:name/stream", h.TopicStream, auth.StreamToken, read)
	e.GET("/stream", h.MeshStream, auth.StreamToken, read)

	// ---- peer: Claude Code sessions. /ws authenticates inside the protocol
	// (a signed hello, docs/ws-protocol.md); hooks use the member's API key ----
	peers := &handlers.Peers{Handler: h, WS: s.peers}
	e.GET("/ws", peers.ConnectWS)
	e.GET("/v1/peers", peers.ListPeers, read)
	e.POST("/hook/set-status", peers.SetStatusHook, middleware.RequireMember(models.CapStateWrite))
}
