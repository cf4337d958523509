package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/api"
	wsclient "github.com/claudemesh/claudemesh-go/peer"
)

// TestArchiveMeshCutsEverything: archiving a mesh ends a live SSE stream
// (event: end, mesh_archived), closes a live peer WebSocket (mesh_archived)
// and refuses the mesh's API key and member token, all in one test.
func TestArchiveMeshCutsEverything(t *testing.T) {
	eachEnvWith(t, func(c *api.Config) {
		c.StreamRevalidate = 50 * time.Millisecond
		c.WSRecheck = 50 * time.Millisecond
	}, func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go e.srv.Peers().Run(ctx)
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Doomed")
		admin := e.memberToken(owner.AccessToken, m.Mesh.ID)
		bob := e.joinWithIdentity(e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 2}), "bob")
		carol := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "carol")

		f := e.follow("/stream", carol.APIKey.Key, "")
		defer f.cancel()
		f.next(t, "ready")
		cb := e.dialPeer(bob, m.Mesh.ID, "b")

		var archived struct {
			ArchivedAt *string `json:"archivedAt"`
		}
		e.must("POST", "/v1/meshes/"+m.Mesh.ID+"/archive", owner.AccessToken, nil, http.StatusOK, &archived)
		if archived.ArchivedAt == nil {
			t.Fatal("archive answered a mesh without archivedAt")
		}

		// The SSE stream ends with the fixed code.
		end := f.next(t, "end")
		if !strings.Contains(string(end.Data), "mesh_archived") {
			t.Errorf("end event %s, want reason mesh_archived", end.Data)
		}
		select {
		case <-f.done:
		case <-time.After(10 * time.Second):
			t.Error("stream still open 10 s after the archive")
		}
		// The peer's WebSocket is closed with mesh_archived.
		_, err := cb.Next(context.Background())
		for err == nil {
			_, err = cb.Next(context.Background())
		}
		if code, reason := wsclient.CloseStatus(err); code != 4403 || !strings.HasPrefix(reason, "mesh_archived") {
			t.Errorf("websocket closed with %d %q", code, reason)
		}
		// Keys and tokens are refused on their next request.
		e.wantProblem("GET", "/v1/members", carol.APIKey.Key, nil, http.StatusUnauthorized, "invalid_api_key")
		e.wantProblem("GET", "/v1/members", admin, nil, http.StatusUnauthorized, "")
		// Nobody mints a new member session or joins; the owner still sees it.
		e.wantProblem("POST", "/v1/meshes/"+m.Mesh.ID+"/session", owner.AccessToken, nil, http.StatusNotFound, "mesh_not_found")
		e.must("GET", "/v1/meshes/"+m.Mesh.ID, owner.AccessToken, nil, http.StatusOK, &archived)
		if archived.ArchivedAt == nil {
			t.Error("the owner's view of the mesh lost archivedAt")
		}
		e.wantProblem("POST", "/v1/meshes/"+m.Mesh.ID+"/archive", owner.AccessToken, nil, http.StatusNotFound, "mesh_not_found")
	})
}

// TestArchiveTopicEndsItsStreams: archiving a topic ends the streams that
// follow it by name, with the fixed code topic_archived.
func TestArchiveTopicEndsItsStreams(t *testing.T) {
	eachEnvWith(t, func(c *api.Config) { c.StreamRevalidate = 50 * time.Millisecond }, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Topics")
		lead := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "lead")
		e.must("POST", "/v1/topics", lead.APIKey.Key, map[string]string{"name": "old"}, http.StatusCreated, nil)
		one := e.follow("/v1/topics/old/stream", lead.APIKey.Key, "")
		defer one.cancel()
		one.next(t, "ready")
		named := e.follow("/stream?topics=old", lead.APIKey.Key, "")
		defer named.cancel()
		named.next(t, "ready")
		e.must("DELETE", "/v1/topics/old", lead.APIKey.Key, nil, http.StatusNoContent, nil)
		for _, f := range []*follower{one, named} {
			if end := f.next(t, "end"); !strings.Contains(string(end.Data), "topic_archived") {
				t.Errorf("end event %s, want topic_archived", end.Data)
			}
		}
		e.wantProblem("GET", "/v1/topics/old/stream", lead.APIKey.Key, nil, http.StatusConflict, "topic_archived")
	})
}
