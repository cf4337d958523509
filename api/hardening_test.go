package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/claudemesh/claudemesh-go/api"
	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/peer/peertest"
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

// stringLeaves lists the JSON paths of every string a request schema can
// hold ("name", "mentions[0]", "envelopes[0].nonce").
func stringLeaves(s *openapi3.Schema, path string, depth int) []string {
	if s == nil || depth > 6 {
		return nil
	}
	var out []string
	for _, sub := range append(append([]*openapi3.SchemaRef{}, s.AllOf...), append(s.OneOf, s.AnyOf...)...) {
		out = append(out, stringLeaves(sub.Value, path, depth+1)...)
	}
	switch {
	case s.Type.Is("string"):
		out = append(out, path)
	case s.Type.Is("array") && s.Items != nil:
		out = append(out, stringLeaves(s.Items.Value, path+"[0]", depth+1)...)
	case s.Type.Is("object") || len(s.Properties) > 0:
		for name, p := range s.Properties {
			child := name
			if path != "" {
				child = path + "." + name
			}
			out = append(out, stringLeaves(p.Value, child, depth+1)...)
		}
	}
	return out
}

// bodyWithNUL builds the smallest JSON body that puts "a\x00b" at path.
func bodyWithNUL(path string) any {
	var build func(parts []string) any
	build = func(parts []string) any {
		if len(parts) == 0 {
			return "a\x00b"
		}
		head := parts[0]
		if name, ok := strings.CutSuffix(head, "[0]"); ok {
			inner := build(append([]string{"[0]"}, parts[1:]...)[1:])
			if name == "" {
				return []any{inner}
			}
			return map[string]any{name: []any{inner}}
		}
		return map[string]any{head: build(parts[1:])}
	}
	// Split "a.b[0].c" into "a", "b[0]", "c"; a bare "[0]" chain stays on its name.
	return build(strings.Split(path, "."))
}

// TestNULRefusedInEveryBodyField: U+0000 in any string of any documented
// request body is a 422 naming the field, on both databases, and nothing is
// stored. (PostgreSQL answered 500 for it, SQLite stored it.)
func TestNULRefusedInEveryBodyField(t *testing.T) {
	doc := loadSpec(t)
	eachEnv(t, func(t *testing.T, e *env) {
		s := e.signup()
		m := e.createMesh(s.AccessToken, "Nul Test")
		member := e.memberToken(s.AccessToken, m.Mesh.ID)
		before := rowCounts(t, e)
		checked := 0
		for path, item := range doc.Paths.Map() {
			for method, op := range item.Operations() {
				if op.RequestBody == nil || op.RequestBody.Value.Content.Get("application/json") == nil {
					continue
				}
				url := strings.NewReplacer("{id}", m.Mesh.ID, "{name}", "general", "{memberId}", m.Member.ID,
					"{inviteId}", models.NewID()).Replace(path)
				url = regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(url, models.NewID())
				schema := op.RequestBody.Value.Content.Get("application/json").Schema.Value
				for _, leaf := range stringLeaves(schema, "", 0) {
					body := bodyWithNUL(leaf)
					tok := member
					status, raw, _ := e.call(method, url, tok, body)
					if status == http.StatusForbidden && strings.Contains(string(raw), "user_token_required") {
						status, raw, _ = e.call(method, url, s.AccessToken, body)
					}
					var p struct {
						Code   string              `json:"code"`
						Errors []models.FieldError `json:"errors"`
					}
					_ = json.Unmarshal(raw, &p)
					if status != http.StatusUnprocessableEntity || p.Code != "validation_failed" || len(p.Errors) != 1 || p.Errors[0].Field != leaf {
						t.Errorf("%s %s with NUL in %s = %d %s, want 422 naming %q", method, path, leaf, status, raw, leaf)
					}
					checked++
				}
			}
		}
		if checked < 40 {
			t.Fatalf("only %d body fields checked; the walk over openapi.yaml is broken", checked)
		}
		if after := rowCounts(t, e); !maps.Equal(before, after) {
			t.Fatalf("rows changed by refused requests: before %v, after %v", before, after)
		}
		// Query parameters are checked too.
		e.wantProblem("GET", "/v1/topics?q=a%00b", member, nil, http.StatusBadRequest, "invalid_query")
		e.wantProblem("GET", "/v1/topics/gen%00eral/messages", member, nil, http.StatusNotFound, "not_found")
	})
}

