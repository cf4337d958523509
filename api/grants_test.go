package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// The grant matrix: every route that hands power on (invites, keys,
// sessions and stream tokens, leave with and without a successor, identity
// keys, member revocation, the audit log) against every kind of caller.
// Each cell runs on a mesh of its own, so a leave or a revocation in one
// cell cannot colour another, and each expects one status and code. The
// rule under test is docs/DESIGN.md's "nobody hands on more than they
// hold"; the A-rows of the outside probe are cells here:
//   - A1: member-key-read / member-user / member-session × leave-successor
//   - A2: member-key-read × revoke-own-key and × leave
//   - A3: admin-key-scoped × invite-member and invite-admin

// grantUsers are the three people of every cell's mesh. Signing up hashes a
// password (argon2id), so they are made once per database.
type grantUsers struct{ owner, admin, member session }

// grantMesh is one cell's fresh mesh: who is in it and their credentials.
type grantMesh struct {
	meshID                     string
	ownerID, adminID, memberID string
	otherID                    string // the member's second, CLI-joined identity (A1)
	// fullKey is each member's key with every capability of its role.
	fullKey   map[string]string // member id → key id
	otherKey  string            // id of the other identity's key
	creds     map[string]string // principal → bearer token
	actingAs  map[string]string // principal → member id it acts as
	archiveBy string            // a credential that may archive the mesh
}

var grantPrincipals = []string{
	"owner-user", "owner-session",
	"admin-user", "admin-session", "admin-key", "admin-key-read", "admin-key-send", "admin-key-state", "admin-key-adminonly", "admin-key-scoped",
	"member-user", "member-session", "member-key", "member-key-read",
	"revoked-key", "archived-mesh-key", "stream-token",
}

// grantFixture makes a fresh mesh with its owner, an admin and a member
// (each a user with a full key) and the member's second, CLI-joined
// identity, then mints the one credential the cell's principal needs.
func (e *env) grantFixture(u grantUsers, n int, principal string) *grantMesh {
	e.t.Helper()
	g := &grantMesh{fullKey: map[string]string{}, creds: map[string]string{}, actingAs: map[string]string{}}
	mesh := e.createMesh(u.owner.AccessToken, fmt.Sprintf("Grants %d", n))
	g.meshID, g.ownerID = mesh.Mesh.ID, mesh.Member.ID
	ownerSession := e.memberToken(u.owner.AccessToken, g.meshID)
	g.archiveBy = ownerSession

	joinAs := func(userTok string, role string, name string) joined {
		inv := e.invite(ownerSession, g.meshID, map[string]any{"role": role})
		var j joined
		e.must("POST", "/v1/join", userTok, map[string]string{"token": inv, "pubkey": newPubkey(e.t), "displayName": name}, http.StatusCreated, &j)
		return j
	}
	admin := joinAs(u.admin.AccessToken, "admin", "admin")
	member := joinAs(u.member.AccessToken, "member", "member")
	other := joinAs("", "member", "member-cli")
	g.adminID, g.memberID, g.otherID = admin.Member.ID, member.Member.ID, other.Member.ID
	g.fullKey[g.adminID], g.fullKey[g.memberID], g.otherKey = admin.APIKey.ID, member.APIKey.ID, other.APIKey.ID

	mint := func(tok string, body map[string]any) (id, key string) {
		var k struct{ ID, Key string }
		e.must("POST", "/v1/api-keys", tok, body, http.StatusCreated, &k)
		return k.ID, k.Key
	}
	all := []string{"read", "send", "state_write", "admin"}
	g.fullKey[g.ownerID], _ = mint(ownerSession, map[string]any{"capabilities": all})

	actingAs, tok := g.adminID, ""
	switch principal {
	case "owner-user":
		actingAs, tok = g.ownerID, u.owner.AccessToken
	case "owner-session":
		actingAs, tok = g.ownerID, ownerSession
	case "admin-user":
		tok = u.admin.AccessToken
	case "admin-session":
		tok = e.memberToken(u.admin.AccessToken, g.meshID)
	case "admin-key", "archived-mesh-key":
		tok = admin.APIKey.Key
	case "admin-key-read", "admin-key-send", "admin-key-state", "admin-key-adminonly":
		cp := map[string]string{"admin-key-read": "read", "admin-key-send": "send", "admin-key-state": "state_write", "admin-key-adminonly": "admin"}[principal]
		_, tok = mint(admin.APIKey.Key, map[string]any{"capabilities": []string{cp}})
	case "admin-key-scoped":
		_, tok = mint(admin.APIKey.Key, map[string]any{"capabilities": all, "topicScopes": []string{"general"}})
	case "member-user":
		actingAs, tok = g.memberID, u.member.AccessToken
	case "member-session":
		actingAs, tok = g.memberID, e.memberToken(u.member.AccessToken, g.meshID)
	case "member-key":
		actingAs, tok = g.memberID, member.APIKey.Key
	case "member-key-read":
		actingAs = g.memberID
		_, tok = mint(member.APIKey.Key, map[string]any{"capabilities": []string{"read"}})
	case "revoked-key":
		var id string
		id, tok = mint(admin.APIKey.Key, map[string]any{"capabilities": all})
		e.must("DELETE", "/v1/api-keys/"+id, admin.APIKey.Key, nil, http.StatusNoContent, nil)
	case "stream-token":
		var st struct{ Token string }
		e.must("POST", "/v1/stream/token", admin.APIKey.Key, nil, http.StatusCreated, &st)
		tok = st.Token
	default:
		e.t.Fatalf("unknown principal %q", principal)
	}
	if principal == "archived-mesh-key" {
		e.must("POST", "/v1/meshes/"+g.meshID+"/archive", ownerSession, nil, http.StatusOK, nil)
	}
	g.creds[principal], g.actingAs[principal] = tok, actingAs
	return g
}

