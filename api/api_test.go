package api_test

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/claudemesh/claudemesh-go/api"
	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
)

func TestRoutesMatchOpenAPI(t *testing.T) {
	e := newEnv(t, models.SQLite, nil)
	checkRouteParity(t, e.srv.Echo.Routes())
}

func TestPublicProbes(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.must("GET", "/health", "", nil, http.StatusOK, nil)
		e.must("GET", "/ready", "", nil, http.StatusOK, nil)
		status, body, _ := e.call("GET", "/metrics", "", nil)
		if status != http.StatusOK || !strings.Contains(string(body), "claudemesh_http_requests_total") {
			t.Errorf("/metrics = %d, missing request counter", status)
		}
		status, body, _ = e.call("GET", "/openapi.yaml", "", nil)
		if status != http.StatusOK || !strings.HasPrefix(string(body), "openapi: 3.0") {
			t.Errorf("/openapi.yaml = %d %.40q", status, body)
		}
		e.wantProblem("GET", "/v1/nope", "", nil, http.StatusNotFound, "route_not_found")
		// The dashboard: the page with its security headers; unknown files
		// and paths stay problem+json.
		status, body, hdr := e.call("GET", "/", "", nil)
		if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") ||
			!strings.Contains(hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'") || !strings.Contains(string(body), "/assets/app.js") {
			t.Errorf("GET / = %d %q %v", status, hdr.Get("Content-Type"), hdr)
		}
		e.wantProblem("GET", "/assets/nope.js", "", nil, http.StatusNotFound, "asset_not_found")
		e.wantProblem("GET", "/nope", "", nil, http.StatusNotFound, "route_not_found")
	})
}

// TestWalkthrough is the README's curl walkthrough: signup → create mesh →
// invite → join → list members, then keys.
func TestWalkthrough(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Platform Team")
		if m.Mesh.Slug != "platform-team" {
			t.Errorf("slug = %q", m.Mesh.Slug)
		}
		var list struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
			HasMore bool `json:"hasMore"`
		}
		e.must("GET", "/v1/meshes", owner.AccessToken, nil, http.StatusOK, &list)
		if len(list.Items) != 1 || list.Items[0].ID != m.Mesh.ID {
			t.Errorf("meshes = %+v", list)
		}
		e.must("GET", "/v1/meshes/"+m.Mesh.ID, owner.AccessToken, nil, http.StatusOK, nil)
		var me struct {
			Memberships []struct {
				MemberID string `json:"memberId"`
				Role     string `json:"role"`
			} `json:"memberships"`
		}
		e.must("GET", "/v1/me", owner.AccessToken, nil, http.StatusOK, &me)
		if len(me.Memberships) != 1 || me.Memberships[0].MemberID != m.Member.ID || me.Memberships[0].Role != "admin" {
			t.Errorf("me = %+v", me)
		}

		inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 2, "role": "member"})
		bob := e.join(inv, "bob")
		var members struct {
			Items []struct {
				DisplayName string `json:"displayName"`
			} `json:"items"`
		}
		e.must("GET", "/v1/members", bob.APIKey.Key, nil, http.StatusOK, &members)
		if len(members.Items) != 2 {
			t.Errorf("members = %+v", members)
		}
		// Paging: limit=1 gives a cursor that reaches the second member.
		var p1, p2 struct {
			Items      []map[string]any `json:"items"`
			NextCursor *string          `json:"nextCursor"`
			HasMore    bool             `json:"hasMore"`
		}
		e.must("GET", "/v1/members?limit=1", bob.APIKey.Key, nil, http.StatusOK, &p1)
		if !p1.HasMore || p1.NextCursor == nil || len(p1.Items) != 1 {
			t.Fatalf("page 1 = %+v", p1)
		}
		e.must("GET", "/v1/members?limit=1&cursor="+*p1.NextCursor, bob.APIKey.Key, nil, http.StatusOK, &p2)
		if p2.HasMore || len(p2.Items) != 1 || p2.Items[0]["id"] == p1.Items[0]["id"] {
			t.Errorf("page 2 = %+v", p2)
		}
		e.wantProblem("GET", "/v1/members?limit=0", bob.APIKey.Key, nil, http.StatusBadRequest, "invalid_query")
		e.wantProblem("GET", "/v1/members?cursor=zzz", bob.APIKey.Key, nil, http.StatusBadRequest, "invalid_query")

		// Keys: create, list (prefix only), use, revoke.
		var k struct {
			ID     string `json:"id"`
			Key    string `json:"key"`
			Prefix string `json:"prefix"`
		}
		e.must("POST", "/v1/api-keys", bob.APIKey.Key, map[string]any{"name": "ci", "capabilities": []string{"read"}}, http.StatusCreated, &k)
		if !strings.HasPrefix(k.Key, k.Prefix) || len(k.Prefix) != 11 {
			t.Errorf("key %q prefix %q", k.Key, k.Prefix)
		}
		status, raw, _ := e.call("GET", "/v1/api-keys", bob.APIKey.Key, nil)
		if status != http.StatusOK || strings.Contains(string(raw), k.Key) || strings.Contains(string(raw), bob.APIKey.Key) {
			t.Errorf("key list leaks a secret or failed: %d", status)
		}
		e.must("GET", "/v1/members", k.Key, nil, http.StatusOK, nil)
		e.must("DELETE", "/v1/api-keys/"+k.ID, bob.APIKey.Key, nil, http.StatusNoContent, nil)
		e.wantProblem("GET", "/v1/members", k.Key, nil, http.StatusUnauthorized, "invalid_api_key")

		// Member session tokens work on member routes, not user routes.
		mt := e.memberToken(owner.AccessToken, m.Mesh.ID)
		e.must("GET", "/v1/members", mt, nil, http.StatusOK, nil)
		e.wantProblem("GET", "/v1/meshes", mt, nil, http.StatusForbidden, "user_token_required")
		e.wantProblem("GET", "/v1/members", owner.AccessToken, nil, http.StatusForbidden, "member_credential_required")
	})
}

