package api_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

type inboxNote struct {
	ID       string `json:"id"`
	MeshID   string `json:"meshId"`
	MeshName string `json:"meshName"`
	MemberID string `json:"memberId"`
	Topic    string `json:"topic"`
}

type inboxTopic struct {
	MeshID      string `json:"meshId"`
	MeshName    string `json:"meshName"`
	TopicID     string `json:"topicId"`
	Name        string `json:"name"`
	Unread      int64  `json:"unread"`
	LastReadSeq int64  `json:"lastReadSeq"`
}

type page[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"nextCursor"`
	HasMore    bool    `json:"hasMore"`
}

func v1Body(text string) map[string]any {
	return map[string]any{"topic": "general", "bodyVersion": 1, "ciphertext": base64.StdEncoding.EncodeToString([]byte(text))}
}

// TestCrossMeshInbox: a user in two meshes sees the mentions and joined
// topics of both, each row naming its mesh, pages through them, and marks
// them read; another user sees none of it.
func TestCrossMeshInbox(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		grace, eve := e.signup(), e.signup()
		meshes := map[string]string{} // mesh id → name
		for _, name := range []string{"Alpha", "Beta"} {
			owner := e.signup()
			m := e.createMesh(owner.AccessToken, name)
			meshes[m.Mesh.ID] = name
			inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 2})
			e.must("POST", "/v1/join", grace.AccessToken, map[string]string{"token": inv, "pubkey": newPubkey(t), "displayName": "grace"}, http.StatusCreated, nil)
			poster := e.join(inv, "poster")
			e.must("POST", "/v1/messages", poster.APIKey.Key, v1Body("hi @grace from "+name), http.StatusCreated, nil)
		}

		var notes page[inboxNote]
		e.must("GET", "/v1/me/notifications", grace.AccessToken, nil, http.StatusOK, &notes)
		if len(notes.Items) != 2 {
			t.Fatalf("inbox notifications = %+v", notes.Items)
		}
		for _, n := range notes.Items {
			if meshes[n.MeshID] != n.MeshName || n.Topic != "general" || n.MemberID == "" {
				t.Errorf("notification row %+v does not name its mesh", n)
			}
		}
		// Paging: one at a time, newest first, no repeats.
		var p1, p2 page[inboxNote]
		e.must("GET", "/v1/me/notifications?limit=1", grace.AccessToken, nil, http.StatusOK, &p1)
		if !p1.HasMore || p1.NextCursor == nil {
			t.Fatalf("first page: %+v", p1)
		}
		e.must("GET", "/v1/me/notifications?limit=1&cursor="+*p1.NextCursor, grace.AccessToken, nil, http.StatusOK, &p2)
		if len(p2.Items) != 1 || p2.HasMore || p2.Items[0].ID == p1.Items[0].ID {
			t.Fatalf("second page: %+v", p2)
		}
		var other page[inboxNote]
		e.must("GET", "/v1/me/notifications", eve.AccessToken, nil, http.StatusOK, &other)
		if len(other.Items) != 0 {
			t.Fatalf("another user sees %+v", other.Items)
		}
		var marked struct {
			Updated int64 `json:"updated"`
		}
		e.must("POST", "/v1/me/notifications/read", eve.AccessToken, map[string]any{"ids": []string{notes.Items[0].ID}}, http.StatusOK, &marked)
		if marked.Updated != 0 {
			t.Fatalf("another user marked %d of grace's notifications", marked.Updated)
		}
		e.must("POST", "/v1/me/notifications/read", grace.AccessToken, map[string]any{"upTo": notes.Items[0].ID}, http.StatusOK, &marked)
		if marked.Updated != 2 {
			t.Fatalf("marked %d, want 2", marked.Updated)
		}
		e.must("GET", "/v1/me/notifications?unread=true", grace.AccessToken, nil, http.StatusOK, &other)
		if len(other.Items) != 0 {
			t.Fatalf("unread after marking: %+v", other.Items)
		}
		e.wantProblem("POST", "/v1/me/notifications/read", grace.AccessToken, map[string]any{}, http.StatusUnprocessableEntity, "validation_failed")

		// Topics: general in both meshes, one unread message each.
		var topics page[inboxTopic]
		e.must("GET", "/v1/me/topics", grace.AccessToken, nil, http.StatusOK, &topics)
		if len(topics.Items) != 2 {
			t.Fatalf("inbox topics = %+v", topics.Items)
		}
		for _, it := range topics.Items {
			if meshes[it.MeshID] != it.MeshName || it.Name != "general" || it.Unread != 1 {
				t.Errorf("topic row %+v", it)
			}
		}
		var tp1, tp2 page[inboxTopic]
		e.must("GET", "/v1/me/topics?limit=1", grace.AccessToken, nil, http.StatusOK, &tp1)
		e.must("GET", "/v1/me/topics?limit=1&cursor="+*tp1.NextCursor, grace.AccessToken, nil, http.StatusOK, &tp2)
		if len(tp2.Items) != 1 || tp2.Items[0].TopicID == tp1.Items[0].TopicID || tp2.HasMore {
			t.Fatalf("topic pages: %+v then %+v", tp1, tp2)
		}
		first := topics.Items[0]
		e.wantProblem("PATCH", "/v1/me/topics/"+first.TopicID+"/read", eve.AccessToken, map[string]any{"seq": 1}, http.StatusNotFound, "topic_not_found")
		var mark struct {
			LastReadSeq int64 `json:"lastReadSeq"`
		}
		e.must("PATCH", "/v1/me/topics/"+first.TopicID+"/read", grace.AccessToken, map[string]any{"seq": 1 << 40}, http.StatusOK, &mark)
		if mark.LastReadSeq < 1 || mark.LastReadSeq > 100 {
			t.Fatalf("read mark %d: not clamped to the mesh's newest seq", mark.LastReadSeq)
		}
		e.must("GET", "/v1/me/topics", grace.AccessToken, nil, http.StatusOK, &topics)
		for _, it := range topics.Items {
			if want := int64(map[bool]int{true: 0, false: 1}[it.TopicID == first.TopicID]); it.Unread != want {
				t.Errorf("%s unread = %d, want %d", it.MeshName, it.Unread, want)
			}
		}
		// Member credentials cannot read the user inbox.
		memberTok := e.memberToken(grace.AccessToken, first.MeshID)
		e.wantProblem("GET", "/v1/me/topics", memberTok, nil, http.StatusForbidden, "user_token_required")
	})
}

// TestAuditOverREST: an admin pages the mesh's audit log by seq, never
// sees a body, and ?verify=true reports the chain whole, then the first
// edited row.
func TestAuditOverREST(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Audited")
		admin := e.memberToken(owner.AccessToken, m.Mesh.ID)
		peer := e.join(e.invite(admin, m.Mesh.ID, nil), "peer")
		secret := "the launch code is 0000"
		e.must("POST", "/v1/messages", peer.APIKey.Key, v1Body(secret), http.StatusCreated, nil)
		e.must("PATCH", "/v1/meshes/"+m.Mesh.ID, admin, map[string]string{"name": "Audited 2"}, http.StatusOK, nil)

		type event struct {
			Seq      int64          `json:"seq"`
			Kind     string         `json:"kind"`
			Metadata map[string]any `json:"metadata"`
		}
		var all []event
		after := "0"
		for {
			var pg struct {
				page[event]
				Verification *struct{} `json:"verification"`
			}
			status, raw, _ := e.call("GET", "/v1/audit?limit=2&after="+after, admin, nil)
			if status != http.StatusOK || strings.Contains(string(raw), base64.StdEncoding.EncodeToString([]byte(secret))) {
				t.Fatalf("audit page = %d, must never hold a body: %s", status, raw)
			}
			e.must("GET", "/v1/audit?limit=2&after="+after, admin, nil, http.StatusOK, &pg)
			if pg.Verification != nil {
				t.Fatal("verification present without verify=true")
			}
			all = append(all, pg.Items...)
			if !pg.HasMore {
				break
			}
			after = *pg.NextCursor
		}
		kinds := map[string]bool{}
		for i, ev := range all {
			if ev.Seq != int64(i+1) {
				t.Fatalf("event %d has seq %d", i, ev.Seq)
			}
			kinds[ev.Kind] = true
		}
		for _, k := range []string{"mesh.created", "invite.created", "member.joined", "message.sent", "mesh.renamed"} {
			if !kinds[k] {
				t.Errorf("no %s event in %v", k, kinds)
			}
		}
		type verified struct {
			Verification struct {
				OK             bool   `json:"ok"`
				Checked        int64  `json:"checked"`
				FirstBrokenSeq *int64 `json:"firstBrokenSeq"`
			} `json:"verification"`
		}
		var v verified
		e.must("GET", "/v1/audit?verify=true&limit=1", admin, nil, http.StatusOK, &v)
		if !v.Verification.OK || v.Verification.Checked != int64(len(all)) || v.Verification.FirstBrokenSeq != nil {
			t.Fatalf("verification of a whole chain: %+v", v.Verification)
		}
		db, err := e.store.SQLDB()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE audit_events SET metadata = '{"edited":true}' WHERE mesh_id = $1 AND seq = 3`, m.Mesh.ID); err != nil {
			t.Fatal(err)
		}
		e.must("GET", "/v1/audit?verify=true", admin, nil, http.StatusOK, &v)
		if v.Verification.OK || v.Verification.FirstBrokenSeq == nil || *v.Verification.FirstBrokenSeq != 3 {
			t.Fatalf("verification after an edit: %+v", v.Verification)
		}
		// Only admins; bad queries are 400.
		e.wantProblem("GET", "/v1/audit", peer.APIKey.Key, nil, http.StatusForbidden, "")
		e.wantProblem("GET", "/v1/audit", owner.AccessToken, nil, http.StatusForbidden, "member_credential_required")
		for _, q := range []string{"after=-1", "after=x", "verify=maybe", fmt.Sprintf("limit=%d", 201)} {
			e.wantProblem("GET", "/v1/audit?"+q, admin, nil, http.StatusBadRequest, "invalid_query")
		}
	})
}