// grantRoute is one way of handing power on; path and body may depend on
// the cell's mesh and on the member the principal acts as.
type grantRoute struct {
	name   string
	method string
	path   func(g *grantMesh, self string) string
	body   func(g *grantMesh, self string) any
	want   func(principal string) (int, string)
}

// want is an expectation table: principals not listed get the default.
func want(def [2]any, cells map[string][2]any) func(string) (int, string) {
	return func(p string) (int, string) {
		c, ok := cells[p]
		if !ok {
			c = def
		}
		return c[0].(int), c[1].(string)
	}
}

// Every cell refuses these three the same way: a revoked key and a key of
// an archived mesh are not credentials any more, and a stream token opens
// streams only.
var deadCredentials = map[string][2]any{
	"revoked-key":       {401, "invalid_api_key"},
	"archived-mesh-key": {401, "invalid_api_key"},
	"stream-token":      {401, "invalid_token"},
}

func cells(groups ...map[string][2]any) map[string][2]any {
	out := map[string][2]any{}
	for _, g := range append([]map[string][2]any{deadCredentials}, groups...) {
		for k, v := range g {
			out[k] = v
		}
	}
	return out
}

func only(code int, errCode string, principals ...string) map[string][2]any {
	out := map[string][2]any{}
	for _, p := range principals {
		out[p] = [2]any{code, errCode}
	}
	return out
}

var (
	users        = []string{"owner-user", "admin-user", "member-user"}
	needAdminCap = []string{"admin-key-read", "admin-key-send", "admin-key-state", "member-session", "member-key", "member-key-read"}
	ok200        = [2]any{200, ""}
	ok201        = [2]any{201, ""}
	ok204        = [2]any{204, ""}
	userOnMember = only(403, "member_credential_required", users...)
)

