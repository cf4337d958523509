package api_test

import (
	"net/http"
	"testing"
)

// TestNewRoutesAreMeshIsolated: every credential of mesh B — its owner's
// user token, an admin member token and an admin API key — gets 404 on
// every mesh-administration route given mesh A's ids, and A is unchanged.
func TestNewRoutesAreMeshIsolated(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		ownerA, ownerB := e.signup(), e.signup()
		a := e.createMesh(ownerA.AccessToken, "Alpha")
		b := e.createMesh(ownerB.AccessToken, "Beta")
		adminA := e.memberToken(ownerA.AccessToken, a.Mesh.ID)
		var invA struct {
			ID    string `json:"id"`
			Token string `json:"token"`
		}
		e.must("POST", "/v1/meshes/"+a.Mesh.ID+"/invites", adminA, map[string]any{"maxUses": 5}, http.StatusCreated, &invA)
		peerA := e.join(invA.Token, "peer-a")
		e.must("POST", "/v1/topics", adminA, map[string]string{"name": "alpha-only", "visibility": "private"}, http.StatusCreated, nil)
		var topicsA page[inboxTopic]
		e.must("GET", "/v1/me/topics", ownerA.AccessToken, nil, http.StatusOK, &topicsA)

		adminB := e.memberToken(ownerB.AccessToken, b.Mesh.ID)
		var keyB struct {
			Key string `json:"key"`
		}
		e.must("POST", "/v1/api-keys", adminB, map[string]any{"name": "b-admin", "capabilities": []string{"read", "send", "admin"}}, http.StatusCreated, &keyB)

		meshA := "/v1/meshes/" + a.Mesh.ID
		routes := []struct{ method, path string }{
			{"GET", meshA + "/invites"},
			{"DELETE", meshA + "/invites/" + invA.ID},
			{"PATCH", meshA},
			{"POST", meshA + "/archive"},
			{"POST", meshA + "/leave"},
		}
		bodies := map[string]any{"PATCH": map[string]string{"name": "Hijacked"}}
		for _, cred := range []struct{ name, tok string }{{"user", ownerB.AccessToken}, {"member token", adminB}, {"api key", keyB.Key}} {
			for _, r := range routes {
				status, raw, _ := e.call(r.method, r.path, cred.tok, bodies[r.method])
				if status != http.StatusNotFound {
					t.Errorf("%s: %s %s = %d: %s", cred.name, r.method, r.path, status, raw)
				}
			}
			// Topic routes resolve names inside the caller's own mesh only.
			for _, r := range []struct{ method, path string }{
				{"POST", "/v1/topics/alpha-only/rotate-key"},
				{"GET", "/v1/topics/alpha-only/key?epoch=1"},
			} {
				if cred.name == "user" {
					continue
				}
				if status, raw, _ := e.call(r.method, r.path, cred.tok, nil); status != http.StatusNotFound {
					t.Errorf("%s: %s %s = %d: %s", cred.name, r.method, r.path, status, raw)
				}
			}
		}
		// The user inbox never reaches mesh A's topics for B's owner.
		for _, tp := range topicsA.Items {
			e.wantProblem("PATCH", "/v1/me/topics/"+tp.TopicID+"/read", ownerB.AccessToken, map[string]any{"seq": 1}, http.StatusNotFound, "topic_not_found")
		}
		// B's audit log holds nothing of A.
		var audit page[struct {
			Target string `json:"target"`
		}]
		e.must("GET", "/v1/audit?limit=200", keyB.Key, nil, http.StatusOK, &audit)
		for _, ev := range audit.Items {
			if ev.Target == a.Mesh.ID || ev.Target == invA.ID || ev.Target == peerA.Member.ID {
				t.Errorf("mesh B's audit log names mesh A's %s", ev.Target)
			}
		}
		// Mesh A is untouched: its name, its invite and its member.
		var mesh struct {
			Name       string  `json:"name"`
			ArchivedAt *string `json:"archivedAt"`
		}
		e.must("GET", meshA, ownerA.AccessToken, nil, http.StatusOK, &mesh)
		if mesh.Name != "Alpha" || mesh.ArchivedAt != nil {
			t.Fatalf("mesh A changed: %+v", mesh)
		}
		e.must("GET", "/v1/invites/"+invA.Token, "", nil, http.StatusOK, nil)
		e.must("GET", "/v1/members", peerA.APIKey.Key, nil, http.StatusOK, nil)
	})
}
