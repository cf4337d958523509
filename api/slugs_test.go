package api_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestMeshSlugsOverHTTP: names in any script get distinct slugs through
// POST /v1/meshes; a chosen slug is refused in words naming the field (422)
// or the slug (409).
func TestMeshSlugsOverHTTP(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := e.signup()
		a, b := e.createMesh(s.AccessToken, "Команда"), e.createMesh(s.AccessToken, "チーム")
		c := e.createMesh(s.AccessToken, "チーム")
		if a.Mesh.Slug != "komanda" || b.Mesh.Slug == c.Mesh.Slug || b.Mesh.Slug == "mesh" {
			t.Errorf("slugs %q, %q, %q: want komanda and two distinct random ones", a.Mesh.Slug, b.Mesh.Slug, c.Mesh.Slug)
		}
		var m meshOut
		e.must("POST", "/v1/meshes", s.AccessToken, map[string]string{"name": "チーム", "slug": "tokyo"}, http.StatusCreated, &m)
		if m.Mesh.Slug != "tokyo" {
			t.Errorf("chosen slug = %q, want tokyo", m.Mesh.Slug)
		}
		e.wantProblem("POST", "/v1/meshes", s.AccessToken, map[string]string{"name": "x", "slug": "tokyo"}, http.StatusConflict, "slug_taken")
		status, raw, _ := e.call("POST", "/v1/meshes", s.AccessToken, map[string]string{"name": "x", "slug": "Tokyo!"})
		var p struct {
			Errors []struct{ Field, Message string } `json:"errors"`
		}
		if err := json.Unmarshal(raw, &p); err != nil || status != http.StatusUnprocessableEntity || len(p.Errors) != 1 || p.Errors[0].Field != "slug" {
			t.Errorf("bad slug = %d %s, want 422 naming slug", status, raw)
		}
	})
}