func grantRoutes(t testing.TB) []grantRoute {
	meshPath := func(suffix string) func(*grantMesh, string) string {
		return func(g *grantMesh, _ string) string { return "/v1/meshes/" + g.meshID + suffix }
	}
	fixed := func(p string) func(*grantMesh, string) string { return func(*grantMesh, string) string { return p } }
	body := func(v any) func(*grantMesh, string) any { return func(*grantMesh, string) any { return v } }
	adminCapMissing := only(403, "capability_required", needAdminCap...)
	return []grantRoute{
		{"invite-member", "POST", meshPath("/invites"), body(map[string]any{"role": "member"}), want(ok201, cells(
			only(403, "admin_required", append(needAdminCap, "member-user")...),
			only(403, "capability_escalation", "admin-key-adminonly"),
			only(403, "scoped_credential", "admin-key-scoped")))},
		{"invite-admin", "POST", meshPath("/invites"), body(map[string]any{"role": "admin"}), want(ok201, cells(
			only(403, "admin_required", append(needAdminCap, "member-user")...),
			only(403, "capability_escalation", "admin-key-adminonly"),
			only(403, "scoped_credential", "admin-key-scoped")))},
		{"session", "POST", meshPath("/session"), nil, want([2]any{403, "user_token_required"}, cells(
			only(201, "", users...)))},
		{"key-read", "POST", fixed("/v1/api-keys"), body(map[string]any{"capabilities": []string{"read"}}), want(ok201, cells(userOnMember,
			only(403, "capability_escalation", "admin-key-send", "admin-key-state", "admin-key-adminonly")))},
		{"key-admin", "POST", fixed("/v1/api-keys"), body(map[string]any{"capabilities": []string{"read", "send", "state_write", "admin"}}), want(ok201, cells(userOnMember,
			only(403, "capability_escalation", "admin-key-read", "admin-key-send", "admin-key-state", "admin-key-adminonly",
				"member-session", "member-key", "member-key-read")))}, // admin-key-scoped: 201, confined to its own topics (inherited)
		{"key-scoped-elsewhere", "POST", fixed("/v1/api-keys"), body(map[string]any{"capabilities": []string{"read"}, "topicScopes": []string{"ops"}}), want(ok201, cells(userOnMember,
			only(403, "capability_escalation", "admin-key-send", "admin-key-state", "admin-key-adminonly"),
			only(403, "scope_escalation", "admin-key-scoped")))},
		{"stream-token", "POST", fixed("/v1/stream/token"), nil, want(ok201, cells(userOnMember,
			only(403, "capability_required", "admin-key-send", "admin-key-state", "admin-key-adminonly")))},
		// Revoking the full key of the member the caller acts as (A2). The
		// owner's and admin's full keys are revoked by their own full
		// credentials; "admin-key" is that very key (self-revocation).
		{"revoke-own-full-key", "DELETE", func(g *grantMesh, self string) string { return "/v1/api-keys/" + g.fullKey[self] }, nil, want(ok204, cells(userOnMember,
			only(403, "capability_escalation", "admin-key-read", "admin-key-send", "admin-key-state", "admin-key-adminonly", "admin-key-scoped", "member-key-read")))},
		{"revoke-other-members-key", "DELETE", func(g *grantMesh, _ string) string { return "/v1/api-keys/" + g.otherKey }, nil, want(ok204, cells(userOnMember,
			only(404, "api_key_not_found", "admin-key-read", "admin-key-send", "admin-key-state", "member-session", "member-key", "member-key-read"),
			only(403, "scoped_credential", "admin-key-scoped")))},
		// A1: only an admin hands on the admin role, and only with a whole credential.
		{"leave-with-successor", "POST", meshPath("/leave"), func(g *grantMesh, _ string) any { return map[string]any{"successorMemberId": g.otherID} }, want(ok204, cells(
			only(409, "owner_member", "owner-user", "owner-session"),
			only(403, "full_credential_required", "admin-key-read", "admin-key-send", "admin-key-state", "admin-key-adminonly", "admin-key-scoped", "member-key-read"),
			only(403, "admin_required", "member-user", "member-session", "member-key")))},
		{"leave", "POST", meshPath("/leave"), nil, want(ok204, cells(
			only(409, "owner_member", "owner-user", "owner-session"),
			only(403, "full_credential_required", "admin-key-read", "admin-key-send", "admin-key-state", "admin-key-adminonly", "admin-key-scoped", "member-key-read")))},
		// An identity key is the member's whole identity (its /ws session).
		{"own-identity-key", "POST", fixed("/v1/me/peer-pubkey"), func(*grantMesh, string) any { return map[string]any{"pubkey": newPubkey(t)} }, want(ok200, cells(userOnMember,
			only(403, "admin_required", "admin-key-read", "admin-key-send", "admin-key-state", "member-key", "member-key-read"),
			only(403, "full_credential_required", "admin-key-adminonly", "admin-key-scoped")))},
		{"others-identity-key", "POST", fixed("/v1/me/peer-pubkey"), func(g *grantMesh, _ string) any { return map[string]any{"pubkey": newPubkey(t), "memberId": g.otherID} }, want(ok200, cells(userOnMember,
			only(403, "admin_required", "admin-key-read", "admin-key-send", "admin-key-state", "member-session", "member-key", "member-key-read"),
			only(403, "capability_escalation", "admin-key-adminonly"),
			only(403, "scoped_credential", "admin-key-scoped")))},
		{"admins-identity-key", "POST", fixed("/v1/me/peer-pubkey"), func(g *grantMesh, _ string) any { return map[string]any{"pubkey": newPubkey(t), "memberId": g.ownerID} }, want([2]any{403, "admin_target"}, cells(userOnMember,
			only(403, "admin_required", "admin-key-read", "admin-key-send", "admin-key-state", "member-session", "member-key", "member-key-read"),
			only(403, "scoped_credential", "admin-key-scoped"),
			only(200, "", "owner-session")))},
		{"revoke-member", "DELETE", func(g *grantMesh, _ string) string { return "/v1/members/" + g.otherID }, nil, want(ok204, cells(userOnMember, adminCapMissing,
			only(403, "scoped_credential", "admin-key-scoped")))},
		// Revoking oneself is leave's job (whose rules a revocation would skip).
		{"revoke-own-member", "DELETE", func(_ *grantMesh, self string) string { return "/v1/members/" + self }, nil, want([2]any{409, "revoke_self"}, cells(userOnMember, adminCapMissing,
			only(409, "owner_member", "owner-session"),
			only(403, "scoped_credential", "admin-key-scoped")))},
		{"audit-log", "GET", fixed("/v1/audit"), nil, want(ok200, cells(userOnMember, adminCapMissing,
			only(403, "scoped_credential", "admin-key-scoped")))},
	}
}

