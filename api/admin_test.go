package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/claudemesh/claudemesh-go/api"
)

// TestJoinAsUser: a join made with a user token links the member to that
// user, who can then open a member session for the mesh; the same user
// may join again from the CLI with a separate peer member.
func TestJoinAsUser(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		owner, grace := e.signup(), e.signup()
		m := e.createMesh(owner.AccessToken, "People")
		inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 3})

		// Before joining, grace has no membership to open a session for.
		e.wantProblem("POST", "/v1/meshes/"+m.Mesh.ID+"/session", grace.AccessToken, nil, http.StatusNotFound, "mesh_not_found")

		var dash joinedUser
		e.must("POST", "/v1/join", grace.AccessToken, map[string]string{"token": inv, "pubkey": newPubkey(t), "displayName": "grace"}, http.StatusCreated, &dash)
		if dash.Member.UserID == nil || *dash.Member.UserID != grace.User.ID {
			t.Fatalf("joined member not linked to the user: %+v", dash.Member)
		}
		var sess struct {
			MemberID string `json:"memberId"`
		}
		e.must("POST", "/v1/meshes/"+m.Mesh.ID+"/session", grace.AccessToken, nil, http.StatusCreated, &sess)
		if sess.MemberID != dash.Member.ID {
			t.Fatalf("session for %s, want the dashboard member %s", sess.MemberID, dash.Member.ID)
		}

		// A second join by the same user: a separate CLI peer, also linked;
		// the dashboard session keeps naming the first member.
		var cli joinedUser
		e.must("POST", "/v1/join", grace.AccessToken, map[string]string{"token": inv, "pubkey": newPubkey(t), "displayName": "grace-cli"}, http.StatusCreated, &cli)
		if cli.Member.ID == dash.Member.ID || cli.Member.UserID == nil || *cli.Member.UserID != grace.User.ID {
			t.Fatalf("cli member: %+v", cli.Member)
		}
		e.must("POST", "/v1/meshes/"+m.Mesh.ID+"/session", grace.AccessToken, nil, http.StatusCreated, &sess)
		if sess.MemberID != dash.Member.ID {
			t.Fatalf("after the CLI join the session names %s (dash %s, cli %s)", sess.MemberID, dash.Member.ID, cli.Member.ID)
		}
		// Anonymous joins stay unlinked; member credentials are refused.
		anon := e.join(inv, "anon")
		e.wantProblem("POST", "/v1/join", anon.APIKey.Key, map[string]string{"token": inv, "pubkey": newPubkey(t), "displayName": "x"}, http.StatusForbidden, "user_token_required")
	})
}

type joinedUser struct {
	Member struct {
		ID     string  `json:"id"`
		UserID *string `json:"userId"`
	} `json:"member"`
}

type inviteSummary struct {
	ID                   string  `json:"id"`
	TokenPrefix          string  `json:"tokenPrefix"`
	Uses                 int     `json:"uses"`
	MaxUses              int     `json:"maxUses"`
	RevokedAt            *string `json:"revokedAt"`
	CreatedByDisplayName *string `json:"createdByDisplayName"`
}

// TestInviteManagement: admins list invites (prefix, never the token),
// anyone previews one without spending a use, and a revoked invite fails
// joins and previews at once with 410.
func TestInviteManagement(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Invites")
		base := "/v1/meshes/" + m.Mesh.ID + "/invites"
		var created struct {
			ID    string `json:"id"`
			Token string `json:"token"`
		}
		e.must("POST", base, owner.AccessToken, map[string]any{"maxUses": 2}, http.StatusCreated, &created)

		var pv struct {
			MeshName           string  `json:"meshName"`
			InviterDisplayName *string `json:"inviterDisplayName"`
			UsesLeft           int     `json:"usesLeft"`
		}
		for range 3 { // previews spend nothing
			e.must("GET", "/v1/invites/"+created.Token, "", nil, http.StatusOK, &pv)
		}
		if pv.MeshName != "Invites" || pv.UsesLeft != 2 || pv.InviterDisplayName == nil || *pv.InviterDisplayName != "grace-hopper" {
			t.Fatalf("preview: %+v", pv)
		}
		member := e.join(created.Token, "first")
		e.must("GET", "/v1/invites/"+created.Token, "", nil, http.StatusOK, &pv)
		if pv.UsesLeft != 1 {
			t.Fatalf("uses left after a join: %d", pv.UsesLeft)
		}
		e.wantProblem("GET", "/v1/invites/cmi_nosuchtoken", "", nil, http.StatusNotFound, "invite_not_found")

		// The list, as the dashboard user and as an admin member token.
		admin := e.memberToken(owner.AccessToken, m.Mesh.ID)
		for _, tok := range []string{owner.AccessToken, admin} {
			var page struct {
				Items []inviteSummary `json:"items"`
			}
			status, raw, _ := e.call("GET", base, tok, nil)
			if status != http.StatusOK || strings.Contains(string(raw), created.Token) {
				t.Fatalf("list = %d, and must never hold the token: %s", status, raw)
			}
			e.must("GET", base, tok, nil, http.StatusOK, &page)
			if len(page.Items) != 1 || page.Items[0].ID != created.ID || page.Items[0].Uses != 1 || page.Items[0].MaxUses != 2 ||
				!strings.HasPrefix(created.Token, page.Items[0].TokenPrefix) || len(page.Items[0].TokenPrefix) != 10 {
				t.Fatalf("list: %+v", page.Items)
			}
		}
		// Plain members can neither list nor revoke.
		e.wantProblem("GET", base, member.APIKey.Key, nil, http.StatusForbidden, "admin_required")
		e.wantProblem("DELETE", base+"/"+created.ID, member.APIKey.Key, nil, http.StatusForbidden, "admin_required")

		e.must("DELETE", base+"/"+created.ID, admin, nil, http.StatusNoContent, nil)
		e.must("DELETE", base+"/"+created.ID, admin, nil, http.StatusNoContent, nil) // idempotent
		e.wantProblem("POST", "/v1/join", "", map[string]string{"token": created.Token, "pubkey": newPubkey(t), "displayName": "late"}, http.StatusGone, "invite_revoked")
		e.wantProblem("GET", "/v1/invites/"+created.Token, "", nil, http.StatusGone, "invite_revoked")
		e.wantProblem("DELETE", base+"/"+"0192f5a0-0000-7000-8000-000000000000", admin, nil, http.StatusNotFound, "invite_not_found")
	})
}

