package models_test

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

// peer is a joined member with its real identity.
type peer struct {
	P  *models.Principal
	ID meshcrypto.Identity
}

// joinPeer joins a member with a fresh ed25519 identity and returns its
// principal (authenticated through its API key, as a request would be).
func joinPeer(t *testing.T, s *models.Store, cm *models.CreatedMesh, name string) peer {
	t.Helper()
	ctx := context.Background()
	id, err := meshcrypto.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	_, token, err := s.CreateInvite(ctx, models.RolePrincipal(&cm.Member), &cm.Member, models.CreateInviteInput{})
	if err != nil {
		t.Fatal(err)
	}
	j, err := s.Join(ctx, models.JoinInput{Token: token, Pubkey: id.PublicKeyHex(), DisplayName: name})
	if err != nil {
		t.Fatalf("join %s: %v", name, err)
	}
	p, err := s.AuthenticateAPIKey(ctx, j.KeySecret)
	if err != nil {
		t.Fatal(err)
	}
	return peer{P: p, ID: id}
}

// reauth reloads a principal after a pubkey change, as the next request would.
func reauth(t *testing.T, s *models.Store, p *models.Principal) *models.Principal {
	t.Helper()
	np, err := s.LiveMemberPrincipal(context.Background(), p.MemberID, p.MeshID, p.Caps)
	if err != nil {
		t.Fatal(err)
	}
	return np
}

func v1(text string) models.PostInput {
	return models.PostInput{Topic: "general", Ciphertext: base64.StdEncoding.EncodeToString([]byte(text)), BodyVersion: 1}
}

func mustPost(t *testing.T, s *models.Store, p *models.Principal, in models.PostInput) *models.Posted {
	t.Helper()
	out, err := s.PostMessage(context.Background(), p, in)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	return out
}

// twoNodes opens two migrated stores on one fresh database of dialect d,
// as two brokers behind a load balancer share one.
func twoNodes(t *testing.T, d models.Dialect) []*models.Store {
	t.Helper()
	ctx := context.Background()
	opt := storetest.Options(t, d)
	nodes := make([]*models.Store, 2)
	for i := range nodes {
		s, err := models.Open(ctx, opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		nodes[i] = s
	}
	return nodes
}