func TestRefreshRotationAndReuse(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := e.signup()
		email := emailOf(t, e, s.AccessToken)
		mesh := e.createMesh(s.AccessToken, "Family")
		var next session
		e.must("POST", "/v1/auth/refresh", "", map[string]string{"refreshToken": s.RefreshToken}, http.StatusOK, &next)
		if next.RefreshToken == s.RefreshToken {
			t.Fatal("refresh did not rotate")
		}
		e.must("GET", "/v1/me", next.AccessToken, nil, http.StatusOK, nil)
		memberTok := e.memberToken(next.AccessToken, mesh.Mesh.ID)
		e.must("GET", "/v1/members", memberTok, nil, http.StatusOK, nil)
		// Replaying the spent token revokes the whole family, including the
		// new refresh token and every access token of the family: the user
		// tokens and the member token minted with one stop working at once,
		// not when they expire.
		e.wantProblem("POST", "/v1/auth/refresh", "", map[string]string{"refreshToken": s.RefreshToken}, http.StatusUnauthorized, "refresh_token_reused")
		e.wantProblem("POST", "/v1/auth/refresh", "", map[string]string{"refreshToken": next.RefreshToken}, http.StatusUnauthorized, "invalid_refresh_token")
		e.wantProblem("GET", "/v1/me", next.AccessToken, nil, http.StatusUnauthorized, "credential_revoked")
		e.wantProblem("GET", "/v1/me", s.AccessToken, nil, http.StatusUnauthorized, "credential_revoked")
		e.wantProblem("GET", "/v1/members", memberTok, nil, http.StatusUnauthorized, "credential_revoked")
		// Logout ends a fresh family, its access token included; another
		// session of the same user is untouched.
		var login, other session
		e.must("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "correct horse battery"}, http.StatusOK, &login)
		e.must("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "correct horse battery"}, http.StatusOK, &other)
		e.must("POST", "/v1/auth/logout", "", map[string]string{"refreshToken": login.RefreshToken}, http.StatusNoContent, nil)
		e.wantProblem("POST", "/v1/auth/refresh", "", map[string]string{"refreshToken": login.RefreshToken}, http.StatusUnauthorized, "invalid_refresh_token")
		e.wantProblem("GET", "/v1/me", login.AccessToken, nil, http.StatusUnauthorized, "credential_revoked")
		e.must("GET", "/v1/me", other.AccessToken, nil, http.StatusOK, nil)
		e.wantProblem("POST", "/v1/auth/login", "", map[string]string{"email": "nobody@example.com", "password": "whatever12"}, http.StatusUnauthorized, "invalid_credentials")
	})
}

