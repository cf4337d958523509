package models_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

func pubkey(t testing.TB) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(pub)
}

// newMesh returns a mesh, its owner member, and an owner principal with all caps.
func newMesh(t *testing.T, s *models.Store) (*models.CreatedMesh, *models.Principal) {
	t.Helper()
	u := signup(t, s, fmt.Sprintf("owner-%s@example.com", models.NewID()[:8]))
	cm, err := s.CreateMyMesh(context.Background(), u, models.CreateMeshInput{Name: "Mesh"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.LiveMemberPrincipal(context.Background(), cm.Member.ID, cm.Mesh.ID, models.AllCaps)
	if err != nil {
		t.Fatal(err)
	}
	return cm, p
}

func TestConcurrentJoinsNeverExceedMaxUses(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cm, _ := newMesh(t, s)
		inv, token, err := s.CreateInvite(ctx, models.RolePrincipal(&cm.Member), &cm.Member, models.CreateInviteInput{MaxUses: 10})
		if err != nil {
			t.Fatal(err)
		}
		const joiners = 50
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			ok      int
			usedUp  int
			unknown []error
		)
		start := make(chan struct{})
		for i := range joiners {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := s.Join(ctx, models.JoinInput{Token: token, Pubkey: pubkey(t), DisplayName: fmt.Sprintf("peer-%d", i)})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case isCode(err, "invite_used_up"):
					usedUp++
				default:
					unknown = append(unknown, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(unknown) > 0 {
			t.Fatalf("unexpected join errors: %v", unknown)
		}
		if ok != 10 || usedUp != 40 {
			t.Errorf("joined %d, used up %d; want 10 and 40", ok, usedUp)
		}
		if n := count(t, s, "members"); n != 11 {
			t.Errorf("members = %d, want 11 (owner + 10)", n)
		}
		db, _ := s.SQLDB()
		var uses int
		if err := db.QueryRow("SELECT uses FROM invites WHERE id = $1", inv.ID).Scan(&uses); err != nil || uses != 10 {
			t.Errorf("invite uses = %d, %v; want 10", uses, err)
		}
	})
}

func TestJoinRefusals(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cm, _ := newMesh(t, s)
		_, token, err := s.CreateInvite(ctx, models.RolePrincipal(&cm.Member), &cm.Member, models.CreateInviteInput{MaxUses: 3})
		if err != nil {
			t.Fatal(err)
		}
		first := pubkey(t)
		if _, err := s.Join(ctx, models.JoinInput{Token: token, Pubkey: first, DisplayName: "alice"}); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			in   models.JoinInput
			code string
		}{
			{"wrong token", models.JoinInput{Token: "cmi_nope", Pubkey: pubkey(t), DisplayName: "bob"}, "invite_not_found"},
			{"bad pubkey", models.JoinInput{Token: token, Pubkey: "zz", DisplayName: "bob"}, "validation_failed"},
			{"bad name", models.JoinInput{Token: token, Pubkey: pubkey(t), DisplayName: "Bob Smith"}, "validation_failed"},
			{"taken name", models.JoinInput{Token: token, Pubkey: pubkey(t), DisplayName: "alice"}, "display_name_taken"},
			{"taken pubkey", models.JoinInput{Token: token, Pubkey: first, DisplayName: "alice2"}, "pubkey_taken"},
		}
		for _, c := range cases {
			if _, err := s.Join(ctx, c.in); !isCode(err, c.code) {
				t.Errorf("%s: err = %v, want %s", c.name, err, c.code)
			}
		}
		// Failed joins gave their use back: two more fit.
		for _, n := range []string{"bob", "carol"} {
			if _, err := s.Join(ctx, models.JoinInput{Token: token, Pubkey: pubkey(t), DisplayName: n}); err != nil {
				t.Fatalf("join %s: %v", n, err)
			}
		}
		if _, err := s.Join(ctx, models.JoinInput{Token: token, Pubkey: pubkey(t), DisplayName: "dave"}); !isCode(err, "invite_used_up") {
			t.Errorf("fourth join: err = %v, want invite_used_up", err)
		}
	})
}

func TestExpiredInvite(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			opt := storetest.Options(t, d)
			clock := time.Now()
			var mu sync.Mutex
			opt.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
			s, err := models.Open(context.Background(), opt)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			cm, _ := newMesh(t, s)
			_, token, err := s.CreateInvite(context.Background(), models.RolePrincipal(&cm.Member), &cm.Member, models.CreateInviteInput{ExpiresIn: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			clock = clock.Add(time.Hour + time.Second)
			mu.Unlock()
			if _, err := s.Join(context.Background(), models.JoinInput{Token: token, Pubkey: pubkey(t), DisplayName: "late"}); !isCode(err, "invite_expired") {
				t.Errorf("err = %v, want invite_expired", err)
			}
		})
	}
}