// TestNamesRefuseControlCharacters: names people read carry no control
// characters or bidirectional overrides; multi-line text keeps newlines.
func TestNamesRefuseControlCharacters(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.wantProblem("POST", "/v1/auth/signup", "", map[string]string{"email": "ctl@example.com", "password": "correct horse battery",
			"name": "Eve\x1b[31m"}, http.StatusUnprocessableEntity, "validation_failed")
		s := e.signup()
		e.wantProblem("POST", "/v1/meshes", s.AccessToken, map[string]string{"name": "admin\u202egnp.exe"}, http.StatusUnprocessableEntity, "validation_failed")
		m := e.createMesh(s.AccessToken, "Ctl")
		member := e.memberToken(s.AccessToken, m.Mesh.ID)
		e.wantProblem("POST", "/v1/topics", member, map[string]string{"name": "ctl", "description": "bell\a"}, http.StatusUnprocessableEntity, "validation_failed")
		e.must("POST", "/v1/topics", member, map[string]string{"name": "ctl", "description": "line one\nline two\twith a tab"}, http.StatusCreated, nil)
		e.wantProblem("POST", "/v1/api-keys", member, map[string]any{"name": "key\r\nX-Injected: 1", "capabilities": []string{"read"}},
			http.StatusUnprocessableEntity, "validation_failed")
	})
}

// rowCounts counts the rows of the tables a request could write.
func rowCounts(t *testing.T, e *env) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, table := range []string{"users", "meshes", "members", "invites", "api_keys", "topics", "topic_members", "messages",
		"topic_member_keys", "notifications", "presence", "message_queue"} {
		db, err := e.store.SQLDB()
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := db.QueryRowContext(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

// TestWSFrameRefusesNUL: a WebSocket frame with U+0000 in any string gets a
// validation error naming the field, and the connection stays usable.
func TestWSFrameRefusesNUL(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := e.signup()
		m := e.createMesh(s.AccessToken, "WS Nul")
		a := e.joinWithIdentity(e.invite(s.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 1}), "nul-a")
		c := e.dialPeer(a, m.Mesh.ID, "sess-nul")
		got := wsSend(t, c, map[string]any{"type": "set_status", "status": "working", "summary": "a\x00b", "ref": "r1"})
		if got.Type != "error" || peertest.View(got).Code != "validation_failed" || !strings.Contains(peertest.View(got).Message, "summary") {
			t.Fatalf("set_status with NUL answered %s %s %q, want a validation_failed error naming summary", got.Type, peertest.View(got).Code, peertest.View(got).Message)
		}
		ok := wsSend(t, c, map[string]any{"type": "set_status", "status": "working", "summary": "fine", "ref": "r2"})
		if ok.Type == "error" {
			t.Fatalf("the connection is not usable after the refusal: %s %s", peertest.View(ok).Code, peertest.View(ok).Message)
		}
	})
}

// TestResumeBeyondTheEndIsClamped: a resume point past the mesh's newest seq
// used to filter out every live event until the mesh caught up (a silent
// mute). It is clamped to the newest seq, the client is told, and the next
// post is delivered, on both stream routes and on /ws.
func TestResumeBeyondTheEndIsClamped(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Clamp")
		peer := e.joinWithIdentity(e.invite(owner.AccessToken, m.Mesh.ID, nil), "clamp-peer")
		key := peer.APIKey.Key
		last, err := e.post(key, "general", []byte("before"))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ name, path, lastID string }{
			{"topic stream, Last-Event-ID", "/v1/topics/general/stream", "9223372036854775807"},
			{"topic stream, since", "/v1/topics/general/stream?since=1000", ""},
			{"mesh stream, Last-Event-ID", "/stream", "9223372036854775807"},
		} {
			f := e.follow(tc.path, key, tc.lastID)
			var ready struct {
				LastSeq int64 `json:"lastSeq"`
				Resumed bool  `json:"resumed"`
				Clamped bool  `json:"clamped"`
			}
			if err := json.Unmarshal(f.next(t, "ready").Data, &ready); err != nil {
				t.Fatal(err)
			}
			if !ready.Clamped || !ready.Resumed || ready.LastSeq != last {
				t.Errorf("%s: ready %+v, want clamped and resumed at lastSeq %d", tc.name, ready, last)
			}
			s, err := e.post(key, "general", []byte("after "+tc.name))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.seq(t); got != s {
				t.Errorf("%s: next message seq %d, want %d (the stream must not be muted)", tc.name, got, s)
			}
			last = s
			f.cancel()
		}
		c := e.dialPeer(peer, m.Mesh.ID, "sess-clamp")
		sub := wsSend(t, c, map[string]any{"type": "subscribe", "topics": []string{"general"}, "since": int64(1) << 62})
		if sub.Type != "subscribed" || !peertest.View(sub).Clamped || peertest.View(sub).LastSeq != last {
			t.Fatalf("ws subscribe beyond the end: %s clamped=%v lastSeq=%d, want subscribed, clamped, %d", sub.Type, peertest.View(sub).Clamped, peertest.View(sub).LastSeq, last)
		}
		s, err := e.post(key, "general", []byte("after ws"))
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Seq int64 `json:"seq"`
		}
		if err := peertest.DecodeData(wsNext(t, c, "message"), &ev); err != nil || ev.Seq != s {
			t.Fatalf("ws: next message seq %d (%v), want %d", ev.Seq, err, s)
		}
	})
}