func emailOf(t *testing.T, e *env, tok string) string {
	t.Helper()
	var me struct {
		User struct {
			Email string `json:"email"`
		} `json:"user"`
	}
	e.must("GET", "/v1/me", tok, nil, http.StatusOK, &me)
	return me.User.Email
}

func TestInputErrors(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.wantProblem("POST", "/v1/auth/signup", "", `{"email":`, http.StatusBadRequest, "malformed_json")
		e.wantProblem("POST", "/v1/auth/signup", "", `{"email":"a@b.co","password":"longenough","name":"x","admin":true}`, http.StatusBadRequest, "malformed_json")
		e.wantProblem("POST", "/v1/auth/signup", "", map[string]string{"email": "not-an-email", "password": "short", "name": ""}, http.StatusUnprocessableEntity, "validation_failed")
		s := e.signup()
		e.wantProblem("POST", "/v1/meshes", s.AccessToken, map[string]string{"name": "x", "slug": "Bad Slug"}, http.StatusUnprocessableEntity, "validation_failed")
		e.wantProblem("POST", "/v1/join", "", map[string]string{"token": "cmi_x", "pubkey": "nothex", "displayName": "ok"}, http.StatusUnprocessableEntity, "validation_failed")
		e.wantProblem("POST", "/v1/join", "", map[string]string{"token": "cmi_x", "pubkey": newPubkey(t), "displayName": "ok"}, http.StatusNotFound, "invite_not_found")
		e.wantProblem("GET", "/v1/meshes/not-a-uuid", s.AccessToken, nil, http.StatusNotFound, "mesh_not_found")
		// A non-JSON content type is refused.
		status, _, _ := e.callWithType("POST", "/v1/auth/login", "text/plain", `{"email":"a","password":"b"}`)
		if status != http.StatusUnsupportedMediaType {
			t.Errorf("text/plain body = %d, want 415", status)
		}
	})
}

func (e *env) callWithType(method, path, ctype, body string) (int, []byte, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, nil, resp.Header
}

// TestMeshIsolation: a credential of mesh A never reaches mesh B.
func TestMeshIsolation(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		alice, bob := e.signup(), e.signup()
		a := e.createMesh(alice.AccessToken, "Alpha")
		b := e.createMesh(bob.AccessToken, "Beta")
		aKey := e.join(e.invite(alice.AccessToken, a.Mesh.ID, map[string]any{"role": "admin"}), "a-admin")
		bPeer := e.join(e.invite(bob.AccessToken, b.Mesh.ID, nil), "b-peer")

		// User routes: B's mesh is invisible to A's user.
		e.wantProblem("GET", "/v1/meshes/"+b.Mesh.ID, alice.AccessToken, nil, http.StatusNotFound, "mesh_not_found")
		e.wantProblem("POST", "/v1/meshes/"+b.Mesh.ID+"/session", alice.AccessToken, nil, http.StatusNotFound, "mesh_not_found")
		e.wantProblem("POST", "/v1/meshes/"+b.Mesh.ID+"/invites", alice.AccessToken, nil, http.StatusNotFound, "mesh_not_found")
		var me struct {
			Memberships []struct {
				MeshID string `json:"meshId"`
			} `json:"memberships"`
		}
		e.must("GET", "/v1/me", alice.AccessToken, nil, http.StatusOK, &me)
		for _, m := range me.Memberships {
			if m.MeshID == b.Mesh.ID {
				t.Error("/v1/me shows another user's mesh")
			}
		}
		// Member routes: A's admin key cannot touch B's members, keys or invites.
		e.wantProblem("POST", "/v1/meshes/"+b.Mesh.ID+"/invites", aKey.APIKey.Key, nil, http.StatusNotFound, "mesh_not_found")
		e.wantProblem("DELETE", "/v1/members/"+bPeer.Member.ID, aKey.APIKey.Key, nil, http.StatusNotFound, "member_not_found")
		e.wantProblem("DELETE", "/v1/api-keys/"+bPeer.APIKey.ID, aKey.APIKey.Key, nil, http.StatusNotFound, "api_key_not_found")
		var members struct {
			Items []struct {
				MeshID string `json:"meshId"`
			} `json:"items"`
		}
		e.must("GET", "/v1/members?includeRevoked=true", aKey.APIKey.Key, nil, http.StatusOK, &members)
		for _, m := range members.Items {
			if m.MeshID != a.Mesh.ID {
				t.Errorf("mesh A key listed a member of mesh %s", m.MeshID)
			}
		}
		// B's peer key still works: nothing above touched it.
		e.must("GET", "/v1/members", bPeer.APIKey.Key, nil, http.StatusOK, nil)
	})
}

