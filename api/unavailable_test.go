package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestDatabaseUnavailableSaysWhatToDo: while PostgreSQL is unreachable,
// every request answers 503 database_unavailable with a detail that fits
// it: a read or a login is told to retry, and only a message post speaks
// of retrying with its clientMessageId.
func TestDatabaseUnavailableSaysWhatToDo(t *testing.T) {
	opt, proxy := postgresBehindProxy(t)
	e, _ := brokerOn(t, opt, nil)

	owner := e.signup()
	m := e.createMesh(owner.AccessToken, "Unavailable")
	poster := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "poster")

	proxy.setDown(true)
	defer proxy.setDown(false)
	const plain = "the database is unreachable; retry shortly"
	cases := []struct {
		name, method, path, token string
		body                      any
		mentionsPost              bool
	}{
		{"list topics", "GET", "/v1/topics", poster.APIKey.Key, nil, false},
		{"history", "GET", "/v1/topics/general/messages", poster.APIKey.Key, nil, false},
		{"my meshes", "GET", "/v1/meshes", owner.AccessToken, nil, false},
		{"login", "POST", "/v1/auth/login", "", map[string]string{"email": "nobody@example.com", "password": "correct horse battery"}, false},
		{"create topic", "POST", "/v1/topics", poster.APIKey.Key, map[string]any{"name": "ops"}, false},
		{"post", "POST", "/v1/messages", poster.APIKey.Key, map[string]any{"topic": "general", "bodyVersion": 1, "ciphertext": "aGk=", "clientMessageId": "c1"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, raw, hdr := e.call(tc.method, tc.path, tc.token, tc.body)
			var p struct{ Code, Detail string }
			_ = json.Unmarshal(raw, &p)
			if status != http.StatusServiceUnavailable || p.Code != "database_unavailable" || hdr.Get("Retry-After") == "" {
				t.Fatalf("%s %s = %d %s (Retry-After %q), want 503 database_unavailable", tc.method, tc.path, status, raw, hdr.Get("Retry-After"))
			}
			talksOfPosts := strings.Contains(p.Detail, "post") || strings.Contains(p.Detail, "clientMessageId")
			if talksOfPosts != tc.mentionsPost || !strings.HasPrefix(p.Detail, plain) {
				t.Errorf("detail %q (should mention posts: %v)", p.Detail, tc.mentionsPost)
			}
			if l := leaked(raw); l != "" {
				t.Errorf("leaked %q: %s", l, raw)
			}
		})
	}
}
