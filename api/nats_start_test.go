package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/claudemesh/claudemesh-go/api"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

type readiness struct {
	Status string `json:"status"`
	NATS   string `json:"nats"`
}

func (e *env) readiness(t *testing.T) readiness {
	t.Helper()
	var r readiness
	e.must("GET", "/ready", "", nil, http.StatusOK, &r)
	return r
}

// waitReady polls /ready until its NATS link reads want.
func (e *env) waitReady(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for r := e.readiness(t); r.NATS != want; r = e.readiness(t) {
		if time.Now().After(deadline) {
			t.Fatalf("/ready still says %+v, want nats %q", r, want)
		}
		time.Sleep(20 * time.Millisecond) // polling the probe, as an orchestrator does
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestBrokerStartsWithoutNATS (issue 18, N1): two brokers start while
// nothing listens at NATS_URL. Both come up and serve their own clients,
// and /ready says 200 "degraded", nats "connecting". A message committed
// meanwhile on a third node whose bus message is lost (it has no NATS at
// all) reaches broker 1's subscriber when NATS comes up: broker 1 catches
// up from the database on connect (the periodic reconciler does not run in
// this harness, and nothing else is committed). From then on commits and
// presence cross over NATS.
func TestBrokerStartsWithoutNATS(t *testing.T) {
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	nodes := newNodes(t, url, url, "")
	b1, b2, lost := nodes[0], nodes[1], nodes[2]
	for i, b := range []*env{b1, b2} {
		if r := b.readiness(t); r.Status != "degraded" || r.NATS != "connecting" {
			t.Fatalf("broker %d /ready without NATS = %+v, want degraded/connecting", i+1, r)
		}
	}
	owner := b1.signup()
	m := b1.createMesh(owner.AccessToken, "No bus yet")
	key := b1.join(b1.invite(owner.AccessToken, m.Mesh.ID, nil), "peer").APIKey.Key
	f := b1.follow("/v1/topics/general/stream", key, "")
	defer f.cancel()
	f.next(t, "ready")
	s1, err := b1.post(key, "general", []byte("served locally"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.seq(t); got != s1 {
		t.Fatalf("local delivery without NATS got %d, want %d", got, s1)
	}
	s2, err := lost.post(key, "general", []byte("committed where no bus message follows"))
	if err != nil {
		t.Fatal(err)
	}

	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded NATS did not start")
	}
	if got := f.seq(t); got != s2 {
		t.Fatalf("catch-up on connect delivered %d, want %d", got, s2)
	}
	b1.waitReady(t, "connected")
	b2.waitReady(t, "connected")
	if r := b1.readiness(t); r.Status != "ok" {
		t.Fatalf("/ready with NATS up = %+v", r)
	}

	// Presence crosses the bus (probed until broker 1's subscription is
	// live on the server), then a commit does, with no database help.
	pres := b1.follow("/stream?types=presence", key, "")
	defer pres.cancel()
	pres.next(t, "ready")
	crossed := false
	for deadline := time.Now().Add(20 * time.Second); !crossed && time.Now().Before(deadline); {
		b2.srv.Hub().PublishPresence(m.Mesh.ID, "probe", map[string]string{"status": "working"})
		select {
		case ev := <-pres.events:
			crossed = string(ev.Event) == "presence" && strings.Contains(string(ev.Data), "working")
		case <-time.After(200 * time.Millisecond):
		}
	}
	if !crossed {
		t.Fatal("presence from broker 2 never reached broker 1")
	}
	s3, err := b2.post(key, "general", []byte("over the bus"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.seq(t); got != s3 {
		t.Fatalf("broker 1 got %d over NATS, want %d", got, s3)
	}
}

// TestReadyWithoutNATSConfigured: a single broker (no NATS_URL) is simply
// ready; the body names no link.
func TestReadyWithoutNATSConfigured(t *testing.T) {
	e := newEnv(t, models.SQLite, nil)
	if r := e.readiness(t); r.Status != "ok" || r.NATS != "" {
		t.Fatalf("/ready = %+v", r)
	}
}

// TestBadNATSURLStillStopsStart: only an unusable URL stops the broker;
// an unreachable server never does.
func TestBadNATSURLStillStopsStart(t *testing.T) {
	s, err := models.Open(context.Background(), storetest.Options(t, models.SQLite))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg, _ := api.LoadConfig(func(string) string { return "" })
	cfg.JWTSecret = testSecret
	cfg.NATSURL = "nats://127.0.0.1:notaport"
	if srv, err := api.New(context.Background(), cfg, s, slog.New(slog.DiscardHandler)); err == nil {
		srv.Close()
		t.Fatal("a malformed NATS_URL was accepted")
	}
}
