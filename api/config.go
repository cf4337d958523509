package api

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/ws"
)

// Config is the broker's configuration, read from the environment.
type Config struct {
	// Addr is the host:port the broker listens on: BROKER_ADDR, else
	// ":"+BROKER_PORT, else ":7900" (every interface). AddrVar names the
	// variable it came from, for errors at listen time.
	Addr, AddrVar   string
	Port            int
	DatabaseURL     string
	SQLitePath      string
	StatusTTL       time.Duration
	HookFreshWindow time.Duration
	NATSURL         string
	JWTSecret       []byte // nil: generated once and kept in the database
	MaxMessageBytes int
	LogLevel        slog.Level
	CORSOrigins     []string
	// PprofAddr, when set, serves Go's profiler on its own listener
	// (PPROF_ADDR, e.g. 127.0.0.1:6060); empty: off.
	PprofAddr string
	// TrustedProxies are the networks whose X-Forwarded-For is believed
	// (TRUSTED_PROXIES). Empty: the socket's peer address is the client.
	TrustedProxies []*net.IPNet
	// RateLimit is the per-principal (or per-IP when anonymous) request rate.
	RateLimit      float64
	RateLimitBurst int
	// AuthRateLimit guards signup, login, refresh and join per client IP.
	AuthRateLimit      float64
	AuthRateLimitBurst int
	// StreamHeartbeat and StreamRevalidate are the SSE comment interval
	// (15 s) and how often a stream re-checks its credential and access (5 s).
	StreamHeartbeat, StreamRevalidate time.Duration
	// StreamUnavailableGrace is how long SSE streams and WS subscriptions
	// outlive a database they cannot re-check access against (1 min).
	StreamUnavailableGrace time.Duration
	// StreamQueueEvents bounds each stream subscriber's queue; a subscriber
	// that falls this far behind is cut off and resumes by Last-Event-ID.
	StreamQueueEvents int
	// QueueTTL is how long an unacknowledged direct message waits for its
	// recipient before it expires (QUEUE_TTL_SECONDS, 7 days).
	QueueTTL time.Duration
	// WebSocket limits (docs/ws-protocol.md): the largest frame, sends per
	// second and burst per connection, and the bytes a member may have
	// queued and unacknowledged. Exceeding them is an error frame; only a
	// frame over WSMaxFrameBytes closes the connection.
	WSMaxFrameBytes  int64
	WSSendsPerSecond float64
	WSSendBurst      int
	WSMaxQueuedBytes int64
	// WSRecheck is how often the WebSocket server re-checks revocations and
	// sweeps presence and the queue (2 s; tests shorten it).
	WSRecheck time.Duration
}

// BodyLimit bounds every request body: room for the largest ciphertext in
// base64 plus the JSON around it.
func (c Config) BodyLimit() int64 { return models.RequestBytesFor(c.MaxMessageBytes) }

// ConfigError names the variable that stopped start-up.
type ConfigError struct {
	Var, Problem string
}

func (e *ConfigError) Error() string { return e.Var + ": " + e.Problem }

