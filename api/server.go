// Package api assembles the broker: the Echo instance, the route table, the
// OpenAPI document and the one error handler.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	claudemesh "github.com/claudemesh/claudemesh-go"
	"github.com/claudemesh/claudemesh-go/handlers"
	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/stream"
	"github.com/claudemesh/claudemesh-go/ws"
)

// Server is an assembled broker.
type Server struct {
	Echo        *echo.Echo
	cfg         Config
	log         *slog.Logger
	limiter     *middleware.RateLimiter
	authLimiter *middleware.RateLimiter
	ipLimiter   *middleware.RateLimiter
	hub         *stream.Hub
	bridge      *stream.Bridge
	peers       *ws.Server    // the peer WebSocket protocol on /ws
	closing     chan struct{} // closed when the server shuts down
	closeOnce   sync.Once
}

// New builds the server over an open, migrated store.
func New(ctx context.Context, cfg Config, store *models.Store, log *slog.Logger) (*Server, error) {
	secret := cfg.JWTSecret
	if secret == nil {
		var err error
		if secret, err = store.JWTSecret(ctx); err != nil {
			return nil, err
		}
	}
	tokens, err := middleware.NewTokens(secret, nil)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(log)
	e.IPExtractor = clientIP(cfg.TrustedProxies)
	s := &Server{
		Echo: e, cfg: cfg, log: log,
		limiter:     middleware.NewRateLimiter(cfg.RateLimit, cfg.RateLimitBurst),
		authLimiter: middleware.NewRateLimiter(cfg.AuthRateLimit, cfg.AuthRateLimitBurst),
		// Anonymous and bad-credential traffic per IP, before auth runs, so
		// guessing keys is rate limited too.
		ipLimiter: middleware.NewRateLimiter(cfg.RateLimit*4, cfg.RateLimitBurst*4),
		closing:   make(chan struct{}),
	}
	auth := &middleware.Authenticator{Store: store, Tokens: tokens}
	e.Use(middleware.RequestID)
	e.Use(middleware.Observe(log, middleware.NewMetrics(reg)))
	e.Use(middleware.Recover(log))
	if len(cfg.CORSOrigins) > 0 {
		e.Use(echomw.CORSWithConfig(echomw.CORSConfig{
			AllowOrigins:  cfg.CORSOrigins,
			AllowHeaders:  []string{echo.HeaderAuthorization, echo.HeaderContentType, "Last-Event-ID", echo.HeaderXRequestID},
			ExposeHeaders: []string{echo.HeaderXRequestID, "Retry-After"},
			MaxAge:        600,
		}))
	}
	e.Use(echomw.BodyLimit(strconv.FormatInt(cfg.BodyLimit(), 10) + "B"))
	e.Use(ipLimit(s.ipLimiter))
	e.Use(middleware.RefuseNUL)
	e.Use(auth.Authenticate)
	e.Use(s.limiter.Middleware)

	s.hub = stream.NewHub(store, log, stream.NewMetrics(reg), stream.Limits{MaxQueuedEvents: cfg.StreamQueueEvents})
	store.OnCommit(s.hub.OnCommit)
	if cfg.NATSURL != "" {
		if s.bridge, err = stream.ConnectBridge(cfg.NATSURL, s.hub, log); err != nil {
			return nil, err
		}
	}
	node := ""
	if s.bridge != nil {
		node = s.bridge.Node()
	}
	s.peers = ws.New(ws.Config{NodeID: node, QueueTTL: cfg.QueueTTL, StatusTTL: cfg.StatusTTL, HookFreshWindow: cfg.HookFreshWindow,
		MaxMessageBytes: cfg.MaxMessageBytes, MaxFrameBytes: cfg.WSMaxFrameBytes, SendsPerSecond: cfg.WSSendsPerSecond,
		SendBurst: cfg.WSSendBurst, MaxQueuedBytes: cfg.WSMaxQueuedBytes, RecheckEvery: cfg.WSRecheck, OriginPatterns: cfg.CORSOrigins,
		UnavailableGrace: cfg.StreamUnavailableGrace},
		store, s.hub, log)
	h := &handlers.Handler{Store: store, Tokens: tokens, Log: log, OpenAPI: claudemesh.OpenAPI, Hub: s.hub,
		StreamHeartbeat: cfg.StreamHeartbeat, StreamRevalidate: cfg.StreamRevalidate, StreamUnavailableGrace: cfg.StreamUnavailableGrace,
		Closing: s.closing}
	s.routes(h, auth, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return s, nil
}

// Hub is the server's stream hub.
func (s *Server) Hub() *stream.Hub { return s.hub }

// Peers is the server's WebSocket server (tests run its maintenance pass).
func (s *Server) Peers() *ws.Server { return s.peers }

// Close releases what New opened: it ends the peer connections, then the
// NATS connection. Call it before closing the store.
func (s *Server) Close() {
	// Peer connections record their disconnects, so they end before the
	// caller closes the store.
	s.peers.Close()
	if s.bridge != nil {
		s.bridge.Close()
	}
}

// ipLimit limits every request per client IP, whatever its credential.
func ipLimit(rl *middleware.RateLimiter) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if ok, wait := rl.Allow("ip:" + c.RealIP()); !ok {
				return &models.Error{Kind: models.KindRateLimited, Code: "rate_limited", Detail: "too many requests from this address",
					RetryAfterSeconds: int(wait.Seconds()) + 1}
			}
			return next(c)
		}
	}
}

// clientIP decides which address a request comes from, for per-IP rate
// limits. Forwarding headers are believed only from a trusted proxy, and
// then the right-most address that is not itself a trusted proxy wins: any
// hop further left could have been written by the client. Echo's defaults
// (trust loopback, link-local and private networks) are switched off, so an
// untrusted peer's X-Forwarded-For, X-Real-IP and Forwarded are ignored.
func clientIP(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// Run serves on the configured address until ctx ends, then drains for up
// to ten seconds.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s %s: %w", s.cfg.AddrVar, s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Echo,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	bg, stop := context.WithCancel(ctx)
	defer stop()
	go s.limiter.Run(bg)
	go s.authLimiter.Run(bg)
	go s.ipLimiter.Run(bg)
	go s.peers.Run(bg)
	if s.bridge != nil {
		// Several nodes: repair commits whose NATS message was lost.
		go s.hub.RunReconciler(bg, 2*time.Second)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("broker listening", slog.String("addr", ln.Addr().String()))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Streams never go idle, so Shutdown would wait for them: end them.
	srv.RegisterOnShutdown(func() { s.closeOnce.Do(func() { close(s.closing) }) })
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	// Hijacked WebSocket connections are not part of Shutdown: end them
	// with 1001 (going away) so peers reconnect to another node.
	s.peers.Close()
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func jsonEncode(c echo.Context, v any) error {
	return json.NewEncoder(c.Response()).Encode(v)
}
