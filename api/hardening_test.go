package api_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/claudemesh/claudemesh-go/api"
	"github.com/claudemesh/claudemesh-go/models"
)

// callHeaders sends a raw JSON body with extra request headers.
func (e *env) callHeaders(method, path string, hdr map[string]string, body string) int {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestForwardedHeadersNeedTrustedProxy: a client that rotates forwarding
// headers gets no fresh rate-limit bucket unless its peer address is a
// configured trusted proxy (upstream-style spoofing of X-Forwarded-For).
func TestForwardedHeadersNeedTrustedProxy(t *testing.T) {
	login := `{"email":"nobody@example.com","password":"wrong-password"}`
	spoof := map[string]func(i int) map[string]string{
		"X-Forwarded-For": func(i int) map[string]string {
			return map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i)}
		},
		"X-Real-IP": func(i int) map[string]string { return map[string]string{"X-Real-IP": fmt.Sprintf("198.51.100.%d", i)} },
		"Forwarded": func(i int) map[string]string { return map[string]string{"Forwarded": fmt.Sprintf("for=192.0.2.%d", i)} },
		"all three": func(i int) map[string]string {
			return map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i), "X-Real-IP": fmt.Sprintf("198.51.100.%d", i),
				"Forwarded": fmt.Sprintf("for=192.0.2.%d", i)}
		},
	}
	for name, hdr := range spoof {
		t.Run("untrusted peer/"+name, func(t *testing.T) {
			e := newEnv(t, models.SQLite, func(c *api.Config) { c.AuthRateLimit, c.AuthRateLimitBurst = 0.01, 3 })
			limited := 0
			for i := range 10 {
				if e.callHeaders("POST", "/v1/auth/login", hdr(i+1), login) == http.StatusTooManyRequests {
					limited++
				}
			}
			if limited != 7 {
				t.Fatalf("%d of 10 logins with rotating %s were rate limited, want 7 (one bucket for the peer)", limited, name)
			}
		})
	}

	// Anonymous traffic to /ws and the hook shares the peer's bucket too.
	t.Run("untrusted peer/ws and hook", func(t *testing.T) {
		e := newEnv(t, models.SQLite, func(c *api.Config) { c.RateLimit, c.RateLimitBurst = 0.01, 1 })
		limited := 0
		for i := range 12 {
			method, path, body := "GET", "/ws", ""
			if i%2 == 1 {
				method, path, body = "POST", "/hook/set-status", "{}"
			}
			if e.callHeaders(method, path, spoof["all three"](i+1), body) == http.StatusTooManyRequests {
				limited++
			}
		}
		if limited == 0 {
			t.Fatal("rotating forwarding headers escaped the per-IP limit on /ws and /hook/set-status")
		}
	})

	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	trusted := func(c *api.Config) {
		c.AuthRateLimit, c.AuthRateLimitBurst = 0.01, 3
		c.TrustedProxies = []*net.IPNet{loopback}
	}
	t.Run("trusted proxy/distinct clients", func(t *testing.T) {
		e := newEnv(t, models.SQLite, trusted)
		for i := range 10 {
			hdr := map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i+1)}
			if got := e.callHeaders("POST", "/v1/auth/login", hdr, login); got != http.StatusUnauthorized {
				t.Fatalf("login %d from distinct client behind a trusted proxy = %d, want 401", i, got)
			}
		}
	})
	t.Run("trusted proxy/right-most untrusted hop", func(t *testing.T) {
		// The client writes whatever it likes on the left; the proxy
		// appends the address it saw, which is the one that counts.
		e := newEnv(t, models.SQLite, trusted)
		limited := 0
		for i := range 10 {
			hdr := map[string]string{"X-Forwarded-For": fmt.Sprintf("10.0.0.%d, 203.0.113.77", i+1)}
			if e.callHeaders("POST", "/v1/auth/login", hdr, login) == http.StatusTooManyRequests {
				limited++
			}
		}
		if limited != 7 {
			t.Fatalf("%d of 10 logins were limited, want 7: the right-most untrusted hop is one client", limited)
		}
	})
}

func TestTrustedProxiesConfig(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want int
		bad  bool
	}{
		{"10.0.0.0/8, 192.168.1.7", 2, false},
		{"::1, fd00::/8", 2, false},
		{"not-an-ip", 0, true},
		{"10.0.0.0/33", 0, true},
	} {
		cfg, err := api.LoadConfig(func(k string) string {
			if k == "TRUSTED_PROXIES" {
				return tc.raw
			}
			return ""
		})
		switch {
		case tc.bad && (err == nil || !strings.Contains(err.Error(), "TRUSTED_PROXIES")):
			t.Errorf("TRUSTED_PROXIES=%q: err %v, want one naming the variable", tc.raw, err)
		case !tc.bad && (err != nil || len(cfg.TrustedProxies) != tc.want):
			t.Errorf("TRUSTED_PROXIES=%q: %d nets, err %v; want %d", tc.raw, len(cfg.TrustedProxies), err, tc.want)
		}
	}
}