// TestMeshRenameAndLeave: admins rename; the last admin cannot leave
// without naming a successor, who becomes admin; the owner cannot leave.
func TestMeshRenameAndLeave(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		owner, ada := e.signup(), e.signup()
		m := e.createMesh(owner.AccessToken, "Before")
		var mesh struct {
			Name string `json:"name"`
			Slug string `json:"slug"`
		}
		e.must("PATCH", "/v1/meshes/"+m.Mesh.ID, owner.AccessToken, map[string]string{"name": "After"}, http.StatusOK, &mesh)
		if mesh.Name != "After" || mesh.Slug != m.Mesh.Slug {
			t.Fatalf("renamed: %+v", mesh)
		}
		e.wantProblem("PATCH", "/v1/meshes/"+m.Mesh.ID, owner.AccessToken, map[string]string{"name": ""}, http.StatusUnprocessableEntity, "validation_failed")

		adminInv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"role": "admin"})
		var adaM joinedUser
		e.must("POST", "/v1/join", ada.AccessToken, map[string]string{"token": adminInv, "pubkey": newPubkey(t), "displayName": "ada"}, http.StatusCreated, &adaM)
		peer := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "peer")
		e.wantProblem("PATCH", "/v1/meshes/"+m.Mesh.ID, peer.APIKey.Key, map[string]string{"name": "x"}, http.StatusForbidden, "admin_required")

		// The owner is an admin too, so ada may leave; the owner may not.
		e.wantProblem("POST", "/v1/meshes/"+m.Mesh.ID+"/leave", owner.AccessToken, nil, http.StatusConflict, "owner_member")
		adaTok := e.memberToken(ada.AccessToken, m.Mesh.ID)
		e.must("POST", "/v1/meshes/"+m.Mesh.ID+"/leave", ada.AccessToken, nil, http.StatusNoContent, nil)
		e.wantProblem("GET", "/v1/members", adaTok, nil, http.StatusUnauthorized, "")
		e.wantProblem("POST", "/v1/meshes/"+m.Mesh.ID+"/session", ada.AccessToken, nil, http.StatusNotFound, "mesh_not_found")

		// A plain member leaves with its own key.
		e.must("POST", "/v1/meshes/"+m.Mesh.ID+"/leave", peer.APIKey.Key, nil, http.StatusNoContent, nil)
		e.wantProblem("GET", "/v1/members", peer.APIKey.Key, nil, http.StatusUnauthorized, "invalid_api_key")
	})
}

// TestLastAdminLeaves: the last admin cannot leave without naming a
// successor (409 last_admin); leaving with one makes it admin. The owner's
// member is always an admin and cannot leave, so the test first demotes it
// in the database, as in a mesh made before owners had members.
func TestLastAdminLeaves(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Admins")
		admin := e.memberToken(owner.AccessToken, m.Mesh.ID)
		boss := e.join(e.invite(admin, m.Mesh.ID, map[string]any{"role": "admin"}), "boss")
		worker := e.join(e.invite(admin, m.Mesh.ID, nil), "worker")
		db, err := e.store.SQLDB()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("UPDATE members SET role = 'member' WHERE id = $1", m.Member.ID); err != nil {
			t.Fatal(err)
		}
		leave := "/v1/meshes/" + m.Mesh.ID + "/leave"
		e.wantProblem("POST", leave, boss.APIKey.Key, nil, http.StatusConflict, "last_admin")
		e.wantProblem("POST", leave, boss.APIKey.Key, map[string]string{"successorMemberId": boss.Member.ID}, http.StatusUnprocessableEntity, "validation_failed")
		e.must("POST", leave, boss.APIKey.Key, map[string]string{"successorMemberId": worker.Member.ID}, http.StatusNoContent, nil)
		var page struct {
			Items []struct {
				ID   string `json:"id"`
				Role string `json:"role"`
			} `json:"items"`
		}
		e.must("GET", "/v1/members", worker.APIKey.Key, nil, http.StatusOK, &page)
		for _, it := range page.Items {
			if it.ID == boss.Member.ID {
				t.Errorf("boss is still listed after leaving")
			}
			if it.ID == worker.Member.ID && it.Role != "admin" {
				t.Errorf("successor role = %s", it.Role)
			}
		}
	})
}

// TestInvitePreviewIsRateLimited: the public preview shares the strict
// per-IP bucket of the account routes, so tokens cannot be probed quickly.
func TestInvitePreviewIsRateLimited(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *api.Config) { c.AuthRateLimit, c.AuthRateLimitBurst = 0.01, 2 })
	for range 2 {
		e.wantProblem("GET", "/v1/invites/cmi_guess", "", nil, http.StatusNotFound, "invite_not_found")
	}
	e.wantProblem("GET", "/v1/invites/cmi_guess", "", nil, http.StatusTooManyRequests, "rate_limited")
}
