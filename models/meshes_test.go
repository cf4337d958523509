package models_test

import (
	"context"
	"errors"
	"testing"

	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

func signup(t *testing.T, s *models.Store, email string) *models.User {
	t.Helper()
	u, _, err := s.Signup(context.Background(), models.SignupInput{Email: email, Password: "correct horse battery", Name: "Ada Lovelace"})
	if err != nil {
		t.Fatalf("signup %s: %v", email, err)
	}
	return u
}

func count(t *testing.T, s *models.Store, table string) int {
	t.Helper()
	db, err := s.SQLDB()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func TestCreateMyMeshMakesOwnerMemberAndGeneral(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		u := signup(t, s, "ada@example.com")
		got, err := s.CreateMyMesh(ctx, u, models.CreateMeshInput{Name: "Deploy Crew"})
		if err != nil {
			t.Fatal(err)
		}
		if got.Mesh.Slug != "deploy-crew" {
			t.Errorf("slug = %q, want deploy-crew", got.Mesh.Slug)
		}
		m := got.Member
		if m.Role != models.RoleAdmin || m.DashboardUserID == nil || *m.DashboardUserID != u.ID || len(m.PeerPubkey) != 64 {
			t.Errorf("owner member = %+v", m)
		}
		if got.Topic.Name != models.GeneralTopic || got.Topic.Visibility != models.VisibilityPublic {
			t.Errorf("topic = %+v", got.Topic)
		}
		db, _ := s.SQLDB()
		var role string
		if err := db.QueryRow("SELECT role FROM topic_members WHERE topic_id = $1 AND member_id = $2", got.Topic.ID, m.ID).Scan(&role); err != nil || role != models.TopicRoleLead {
			t.Errorf("owner subscription role = %q, %v; want lead", role, err)
		}
		// The same derived slug again gets a suffix (TestCreateMyMeshSlugs
		// has the rest of the slug rules).
		if again, err := s.CreateMyMesh(ctx, u, models.CreateMeshInput{Name: "deploy crew"}); err != nil || again.Mesh.Slug != "deploy-crew-2" {
			t.Errorf("derived slug taken: %v, %v; want deploy-crew-2", again, err)
		}
		// Two meshes with distinct ed25519 identities.
		other, err := s.CreateMyMesh(ctx, u, models.CreateMeshInput{Name: "Other"})
		if err != nil {
			t.Fatal(err)
		}
		if other.Member.PeerPubkey == m.PeerPubkey {
			t.Error("two owner members share a pubkey")
		}
	})
}

func isCode(err error, code string) bool {
	e, ok := models.AsError(err)
	return ok && e.Code == code
}

func TestCreateMyMeshIsAllOrNothing(t *testing.T) {
	for _, step := range []string{"mesh", "member", "topic", "topic_member"} {
		t.Run(step, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, s *models.Store) {
				u := signup(t, s, "ada@example.com")
				boom := errors.New("injected failure")
				s.SetHooks(models.Hooks{AfterStep: func(name string) error {
					if name == step {
						return boom
					}
					return nil
				}})
				_, err := s.CreateMyMesh(context.Background(), u, models.CreateMeshInput{Name: "Half"})
				if !errors.Is(err, boom) {
					t.Fatalf("err = %v, want the injected failure", err)
				}
				for _, table := range []string{"meshes", "members", "topics", "topic_members", "audit_events"} {
					if n := count(t, s, table); n != 0 {
						t.Errorf("%s has %d rows after a failed createMyMesh", table, n)
					}
				}
			})
		})
	}
}

// legacyMesh inserts a mesh the way the upstream broker left web-only
// meshes: no owner member, maybe no general topic.
func legacyMesh(t *testing.T, s *models.Store, owner *models.User, slug string, archived bool) string {
	t.Helper()
	db, _ := s.SQLDB()
	id := models.NewID()
	var err error
	if archived {
		_, err = db.Exec("INSERT INTO meshes (id, slug, name, owner_user_id, created_at, archived_at) VALUES ($1, $2, $2, $3, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)", id, slug, owner.ID)
	} else {
		_, err = db.Exec("INSERT INTO meshes (id, slug, name, owner_user_id, created_at) VALUES ($1, $2, $2, $3, CURRENT_TIMESTAMP)", id, slug, owner.ID)
	}
	if err != nil {
		t.Fatalf("insert legacy mesh: %v", err)
	}
	return id
}

func TestBackfillOwnerMembers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		u := signup(t, s, "ada@example.com")
		if _, err := s.CreateMyMesh(ctx, u, models.CreateMeshInput{Name: "Fine"}); err != nil {
			t.Fatal(err)
		}
		a := legacyMesh(t, s, u, "legacy-a", false)
		b := legacyMesh(t, s, u, "legacy-b", false)
		legacyMesh(t, s, u, "legacy-archived", true)

		dry, err := s.BackfillOwnerMembers(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(dry) != 2 || count(t, s, "members") != 1 {
			t.Fatalf("dry run: %d results, %d members; want 2 results and nothing written", len(dry), count(t, s, "members"))
		}
		got, err := s.BackfillOwnerMembers(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].MeshID != min(a, b) || !got[0].Created {
			t.Fatalf("backfill = %+v", got)
		}
		for _, mesh := range []string{a, b} {
			m, err := s.MembershipFor(ctx, u.ID, mesh)
			if err != nil {
				t.Fatalf("owner member of %s: %v", mesh, err)
			}
			if m.Role != models.RoleAdmin || len(m.PeerPubkey) != 64 {
				t.Errorf("backfilled member = %+v", m)
			}
			db, _ := s.SQLDB()
			var role string
			err = db.QueryRow(`SELECT tm.role FROM topic_members tm JOIN topics t ON t.id = tm.topic_id
				WHERE t.mesh_id = $1 AND t.name = 'general' AND tm.member_id = $2`, mesh, m.ID).Scan(&role)
			if err != nil || role != models.TopicRoleLead {
				t.Errorf("backfilled subscription = %q, %v", role, err)
			}
		}
		again, err := s.BackfillOwnerMembers(ctx, false)
		if err != nil || len(again) != 0 {
			t.Fatalf("second run = %+v, %v; want nothing to do", again, err)
		}
		if n := count(t, s, "members"); n != 3 {
			t.Errorf("members = %d, want 3", n)
		}
	})
}

func TestBackfillIsAllOrNothingPerMesh(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		u := signup(t, s, "ada@example.com")
		legacyMesh(t, s, u, "legacy", false)
		boom := errors.New("injected failure")
		s.SetHooks(models.Hooks{AfterStep: func(name string) error {
			if name == "topic_member" {
				return boom
			}
			return nil
		}})
		if _, err := s.BackfillOwnerMembers(ctx, false); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want injected failure", err)
		}
		for _, table := range []string{"members", "topics", "topic_members", "audit_events"} {
			if n := count(t, s, table); n != 0 {
				t.Errorf("%s has %d rows after a failed backfill", table, n)
			}
		}
		s.SetHooks(models.Hooks{})
		if got, err := s.BackfillOwnerMembers(ctx, false); err != nil || len(got) != 1 {
			t.Fatalf("retry = %+v, %v", got, err)
		}
	})
}
