package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/claudemesh/claudemesh-go/api"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

// testSecret signs the test brokers' JWTs, so tests can forge bad ones.
var testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")

// env is one broker on a real loopback HTTP server over a fresh database.
type env struct {
	t      testing.TB
	srv    *api.Server
	base   string
	client *http.Client
	store  *models.Store
}

// eachEnv runs fn against a broker on SQLite and one on PostgreSQL.
func eachEnv(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) { fn(t, newEnv(t, d, nil)) })
	}
}

func newEnv(t testing.TB, d models.Dialect, tweak func(*api.Config)) *env {
	t.Helper()
	return newEnvLogging(t, d, tweak, slog.New(slog.DiscardHandler))
}

// newEnvLogging is newEnv with the broker logging to log.
func newEnvLogging(t testing.TB, d models.Dialect, tweak func(*api.Config), log *slog.Logger) *env {
	t.Helper()
	cfg, err := api.LoadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.JWTSecret = testSecret
	cfg.RateLimit, cfg.RateLimitBurst = 10000, 10000
	cfg.AuthRateLimit, cfg.AuthRateLimitBurst = 10000, 10000
	if tweak != nil {
		tweak(&cfg)
	}
	store := storetest.Open(t, d)
	srv, err := api.New(context.Background(), cfg, store, log)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Echo)
	t.Cleanup(hs.Close)
	return &env{t: t, srv: srv, base: hs.URL, client: newContractClient(t), store: store}
}

// call sends a request and returns the status and body. body may be nil, a
// string (sent raw) or a value (sent as JSON).
func (e *env) call(method, path, token string, body any) (int, []byte, http.Header) {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, e.base+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, out, resp.Header
}

// must sends a request, requires the status, and decodes the body into out.
func (e *env) must(method, path, token string, body any, want int, out any) {
	e.t.Helper()
	status, raw, _ := e.call(method, path, token, body)
	if status != want {
		e.t.Fatalf("%s %s = %d, want %d: %s", method, path, status, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("decode %s %s: %v", method, path, err)
		}
	}
}

// wantProblem sends a request and requires a problem with status and code.
func (e *env) wantProblem(method, path, token string, body any, status int, code string) {
	e.t.Helper()
	got, raw, _ := e.call(method, path, token, body)
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(raw, &p)
	if got != status || (code != "" && p.Code != code) {
		e.t.Errorf("%s %s = %d %q, want %d %q: %s", method, path, got, p.Code, status, code, raw)
	}
}

type session struct {
	User struct {
		ID string `json:"id"`
	} `json:"user"`
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
}

// userSeq numbers sign-ups; tests that run in parallel share it.
var userSeq atomic.Int64

func (e *env) signup() session {
	e.t.Helper()
	n := userSeq.Add(1)
	var s session
	e.must("POST", "/v1/auth/signup", "", map[string]string{
		"email": fmt.Sprintf("user%d-%s@example.com", n, models.NewID()[:8]), "password": "correct horse battery", "name": "Grace Hopper"},
		http.StatusCreated, &s)
	return s
}

type meshOut struct {
	Mesh struct {
		ID   string `json:"id"`
		Slug string `json:"slug"`
	} `json:"mesh"`
	Member struct {
		ID string `json:"id"`
	} `json:"member"`
}

func (e *env) createMesh(tok, name string) meshOut {
	e.t.Helper()
	var m meshOut
	e.must("POST", "/v1/meshes", tok, map[string]string{"name": name}, http.StatusCreated, &m)
	return m
}

// memberToken mints the user's member JWT for a mesh.
func (e *env) memberToken(userTok, meshID string) string {
	e.t.Helper()
	var s struct {
		Token string `json:"token"`
	}
	e.must("POST", "/v1/meshes/"+meshID+"/session", userTok, nil, http.StatusCreated, &s)
	return s.Token
}

type joined struct {
	Member struct {
		ID string `json:"id"`
	} `json:"member"`
	APIKey struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	} `json:"apiKey"`
}

// invite mints an invite as the given credential and returns its token.
func (e *env) invite(tok, meshID string, body any) string {
	e.t.Helper()
	var inv struct {
		Token string `json:"token"`
	}
	e.must("POST", "/v1/meshes/"+meshID+"/invites", tok, body, http.StatusCreated, &inv)
	return inv.Token
}

func (e *env) join(inviteToken, name string) joined {
	e.t.Helper()
	var j joined
	e.must("POST", "/v1/join", "", map[string]string{"token": inviteToken, "pubkey": newPubkey(e.t), "displayName": name}, http.StatusCreated, &j)
	return j
}

func newPubkey(t testing.TB) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(pub)
}

// newCluster starts two brokers on one fresh PostgreSQL schema, both on the
// given NATS server, like two nodes behind a load balancer.
func newCluster(t *testing.T, natsURL string) (*env, *env) {
	t.Helper()
	envs := newNodes(t, natsURL, natsURL)
	return envs[0], envs[1]
}

// newNodes starts one broker per NATS URL ("" for none) on one fresh
// PostgreSQL schema.
func newNodes(t *testing.T, natsURLs ...string) []*env {
	t.Helper()
	opt := storetest.Options(t, models.Postgres)
	envs := make([]*env, len(natsURLs))
	for i, natsURL := range natsURLs {
		s, err := models.Open(context.Background(), opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if _, err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		cfg, _ := api.LoadConfig(func(string) string { return "" })
		cfg.JWTSecret = testSecret
		cfg.RateLimit, cfg.RateLimitBurst, cfg.AuthRateLimit, cfg.AuthRateLimitBurst = 10000, 10000, 10000, 10000
		cfg.NATSURL = natsURL
		srv, err := api.New(context.Background(), cfg, s, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		hs := httptest.NewServer(srv.Echo)
		t.Cleanup(hs.Close)
		envs[i] = &env{t: t, srv: srv, base: hs.URL, client: newContractClient(t), store: s}
	}
	return envs
}