func TestRevokedMemberIsRefusedAtOnce(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Ops")
		peer := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "peer")
		admin := e.memberToken(owner.AccessToken, m.Mesh.ID)
		e.must("GET", "/v1/members", peer.APIKey.Key, nil, http.StatusOK, nil)
		// A plain member cannot revoke.
		e.wantProblem("DELETE", "/v1/members/"+m.Member.ID, peer.APIKey.Key, nil, http.StatusForbidden, "capability_required")
		e.must("DELETE", "/v1/members/"+peer.Member.ID, admin, nil, http.StatusNoContent, nil)
		e.wantProblem("GET", "/v1/members", peer.APIKey.Key, nil, http.StatusUnauthorized, "invalid_api_key")
		e.wantProblem("DELETE", "/v1/members/"+m.Member.ID, admin, nil, http.StatusConflict, "owner_member")
	})
}

func TestCapabilityEscalationRefused(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Ops")
		peer := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "peer")
		// A member-role key holds read/send/state_write; admin is above it.
		e.wantProblem("POST", "/v1/api-keys", peer.APIKey.Key, map[string]any{"capabilities": []string{"admin"}}, http.StatusForbidden, "capability_escalation")
		var ro struct {
			Key string `json:"key"`
		}
		e.must("POST", "/v1/api-keys", peer.APIKey.Key, map[string]any{"capabilities": []string{"read"}}, http.StatusCreated, &ro)
		e.wantProblem("POST", "/v1/api-keys", ro.Key, map[string]any{"capabilities": []string{"read", "send"}}, http.StatusForbidden, "capability_escalation")
		// A member key cannot mint invites, and a member-role user cannot either.
		e.wantProblem("POST", "/v1/meshes/"+m.Mesh.ID+"/invites", peer.APIKey.Key, nil, http.StatusForbidden, "admin_required")
	})
}

func TestJWTRefusals(t *testing.T) {
	e := newEnv(t, models.SQLite, nil)
	s := e.signup()
	now := time.Now()
	var issued jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(s.AccessToken, &issued); err != nil {
		t.Fatal(err)
	}
	base := func() jwt.MapClaims {
		return jwt.MapClaims{"typ": "user", "sub": s.User.ID, "iss": "claudemesh-broker", "aud": "claudemesh",
			"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "fam": issued["fam"]}
	}
	sign := func(m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(m, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := sign(jwt.SigningMethodHS256, testSecret, base())
	e.must("GET", "/v1/me", good, nil, http.StatusOK, nil)

	with := func(k string, v any) jwt.MapClaims { c := base(); c[k] = v; return c }
	without := func(k string) jwt.MapClaims { c := base(); delete(c, k); return c }
	cases := map[string]string{
		"alg none":       sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, base()),
		"wrong audience": sign(jwt.SigningMethodHS256, testSecret, with("aud", "someone-else")),
		"wrong issuer":   sign(jwt.SigningMethodHS256, testSecret, with("iss", "evil")),
		"expired":        sign(jwt.SigningMethodHS256, testSecret, with("exp", now.Add(-time.Minute).Unix())),
		"no expiry":      sign(jwt.SigningMethodHS256, testSecret, without("exp")),
		"other secret":   sign(jwt.SigningMethodHS256, []byte("another-secret-another-secret-32b!"), base()),
		"HS512":          sign(jwt.SigningMethodHS512, testSecret, base()),
		"unknown typ":    sign(jwt.SigningMethodHS256, testSecret, with("typ", "admin")),
		"no family":      sign(jwt.SigningMethodHS256, testSecret, without("fam")),
		"unknown family": sign(jwt.SigningMethodHS256, testSecret, with("fam", models.NewID())),
		"garbage":        "not.a.jwt",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			e.t = t
			e.wantProblem("GET", "/v1/me", tok, nil, http.StatusUnauthorized, "")
		})
	}
	e.t = t
	// A member token for a mesh the member is not in resolves to nothing.
	forged := sign(jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"typ": middleware.TypMember, "sub": models.NewID(), "mesh": models.NewID(),
		"caps": []string{"admin"}, "iss": "claudemesh-broker", "aud": "claudemesh", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	e.wantProblem("GET", "/v1/members", forged, nil, http.StatusUnauthorized, "")
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, models.SQLite, func(c *api.Config) { c.MaxMessageBytes = 1024 })
	big := `{"email":"a@b.co","password":"` + strings.Repeat("x", 40<<10) + `","name":"n"}`
	e.wantProblem("POST", "/v1/auth/signup", "", big, http.StatusRequestEntityTooLarge, "body_too_large")
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, models.SQLite, func(c *api.Config) { c.RateLimit, c.RateLimitBurst = 0.01, 3 })
	s := e.signup()
	m := e.createMesh(s.AccessToken, "Busy")
	_ = m
	var last int
	var hdr http.Header
	for range 10 {
		last, _, hdr = e.call("GET", "/v1/me", s.AccessToken, nil)
		if last == http.StatusTooManyRequests {
			break
		}
	}
	if last != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q; want 429 with Retry-After", last, hdr.Get("Retry-After"))
	}
	// Another principal is not affected by this one's limit.
	other := e.signup()
	e.must("GET", "/v1/me", other.AccessToken, nil, http.StatusOK, nil)
}

