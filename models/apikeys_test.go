package models_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

func TestAPIKeyCannotEscalate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		_, owner := newMesh(t, s)
		_, readOnly, err := s.CreateAPIKey(ctx, owner, models.CreateKeyInput{Caps: []string{models.CapRead}, TopicScopes: []string{"#general"}})
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.AuthenticateAPIKey(ctx, readOnly)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Caps) != 1 || p.Caps[0] != models.CapRead || len(p.TopicScopes) != 1 || p.TopicScopes[0] != "general" {
			t.Fatalf("principal = %+v", p)
		}
		cases := []struct {
			name string
			in   models.CreateKeyInput
			code string
		}{
			{"more caps", models.CreateKeyInput{Caps: []string{models.CapRead, models.CapSend}}, "capability_escalation"},
			{"admin", models.CreateKeyInput{Caps: []string{models.CapAdmin}}, "capability_escalation"},
			{"other topic", models.CreateKeyInput{Caps: []string{models.CapRead}, TopicScopes: []string{"deploys"}}, "scope_escalation"},
			{"unknown cap", models.CreateKeyInput{Caps: []string{"root"}}, "validation_failed"},
			{"no caps", models.CreateKeyInput{}, "validation_failed"},
		}
		for _, c := range cases {
			if _, _, err := s.CreateAPIKey(ctx, p, c.in); !isCode(err, c.code) {
				t.Errorf("%s: err = %v, want %s", c.name, err, c.code)
			}
		}
		// Omitted scopes inherit the caller's, not "all topics".
		k, _, err := s.CreateAPIKey(ctx, p, models.CreateKeyInput{Caps: []string{models.CapRead}})
		if err != nil {
			t.Fatal(err)
		}
		if sc := k.Scopes(); len(sc) != 1 || sc[0] != "general" {
			t.Errorf("derived key scopes = %v, want [general]", sc)
		}
	})
}

func TestRevokedMemberKeysStopWorking(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cm, owner := newMesh(t, s)
		_, token, err := s.CreateInvite(ctx, models.RolePrincipal(&cm.Member), &cm.Member, models.CreateInviteInput{})
		if err != nil {
			t.Fatal(err)
		}
		j, err := s.Join(ctx, models.JoinInput{Token: token, Pubkey: pubkey(t), DisplayName: "bob"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AuthenticateAPIKey(ctx, j.KeySecret); err != nil {
			t.Fatalf("fresh key: %v", err)
		}
		bob, _ := s.AuthenticateAPIKey(ctx, j.KeySecret)
		if err := s.RevokeMember(ctx, bob, owner.MemberID); !isCode(err, "admin_required") {
			t.Errorf("member revoking owner: err = %v, want admin_required", err)
		}
		if err := s.RevokeMember(ctx, owner, owner.MemberID); !isCode(err, "owner_member") {
			t.Errorf("revoking the owner member: err = %v, want owner_member", err)
		}
		if err := s.RevokeMember(ctx, owner, j.Member.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AuthenticateAPIKey(ctx, j.KeySecret); !isCode(err, "invalid_api_key") {
			t.Errorf("revoked member's key: err = %v, want invalid_api_key", err)
		}
		if _, err := s.LiveMemberPrincipal(ctx, j.Member.ID, cm.Mesh.ID, models.AllCaps); err == nil {
			t.Error("revoked member still resolves as a live principal")
		}
	})
}

func TestLastUsedWrittenAtMostOncePerMinute(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		_, owner := newMesh(t, s)
		k, secret, err := s.CreateAPIKey(ctx, owner, models.CreateKeyInput{Caps: []string{models.CapRead}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AuthenticateAPIKey(ctx, secret); err != nil {
			t.Fatal(err)
		}
		first, err := s.KeyLastUsed(ctx, k.ID)
		if err != nil || first == nil {
			t.Fatalf("last_used_at after first use = %v, %v", first, err)
		}
		for range 20 {
			if _, err := s.AuthenticateAPIKey(ctx, secret); err != nil {
				t.Fatal(err)
			}
		}
		again, _ := s.KeyLastUsed(ctx, k.ID)
		if again == nil || !again.Equal(*first) {
			t.Errorf("last_used_at moved from %v to %v within a minute", first, again)
		}
	})
}

// TestConcurrentKeyChecksAreEachAnswered hammers the batched key lookup:
// many requests presenting different keys at once, some revoked, some
// unknown, are answered together by a few queries, and each must still get
// exactly its own key's principal or its own refusal.
func TestConcurrentKeyChecksAreEachAnswered(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		_, owner := newMesh(t, s)
		type key struct {
			id, secret string
			revoked    bool
		}
		var keys []key
		for i := 0; i < 12; i++ {
			k, secret, err := s.CreateAPIKey(ctx, owner, models.CreateKeyInput{Caps: []string{models.CapRead}})
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, key{id: k.ID, secret: secret, revoked: i%4 == 0})
		}
		for _, k := range keys {
			if k.revoked {
				if err := s.RevokeAPIKey(ctx, owner, k.id); err != nil {
					t.Fatal(err)
				}
			}
		}
		// A well-formed key nobody issued, sharing no prefix with the others.
		unknown := keys[1].secret[:3] + "ZZZZZZZZ" + keys[1].secret[11:]
		var wg sync.WaitGroup
		errs := make(chan string, 1000)
		for g := 0; g < 40; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					k := keys[(g+i)%len(keys)]
					if (g+i)%7 == 0 {
						if _, err := s.AuthenticateAPIKey(ctx, unknown); !isCode(err, "invalid_api_key") {
							errs <- fmt.Sprintf("unknown key: err = %v", err)
						}
						continue
					}
					p, err := s.AuthenticateAPIKey(ctx, k.secret)
					switch {
					case k.revoked && !isCode(err, "invalid_api_key"):
						errs <- fmt.Sprintf("revoked key %s: err = %v", k.id, err)
					case !k.revoked && err != nil:
						errs <- fmt.Sprintf("key %s: %v", k.id, err)
					case !k.revoked && p.APIKeyID != k.id:
						errs <- fmt.Sprintf("key %s answered with key %s's principal", k.id, p.APIKeyID)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
	})
}