// arrayLimits lists the arrays of a request schema with maxItems or
// uniqueItems, and a valid sample item for each.
type arrayLimit struct {
	path   string
	max    int
	unique bool
	item   any
}

func arrayLimits(s *openapi3.Schema, path string) []arrayLimit {
	var out []arrayLimit
	for name, p := range s.Properties {
		v := p.Value
		if !v.Type.Is("array") || v.Items == nil {
			continue
		}
		var item any = "x"
		if iv := v.Items.Value; len(iv.Enum) > 0 {
			item = iv.Enum[0]
		} else if iv.Type.Is("string") && iv.Format == "uuid" {
			item = models.NewID()
		} else if iv.Type.Is("string") {
			item = "general"
		}
		max := 0
		if v.MaxItems != nil {
			max = int(*v.MaxItems)
		}
		if max > 0 || v.UniqueItems {
			out = append(out, arrayLimit{path: name, max: max, unique: v.UniqueItems, item: item})
		}
	}
	return out
}

// TestArrayLimitsOfTheContract: every request array the contract bounds
// (maxItems) or makes a set (uniqueItems) is refused with a 422 naming it
// when the bound is broken — ["read","read","read","read","read"] was
// accepted as capabilities.
func TestArrayLimitsOfTheContract(t *testing.T) {
	doc := loadSpec(t)
	e := newEnv(t, models.SQLite, nil)
	s := e.signup()
	m := e.createMesh(s.AccessToken, "Limits")
	member := e.memberToken(s.AccessToken, m.Mesh.ID)
	checked := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody == nil || op.RequestBody.Value.Content.Get("application/json") == nil {
				continue
			}
			url := strings.NewReplacer("{id}", m.Mesh.ID, "{name}", "general").Replace(path)
			for _, l := range arrayLimits(op.RequestBody.Value.Content.Get("application/json").Schema.Value, "") {
				var bodies []any
				if l.max > 0 {
					items := make([]any, l.max+1)
					for i := range items {
						items[i] = l.item
						if s, ok := l.item.(string); ok && !l.unique && s != "general" {
							items[i] = models.NewID()
						}
					}
					bodies = append(bodies, map[string]any{l.path: items})
				}
				if l.unique {
					bodies = append(bodies, map[string]any{l.path: []any{l.item, l.item}})
				}
				for _, body := range bodies {
					status, raw, _ := e.call(method, url, member, body)
					if status == http.StatusForbidden && strings.Contains(string(raw), "user_token_required") {
						status, raw, _ = e.call(method, url, s.AccessToken, body)
					}
					var p struct {
						Errors []models.FieldError `json:"errors"`
					}
					_ = json.Unmarshal(raw, &p)
					named := false
					for _, fe := range p.Errors {
						named = named || fe.Field == l.path
					}
					if status != http.StatusUnprocessableEntity || !named {
						t.Errorf("%s %s breaking %s = %d %s, want 422 naming it", method, path, l.path, status, raw)
					}
					checked++
				}
			}
		}
	}
	if checked < 4 {
		t.Fatalf("only %d array limits checked", checked)
	}
}

