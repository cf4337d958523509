package middleware

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

const requestIDKey = "claudemesh.request_id"

var requestIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// RequestID keeps a well-formed incoming X-Request-ID or makes one, and
// echoes it on the response.
func RequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !requestIDRe.MatchString(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(requestIDKey, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

// RequestIDFrom returns the request's id.
func RequestIDFrom(c echo.Context) string {
	id, _ := c.Get(requestIDKey).(string)
	return id
}

// Metrics are the HTTP metrics; registered on a registry the server owns.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the HTTP metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claudemesh_http_requests_total", Help: "HTTP requests by route template, method and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "claudemesh_http_request_duration_seconds", Help: "HTTP request latency by route template.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// Observe logs and measures each request. It logs the route template, never
// the raw URL (which may carry a ?token=) and never a header value. It must
// run outside the error handler's reach, so it calls c.Error itself to learn
// the final status.
func Observe(log *slog.Logger, m *Metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			status := c.Response().Status
			elapsed := time.Since(start)
			m.requests.WithLabelValues(c.Request().Method, route, strconv.Itoa(status)).Inc()
			m.duration.WithLabelValues(c.Request().Method, route).Observe(elapsed.Seconds())
			attrs := []any{
				slog.String("method", c.Request().Method), slog.String("route", route), slog.Int("status", status),
				slog.Float64("elapsed_ms", float64(elapsed.Microseconds())/1000), slog.Int64("bytes", c.Response().Size),
				slog.String("request_id", RequestIDFrom(c)),
			}
			if p := PrincipalFrom(c); p != nil {
				attrs = append(attrs, slog.String("principal", p.ID()))
			}
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			log.Log(c.Request().Context(), level, "request", attrs...)
			return nil
		}
	}
}

// Recover turns a panic into a 500 and logs its stack.
func Recover(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if e, ok := r.(error); ok && errors.Is(e, http.ErrAbortHandler) {
						panic(r)
					}
					log.Error("panic", slog.String("request_id", RequestIDFrom(c)), slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			return next(c)
		}
	}
}
