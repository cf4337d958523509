package ws_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
	wsclient "github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/peer/peertest"
	"github.com/claudemesh/claudemesh-go/stream"
	"github.com/claudemesh/claudemesh-go/ws"
)

// clock is the injected clock of a test broker: the store and the hello
// check read it, and tests move it instead of sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Millisecond)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// world is one broker (store, hub, WebSocket server) on a loopback HTTP
// server, with a mesh and its owner.
type world struct {
	t     testing.TB
	store *models.Store
	hub   *stream.Hub
	srv   *ws.Server
	url   string
	clock *clock
	mesh  *models.CreatedMesh
	opt   models.Options
}

// eachWorld runs fn on SQLite and on PostgreSQL.
func eachWorld(t *testing.T, tweak func(*ws.Config), fn func(t *testing.T, w *world)) {
	t.Helper()
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) { fn(t, newWorld(t, d, tweak)) })
	}
}

func newWorld(t testing.TB, d models.Dialect, tweak func(*ws.Config)) *world {
	t.Helper()
	clk := newClock()
	opt := storetest.Options(t, d)
	opt.Now = clk.Now
	w := startBroker(t, opt, clk, tweak)
	ctx := context.Background()
	u, _, err := w.store.Signup(ctx, models.SignupInput{Email: models.NewID()[:8] + "@example.com", Password: "correct horse battery", Name: "Owner"})
	if err != nil {
		t.Fatal(err)
	}
	if w.mesh, err = w.store.CreateMyMesh(ctx, u, models.CreateMeshInput{Name: "Peers"}); err != nil {
		t.Fatal(err)
	}
	return w
}

// another starts a second broker on the same database and clock, as a
// second node behind a load balancer.
func (w *world) another(tweak func(*ws.Config)) *world {
	w.t.Helper()
	o := startBroker(w.t, w.opt, w.clock, tweak)
	o.mesh = w.mesh
	return o
}

func startBroker(t testing.TB, opt models.Options, clk *clock, tweak func(*ws.Config)) *world {
	t.Helper()
	store, err := models.Open(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if _, err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	hub := stream.NewHub(store, log, nil, stream.Limits{})
	store.OnCommit(hub.OnCommit)
	cfg := ws.Config{SendsPerSecond: 10000, SendBurst: 10000}
	if tweak != nil {
		tweak(&cfg)
	}
	srv := ws.New(cfg, store, hub, log)
	hs := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if err := srv.Handle(rw, r); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
		}
	}))
	t.Cleanup(hs.Close)
	t.Cleanup(srv.Close) // runs first: connections record their disconnects before the store closes
	return &world{t: t, store: store, hub: hub, srv: srv, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws", clock: clk, opt: opt}
}

// peer is a joined member with its identity and API key principal.
type peer struct {
	name string
	id   meshcrypto.Identity
	p    *models.Principal
}

func (w *world) join(name string) peer {
	w.t.Helper()
	ctx := context.Background()
	id, err := meshcrypto.GenerateIdentity()
	if err != nil {
		w.t.Fatal(err)
	}
	_, token, err := w.store.CreateInvite(ctx, models.RolePrincipal(&w.mesh.Member), &w.mesh.Member, models.CreateInviteInput{})
	if err != nil {
		w.t.Fatal(err)
	}
	j, err := w.store.Join(ctx, models.JoinInput{Token: token, Pubkey: id.PublicKeyHex(), DisplayName: name})
	if err != nil {
		w.t.Fatalf("join %s: %v", name, err)
	}
	p, err := w.store.AuthenticateAPIKey(ctx, j.KeySecret)
	if err != nil {
		w.t.Fatal(err)
	}
	return peer{name: name, id: id, p: p}
}

func (w *world) hello(p peer, session string) wsclient.HelloOptions {
	return wsclient.HelloOptions{Identity: p.id, MeshID: p.p.MeshID, MemberID: p.p.MemberID, SessionID: session, Now: w.clock.Now}
}

// dial connects p as session and waits for the welcome.
func (w *world) dial(p peer, session string, edit ...func(*wsclient.HelloOptions)) *wsclient.Conn {
	w.t.Helper()
	opt := w.hello(p, session)
	for _, e := range edit {
		e(&opt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wsclient.Dial(ctx, w.url, nil, opt)
	if err != nil {
		w.t.Fatalf("dial %s/%s: %v", p.name, session, err)
	}
	w.t.Cleanup(func() { _ = c.Socket().CloseNow() })
	return c
}

// next reads frames until one of the wanted types arrives (others, such as
// presence, are skipped), failing after five seconds.
func next(t testing.TB, c *wsclient.Conn, types ...string) *wsclient.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f, err := c.NextOf(ctx, types...)
	if err != nil {
		t.Fatalf("waiting for %v: %v", types, err)
	}
	return f
}

// send writes a frame and returns the answer with the same ref; frames
// that arrive first stay for next.
func send(t testing.TB, c *wsclient.Conn, frame map[string]any) *wsclient.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f, err := c.Call(ctx, peertest.MapFrame(frame))
	if err != nil {
		t.Fatalf("waiting for the answer to %v: %v", frame["type"], err)
	}
	return f
}

// closed waits for the server to close c and returns the close code and reason.
func closed(t testing.TB, c *wsclient.Conn) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, err := c.Next(ctx)
		if err != nil {
			code, reason := wsclient.CloseStatus(err)
			if code < 0 {
				t.Fatalf("connection ended without a close frame: %v", err)
			}
			return code, reason
		}
	}
}

// direct builds a sealed direct send from a to b.
func direct(t testing.TB, from, to peer, text, priority, cid string) map[string]any {
	t.Helper()
	f, err := wsclient.SealedSend(from.id, to.p.MemberID, to.id.PublicKeyHex(), []byte(text), priority, cid)
	if err != nil {
		t.Fatal(err)
	}
	return peertest.ToMap(f)
}

// open decrypts a push for its recipient.
func open(t testing.TB, f *wsclient.Frame, to peer) string {
	t.Helper()
	plain, err := meshcrypto.OpenDirect(peertest.View(f).Ciphertext, peertest.View(f).Nonce, to.id, peertest.View(f).From.Pubkey)
	if err != nil {
		t.Fatalf("open push %s: %v", peertest.View(f).ID, err)
	}
	return string(plain)
}