// TestFrameLimitMustCarryAMessage: a WS_MAX_FRAME_BYTES too small for the
// largest message is refused at start (it used to be raised silently).
func TestFrameLimitMustCarryAMessage(t *testing.T) {
	env := func(vals map[string]string) func(string) string { return func(k string) string { return vals[k] } }
	if _, err := api.LoadConfig(env(map[string]string{"WS_MAX_FRAME_BYTES": "65536"})); err == nil || !strings.HasPrefix(err.Error(), "WS_MAX_FRAME_BYTES:") {
		t.Errorf("64 KiB frames with 64 KiB messages: err %v, want one naming WS_MAX_FRAME_BYTES", err)
	}
	cfg, err := api.LoadConfig(env(map[string]string{"WS_MAX_FRAME_BYTES": "65536", "MAX_MESSAGE_BYTES": "4096"}))
	if err != nil || cfg.WSMaxFrameBytes != 65536 {
		t.Errorf("64 KiB frames with 4 KiB messages: %d, %v; want accepted as given", cfg.WSMaxFrameBytes, err)
	}
	cfg, err = api.LoadConfig(env(map[string]string{"MAX_MESSAGE_BYTES": "4194304"}))
	if err != nil || cfg.WSMaxFrameBytes < cfg.BodyLimit() {
		t.Errorf("default frame limit with 4 MiB messages: %d < %d (%v)", cfg.WSMaxFrameBytes, cfg.BodyLimit(), err)
	}
}

// TestSealsNameTheirEpoch: a claim or seal made with a key from before a
// rotation is refused (409 key_epoch_mismatch with the current epoch), so a
// client holding a stale key can never store it as the new epoch's.
func TestSealsNameTheirEpoch(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Epochs")
		inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 2})
		alice, bob := e.joinWithIdentity(inv, "alice"), e.joinWithIdentity(inv, "bob")
		e.must("POST", "/v1/topics", alice.APIKey.Key, map[string]string{"name": "vault"}, http.StatusCreated, nil)
		e.must("POST", "/v1/topics/vault/join", bob.APIKey.Key, nil, http.StatusOK, nil)
		seal := func(k [meshcrypto.TopicKeySize]byte, to cryptoPeer) (string, string) {
			ek, nonce, err := meshcrypto.SealTopicKey(k, alice.id, to.id.PublicKey())
			if err != nil {
				t.Fatal(err)
			}
			return ek, nonce
		}
		mismatch := func(method, path string, body any, current int) {
			t.Helper()
			status, raw, _ := e.call(method, path, alice.APIKey.Key, body)
			var p struct {
				Code     string `json:"code"`
				KeyEpoch int    `json:"keyEpoch"`
			}
			_ = json.Unmarshal(raw, &p)
			if status != http.StatusConflict || p.Code != "key_epoch_mismatch" || p.KeyEpoch != current {
				t.Fatalf("%s %s = %d %s, want 409 key_epoch_mismatch at epoch %d", method, path, status, raw, current)
			}
		}
		k1, _ := meshcrypto.NewTopicKey()
		ek, nonce := seal(k1, alice)
		mismatch("POST", "/v1/topics/vault/claim-key", map[string]any{"encryptedKey": ek, "nonce": nonce, "keyEpoch": 2}, 1)
		e.must("POST", "/v1/topics/vault/claim-key", alice.APIKey.Key, map[string]any{"encryptedKey": ek, "nonce": nonce, "keyEpoch": 1}, http.StatusCreated, nil)

		var rotated struct {
			Joined   bool   `json:"joined"`
			Role     string `json:"role"`
			KeyEpoch int    `json:"keyEpoch"`
		}
		e.must("POST", "/v1/topics/vault/rotate-key", alice.APIKey.Key, nil, http.StatusOK, &rotated)
		if !rotated.Joined || rotated.Role != "lead" || rotated.KeyEpoch != 2 {
			t.Fatalf("rotate-key answered %+v, want the topic as its lead sees it at epoch 2", rotated)
		}
		// Alice still holds epoch 1's key; sealing it now would hand Bob a
		// key that opens nothing new.
		k2, _ := meshcrypto.NewTopicKey()
		ek, nonce = seal(k2, alice)
		mismatch("POST", "/v1/topics/vault/claim-key", map[string]any{"encryptedKey": ek, "nonce": nonce, "keyEpoch": 1}, 2)
		e.must("POST", "/v1/topics/vault/claim-key", alice.APIKey.Key, map[string]any{"encryptedKey": ek, "nonce": nonce, "keyEpoch": 2}, http.StatusCreated, nil)
		ek, nonce = seal(k1, bob)
		mismatch("POST", "/v1/topics/vault/seal", map[string]any{"memberId": bob.Member.ID, "encryptedKey": ek, "nonce": nonce, "keyEpoch": 1}, 2)
		ek, nonce = seal(k2, bob)
		e.must("POST", "/v1/topics/vault/seal", alice.APIKey.Key, map[string]any{"memberId": bob.Member.ID, "encryptedKey": ek, "nonce": nonce, "keyEpoch": 2}, http.StatusCreated, nil)
	})
}