// LoadConfig reads the environment through getenv (os.Getenv in main). The
// first bad variable is reported as one line naming it.
func LoadConfig(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := Config{
		DatabaseURL: strings.TrimSpace(getenv("DATABASE_URL")),
		SQLitePath:  orDefault(getenv("CLAUDEMESH_SQLITE_PATH"), "claudemesh.db"),
		NATSURL:     strings.TrimSpace(getenv("NATS_URL")),
	}
	var err error
	intVar := func(name string, def, lo, hi int) int {
		if err != nil {
			return 0
		}
		raw := strings.TrimSpace(getenv(name))
		if raw == "" {
			return def
		}
		n, convErr := strconv.Atoi(raw)
		if convErr != nil || n < lo || n > hi {
			err = &ConfigError{name, fmt.Sprintf("must be an integer from %d to %d, got %q", lo, hi, raw)}
			return 0
		}
		return n
	}
	floatVar := func(name string, def, lo, hi float64) float64 {
		if err != nil {
			return 0
		}
		raw := strings.TrimSpace(getenv(name))
		if raw == "" {
			return def
		}
		f, convErr := strconv.ParseFloat(raw, 64)
		if convErr != nil || f < lo || f > hi {
			err = &ConfigError{name, fmt.Sprintf("must be a number from %g to %g, got %q", lo, hi, raw)}
			return 0
		}
		return f
	}
	c.Port = intVar("BROKER_PORT", 7900, 1, 65535)
	c.Addr, c.AddrVar = ":"+strconv.Itoa(c.Port), "BROKER_PORT"
	c.StatusTTL = time.Duration(intVar("STATUS_TTL_SECONDS", 60, 1, 86400)) * time.Second
	c.HookFreshWindow = time.Duration(intVar("HOOK_FRESH_WINDOW_SECONDS", 30, 0, 3600)) * time.Second
	c.MaxMessageBytes = intVar("MAX_MESSAGE_BYTES", models.DefaultMaxMessageBytes, 1024, 16<<20)
	c.RateLimit = floatVar("RATE_LIMIT_PER_SECOND", 50, 0.01, 1e6)
	c.RateLimitBurst = intVar("RATE_LIMIT_BURST", 100, 1, 1e6)
	c.AuthRateLimit = floatVar("AUTH_RATE_LIMIT_PER_SECOND", 0.5, 0.001, 1e6)
	c.AuthRateLimitBurst = intVar("AUTH_RATE_LIMIT_BURST", 10, 1, 1e6)
	c.StreamQueueEvents = intVar("STREAM_QUEUE_EVENTS", 1024, 8, 1<<20)
	c.QueueTTL = time.Duration(intVar("QUEUE_TTL_SECONDS", 7*86400, 60, 365*86400)) * time.Second
	c.WSMaxFrameBytes = int64(intVar("WS_MAX_FRAME_BYTES", ws.DefaultMaxFrameBytes, 64<<10, 64<<20))
	c.WSSendsPerSecond = floatVar("WS_SENDS_PER_SECOND", 50, 0.1, 1e6)
	c.WSSendBurst = intVar("WS_SEND_BURST", 100, 1, 1e6)
	c.WSMaxQueuedBytes = int64(intVar("WS_MAX_QUEUED_BYTES", 32<<20, 64<<10, 1<<34))
	if err != nil {
		return Config{}, err
	}
	if need := models.RequestBytesFor(c.MaxMessageBytes); c.WSMaxFrameBytes < need && strings.TrimSpace(getenv("WS_MAX_FRAME_BYTES")) != "" {
		return Config{}, &ConfigError{"WS_MAX_FRAME_BYTES", fmt.Sprintf("must be at least %d to carry a MAX_MESSAGE_BYTES=%d message, got %d", need, c.MaxMessageBytes, c.WSMaxFrameBytes)}
	}
	c.WSMaxFrameBytes = max(c.WSMaxFrameBytes, models.RequestBytesFor(c.MaxMessageBytes))
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return Config{}, &ConfigError{"DATABASE_URL", "must be a postgres:// or postgresql:// URL (leave it empty for the embedded SQLite)"}
	}
	if c.NATSURL != "" && !strings.HasPrefix(c.NATSURL, "nats://") && !strings.HasPrefix(c.NATSURL, "tls://") {
		return Config{}, &ConfigError{"NATS_URL", "must be a nats:// or tls:// URL"}
	}
	if raw := getenv("JWT_SECRET"); raw != "" {
		secret, decErr := base64.StdEncoding.DecodeString(raw)
		if decErr != nil {
			secret = []byte(raw)
		}
		if len(secret) < 32 {
			return Config{}, &ConfigError{"JWT_SECRET", "must be at least 32 bytes (raw, or base64 of at least 32 bytes)"}
		}
		c.JWTSecret = secret
	}
	switch lv := strings.ToLower(strings.TrimSpace(getenv("LOG_LEVEL"))); lv {
	case "", "info":
		c.LogLevel = slog.LevelInfo
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "warn", "warning":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		return Config{}, &ConfigError{"LOG_LEVEL", fmt.Sprintf("must be debug, info, warn or error, got %q", lv)}
	}
	if raw := strings.TrimSpace(getenv("CORS_ORIGINS")); raw != "" {
		for _, o := range strings.Split(raw, ",") {
			o = strings.TrimSpace(o)
			if o == "" {
				continue
			}
			if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
				return Config{}, &ConfigError{"CORS_ORIGINS", fmt.Sprintf("%q is not an http(s) origin or *", o)}
			}
			c.CORSOrigins = append(c.CORSOrigins, o)
		}
	}
	if raw := strings.TrimSpace(getenv("BROKER_ADDR")); raw != "" {
		if strings.TrimSpace(getenv("BROKER_PORT")) != "" {
			return Config{}, &ConfigError{"BROKER_ADDR", "set BROKER_ADDR or BROKER_PORT, not both"}
		}
		if perr := checkListenAddr(raw); perr != nil {
			return Config{}, &ConfigError{"BROKER_ADDR", perr.Error()}
		}
		c.Addr, c.AddrVar = raw, "BROKER_ADDR"
	}
	if raw := strings.TrimSpace(getenv("PPROF_ADDR")); raw != "" {
		if _, port, err := net.SplitHostPort(raw); err != nil || port == "" {
			return Config{}, &ConfigError{"PPROF_ADDR", fmt.Sprintf("must be host:port (e.g. 127.0.0.1:6060), got %q", raw)}
		}
		c.PprofAddr = raw
	}
	if raw := strings.TrimSpace(getenv("TRUSTED_PROXIES")); raw != "" {
		nets, perr := parseProxies(raw)
		if perr != nil {
			return Config{}, &ConfigError{"TRUSTED_PROXIES", perr.Error()}
		}
		c.TrustedProxies = nets
	}
	return c, nil
}

// checkListenAddr accepts host:port with a port from 0 to 65535 (0: any free
// port) and a host that is empty (every interface), an IP address or a
// host name; a bad value stops start-up instead of failing at listen time.
func checkListenAddr(raw string) error {
	host, port, err := net.SplitHostPort(raw)
	bad := fmt.Errorf("must be host:port, e.g. 127.0.0.1:7900, [::1]:7900 or :7900, got %q", raw)
	if err != nil {
		return bad
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return bad
	}
	if host == "" || net.ParseIP(host) != nil {
		return nil
	}
	for _, r := range host {
		if r != '-' && r != '.' && (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return bad
		}
	}
	return nil
}

// parseProxies reads a comma-separated list of CIDRs or single addresses.
func parseProxies(raw string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, f := range strings.Split(raw, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			ip := net.ParseIP(f)
			if ip == nil {
				return nil, fmt.Errorf("%q is not an IP address or CIDR", f)
			}
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address or CIDR", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func orDefault(v, def string) string {
	if strings.TrimSpace(v) == "" {
		return def
	}
	return v
}
