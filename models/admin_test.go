package models_test

import (
	"context"
	"testing"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

// TestStillValidCodes: a stream's re-check names why it ends with a fixed
// code, and a database failure is never reported as a refusal.
func TestStillValidCodes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		u := signup(t, s, "owner@example.com")
		cm, err := s.CreateMyMesh(ctx, u, models.CreateMeshInput{Name: "Checks"})
		if err != nil {
			t.Fatal(err)
		}
		admin := &models.Principal{MemberID: cm.Member.ID, MeshID: cm.Mesh.ID, Caps: models.CapsForRole(models.RoleAdmin)}
		keyed := joinPeer(t, s, cm, "keyed")
		member := joinPeer(t, s, cm, "member")
		memberTok := *member.P
		memberTok.APIKeyID = "" // as a member JWT would be

		for _, p := range []*models.Principal{keyed.P, &memberTok} {
			if err := s.StillValid(ctx, p); err != nil {
				t.Fatalf("live principal: %v", err)
			}
		}
		if err := s.RevokeAPIKey(ctx, keyed.P, keyed.P.APIKeyID); err != nil {
			t.Fatal(err)
		}
		if err := s.StillValid(ctx, keyed.P); !isCode(err, "credential_revoked") {
			t.Errorf("revoked key: %v", err)
		}
		if err := s.RevokeMember(ctx, admin, member.P.MemberID); err != nil {
			t.Fatal(err)
		}
		if err := s.StillValid(ctx, &memberTok); !isCode(err, "credential_revoked") {
			t.Errorf("revoked member: %v", err)
		}
		other := joinPeer(t, s, cm, "other")
		adminMember, err := s.MemberInMesh(ctx, cm.Mesh.ID, cm.Member.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ArchiveMesh(ctx, adminMember); err != nil {
			t.Fatal(err)
		}
		if err := s.StillValid(ctx, other.P); !isCode(err, "mesh_archived") {
			t.Errorf("archived mesh: %v", err)
		}
		// A database that does not answer is an error, not a refusal.
		db, _ := s.SQLDB()
		db.Close()
		err = s.StillValid(ctx, other.P)
		if _, refusal := models.AsError(err); err == nil || refusal {
			t.Errorf("closed database reported as %v", err)
		}
	})
}

// TestRevokeRotatesKeyedTopicsOnly: revoking a member starts a new key
// epoch in the keyed topics it belonged to and leaves unkeyed topics and
// topics it was not in alone.
func TestRevokeRotatesKeyedTopicsOnly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		u := signup(t, s, "owner@example.com")
		cm, err := s.CreateMyMesh(ctx, u, models.CreateMeshInput{Name: "Keys"})
		if err != nil {
			t.Fatal(err)
		}
		admin := &models.Principal{MemberID: cm.Member.ID, MeshID: cm.Mesh.ID, Caps: models.CapsForRole(models.RoleAdmin)}
		alice, bob := joinPeer(t, s, cm, "alice"), joinPeer(t, s, cm, "bob")
		for _, name := range []string{"keyed", "plain", "elsewhere"} {
			if _, err := s.CreateTopic(ctx, alice.P, models.CreateTopicInput{Name: name}); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range []string{"keyed", "plain"} {
			if _, err := s.JoinTopic(ctx, bob.P, name); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range []string{"keyed", "elsewhere"} {
			claimKey(t, s, alice, name)
		}
		if err := s.RevokeMember(ctx, admin, bob.P.MemberID); err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]int{"keyed": 2, "plain": 0, "elsewhere": 1} {
			ta, err := s.TopicFor(ctx, alice.P, name)
			if err != nil {
				t.Fatal(err)
			}
			if ta.Topic.KeyEpoch != want || ta.Topic.KeyClaimed() != (want == 1) {
				t.Errorf("#%s after the revocation: epoch %d, claimed %v; want epoch %d", name, ta.Topic.KeyEpoch, ta.Topic.KeyClaimed(), want)
			}
		}
		// The old epoch's seal stays readable; the new epoch has none yet.
		if _, _, err := s.MyTopicKey(ctx, alice.P, "keyed", 1); err != nil {
			t.Errorf("alice's epoch-1 seal: %v", err)
		}
		if _, _, err := s.MyTopicKey(ctx, alice.P, "keyed", 0); !isCode(err, "seal_not_found") {
			t.Errorf("alice's epoch-2 seal before a claim: %v", err)
		}
		if got := claimKey(t, s, alice, "keyed"); got != 2 {
			t.Errorf("claim after the revocation sealed epoch %d", got)
		}
	})
}

func claimKey(t *testing.T, s *models.Store, p peer, topic string) int {
	t.Helper()
	k, err := meshcrypto.NewTopicKey()
	if err != nil {
		t.Fatal(err)
	}
	ek, n, err := meshcrypto.SealTopicKey(k, p.ID, p.ID.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	seal, err := s.ClaimKey(context.Background(), p.P, topic, models.SealInput{EncryptedKey: ek, Nonce: n})
	if err != nil {
		t.Fatalf("claim #%s: %v", topic, err)
	}
	return seal.Epoch
}