func TestAuthRoutesRateLimitedPerIP(t *testing.T) {
	e := newEnv(t, models.SQLite, func(c *api.Config) { c.AuthRateLimit, c.AuthRateLimitBurst = 0.01, 2 })
	body := map[string]string{"email": "x@example.com", "password": "wrongwrong"}
	e.wantProblem("POST", "/v1/auth/login", "", body, http.StatusUnauthorized, "invalid_credentials")
	e.wantProblem("POST", "/v1/auth/login", "", body, http.StatusUnauthorized, "invalid_credentials")
	e.wantProblem("POST", "/v1/auth/login", "", body, http.StatusTooManyRequests, "rate_limited")
}

func TestCORSFromConfig(t *testing.T) {
	e := newEnv(t, models.SQLite, func(c *api.Config) { c.CORSOrigins = []string{"https://dash.example.com"} })
	req, _ := http.NewRequest("OPTIONS", e.base+"/v1/meshes", nil)
	req.Header.Set("Origin", "https://dash.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://dash.example.com" {
		t.Errorf("allowed origin = %q", got)
	}
	req.Header.Set("Origin", "https://evil.example.com")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("foreign origin allowed: %q", got)
	}
}

// syncBuf is a log sink safe for the broker's concurrent writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsHoldNoSecrets drives passwords, tokens, API keys, a ?token=
// stream token and a message body through a broker logging at debug, and
// requires that none of them appears in its logs.
func TestLogsHoldNoSecrets(t *testing.T) {
	var logs syncBuf
	e := newEnvLogging(t, models.SQLite, nil, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	const password = "correct horse battery"
	var s session
	e.must("POST", "/v1/auth/signup", "", map[string]string{"email": "log@example.com", "password": password, "name": "Log"}, http.StatusCreated, &s)
	m := e.createMesh(s.AccessToken, "Logs")
	inv := e.invite(s.AccessToken, m.Mesh.ID, nil)
	peer := e.join(inv, "peer")
	var st struct {
		Token string `json:"token"`
	}
	e.must("POST", "/v1/stream/token", peer.APIKey.Key, nil, http.StatusCreated, &st)
	f := e.follow("/stream?token="+st.Token, "", "")
	f.next(t, "ready")
	body := base64.StdEncoding.EncodeToString([]byte("the secret plan"))
	e.must("POST", "/v1/messages", peer.APIKey.Key, map[string]any{"topic": "general", "ciphertext": body, "bodyVersion": 1}, http.StatusCreated, nil)
	f.next(t, "message")
	f.cancel()
	e.wantProblem("GET", "/v1/members", "cm_"+strings.Repeat("A", 43), nil, http.StatusUnauthorized, "invalid_api_key")
	out := logs.String()
	for name, secret := range map[string]string{"password": password, "access token": s.AccessToken, "refresh token": s.RefreshToken,
		"invite token": inv, "API key": peer.APIKey.Key, "stream token": st.Token, "ciphertext": body, "bad key": strings.Repeat("A", 43)} {
		if strings.Contains(out, secret) {
			t.Errorf("the %s appears in the logs", name)
		}
	}
	if strings.Count(out, `"msg":"request"`) < 8 {
		t.Errorf("expected a log line per request, got:\n%s", out)
	}
}
