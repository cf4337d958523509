package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPeerBinaryLinksNoServer: the claudemesh binary runs on every Claude
// Code prompt (hooks) and must start in milliseconds, so it links the wire
// protocol and the client only. Any package below reaching it (usually by
// importing a server package for a type) fails this test.
func TestPeerBinaryLinksNoServer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	banned := []string{
		"gorm.io/", "github.com/labstack/echo", "github.com/nats-io/", "github.com/jackc/pgx", "modernc.org/sqlite",
		"github.com/glebarez/", "github.com/pressly/goose", "github.com/prometheus/", "github.com/golang-jwt/",
		"github.com/claudemesh/claudemesh-go/migrations", "github.com/claudemesh/claudemesh-go/models",
		"github.com/claudemesh/claudemesh-go/ws", "github.com/claudemesh/claudemesh-go/stream",
		"github.com/claudemesh/claudemesh-go/handlers", "github.com/claudemesh/claudemesh-go/api",
		"github.com/claudemesh/claudemesh-go/middleware",
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		for _, b := range banned {
			if d == b || strings.HasPrefix(d, b) && (strings.HasSuffix(b, "/") || strings.HasPrefix(d[len(b):], "/") || d[len(b):] == "") {
				t.Errorf("cmd/claudemesh depends on %s (server side: %s)", d, b)
			}
		}
	}
	t.Logf("%d packages", len(deps))
}