// TestGrantMatrix: every grant route × every principal, on both databases.
func TestGrantMatrix(t *testing.T) {
	eachEnv(t, grantMatrix)
}

func grantMatrix(t *testing.T, e *env) {
	u := grantUsers{e.signup(), e.signup(), e.signup()}
	n := 0
	for _, r := range grantRoutes(t) {
		for _, p := range grantPrincipals {
			n++
			g := e.grantFixture(u, n, p)
			self := g.actingAs[p]
			var b any
			if r.body != nil {
				b = r.body(g, self)
			}
			status, raw, _ := e.call(r.method, r.path(g, self), g.creds[p], b)
			wantStatus, wantCode := r.want(p)
			var prob struct {
				Code string `json:"code"`
			}
			_ = json.Unmarshal(raw, &prob)
			if status != wantStatus || (wantCode != "" && prob.Code != wantCode) {
				t.Errorf("%s × %s = %d %q, want %d %q: %s", r.name, p, status, prob.Code, wantStatus, wantCode, strings.TrimSpace(string(raw)))
				continue
			}
			if status < 300 {
				e.checkGrantEffect(r.name, p, g)
			} else {
				e.checkNothingGranted(r.name, p, g)
			}
		}
	}
}

// checkGrantEffect checks what an allowed grant did.
func (e *env) checkGrantEffect(route, principal string, g *grantMesh) {
	e.t.Helper()
	if route == "leave-with-successor" {
		// The successor (the member's CLI identity) became admin, and only
		// because an admin with a whole credential named it.
		if role := e.roles(g)[g.otherID]; role != "admin" {
			e.t.Errorf("%s × %s: successor role %q, want admin", route, principal, role)
		}
	}
}

// checkNothingGranted checks that a refused grant changed nothing: the
// other identity is still a plain member and every member is still live.
func (e *env) checkNothingGranted(route, principal string, g *grantMesh) {
	e.t.Helper()
	if principal == "archived-mesh-key" {
		return // nobody reads an archived mesh's members
	}
	roles := e.roles(g)
	if roles[g.otherID] != "member" {
		e.t.Errorf("%s × %s was refused but the other identity is now %q", route, principal, roles[g.otherID])
	}
	for _, id := range []string{g.ownerID, g.adminID, g.memberID} {
		if roles[id] == "" {
			e.t.Errorf("%s × %s was refused but member %s is gone", route, principal, id)
		}
	}
}

// roles reads the live members' roles through the owner's session.
func (e *env) roles(g *grantMesh) map[string]string {
	e.t.Helper()
	var members page[struct {
		ID   string `json:"id"`
		Role string `json:"role"`
	}]
	e.must("GET", "/v1/members?limit=200", g.archiveBy, nil, http.StatusOK, &members)
	out := map[string]string{}
	for _, m := range members.Items {
		out[m.ID] = m.Role
	}
	return out
}
