package models_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

// keyTopic has p claim the topic with a fresh key sealed to itself.
func keyTopic(t *testing.T, s *models.Store, p peer, topic string) [32]byte {
	t.Helper()
	key, err := meshcrypto.NewTopicKey()
	if err != nil {
		t.Fatal(err)
	}
	ek, nonce, err := meshcrypto.SealTopicKey(key, p.ID, p.ID.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimKey(context.Background(), p.P, topic, models.SealInput{EncryptedKey: ek, Nonce: nonce}); err != nil {
		t.Fatalf("claim %s: %v", topic, err)
	}
	return key
}

func sealFor(t *testing.T, key [32]byte, from peer, to peer) models.SealInput {
	t.Helper()
	ek, nonce, err := meshcrypto.SealTopicKey(key, from.ID, to.ID.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return models.SealInput{EncryptedKey: ek, Nonce: nonce}
}

func pendingIDs(t *testing.T, s *models.Store, p *models.Principal, topic string) []string {
	t.Helper()
	page, err := s.PendingSeals(context.Background(), p, topic, models.PageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range page.Items {
		ids = append(ids, r.MemberID)
	}
	return ids
}

func TestSealingLifecycle(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cm, _ := newMesh(t, s)
		alice, bob, carol := joinPeer(t, s, cm, "alice"), joinPeer(t, s, cm, "bob"), joinPeer(t, s, cm, "carol")
		if got := pendingIDs(t, s, alice.P, "general"); len(got) != 0 {
			t.Errorf("unkeyed topic has pending seals %v", got)
		}
		key := keyTopic(t, s, alice, "general")

		// v1 plaintext is refused once the topic is keyed (upstream accepted it).
		if _, err := s.PostMessage(ctx, alice.P, v1("plain")); !isCode(err, "plaintext_on_keyed_topic") {
			t.Errorf("v1 on keyed topic: %v", err)
		}
		// The owner (no usable secret) and bob and carol are pending; alice is not.
		pend := pendingIDs(t, s, bob.P, "general")
		if len(pend) != 3 || slices.Contains(pend, alice.P.MemberID) {
			t.Errorf("pending = %v", pend)
		}
		// bob holds no seal, so he cannot seal for carol.
		if _, err := s.Seal(ctx, bob.P, "general", carol.P.MemberID, sealFor(t, key, bob, carol)); !isCode(err, "not_key_holder") {
			t.Errorf("non-holder sealing: %v", err)
		}
		// A seal whose inline sender is not the sealer's key is refused.
		if _, err := s.Seal(ctx, alice.P, "general", bob.P.MemberID, sealFor(t, key, carol, bob)); !isCode(err, "validation_failed") {
			t.Errorf("forged sender prefix: %v", err)
		}
		if _, err := s.Seal(ctx, alice.P, "general", bob.P.MemberID, sealFor(t, key, alice, bob)); err != nil {
			t.Fatal(err)
		}
		// bob can open his copy.
		k, _, err := s.MyTopicKey(ctx, bob.P, "general", 0)
		if err != nil {
			t.Fatal(err)
		}
		opened, err := meshcrypto.OpenTopicKey(k.EncryptedKey, k.Nonce, bob.ID)
		if err != nil || opened != key {
			t.Fatalf("bob opens his seal: %v", err)
		}
		// A valid seal is never overwritten, not by alice, not by bob for himself.
		if _, err := s.Seal(ctx, alice.P, "general", bob.P.MemberID, sealFor(t, key, alice, bob)); !isCode(err, "seal_exists") {
			t.Errorf("overwrite by alice: %v", err)
		}
		if _, err := s.Seal(ctx, carol.P, "general", bob.P.MemberID, sealFor(t, key, carol, bob)); !isCode(err, "not_key_holder") {
			t.Errorf("overwrite by a non-holder: %v", err)
		}

		// bob rotates his identity: his old seal stops counting and he is pending again.
		newID, _ := meshcrypto.GenerateIdentity()
		// An ordinary API key may not swap the identity (a leaked key would
		// redirect every future seal); bob's own session token may.
		if _, err := s.SetPeerPubkey(ctx, bob.P, "", newID.PublicKeyHex()); !isCode(err, "admin_required") {
			t.Errorf("pubkey change with a plain API key: %v", err)
		}
		if _, err := s.SetPeerPubkey(ctx, reauth(t, s, bob.P), "", newID.PublicKeyHex()); err != nil {
			t.Fatal(err)
		}
		bob = peer{P: reauth(t, s, bob.P), ID: newID}
		if !slices.Contains(pendingIDs(t, s, alice.P, "general"), bob.P.MemberID) {
			t.Error("after a pubkey change bob is not pending (upstream never re-sealed)")
		}
		if _, _, err := s.MyTopicKey(ctx, bob.P, "general", 0); !isCode(err, "seal_not_found") {
			t.Errorf("stale seal still served: %v", err)
		}
		if _, err := s.Seal(ctx, alice.P, "general", bob.P.MemberID, sealFor(t, key, alice, bob)); err != nil {
			t.Fatalf("re-seal for the new key: %v", err)
		}
		if slices.Contains(pendingIDs(t, s, alice.P, "general"), bob.P.MemberID) {
			t.Error("bob still pending after re-seal")
		}
		// Only the member itself or an admin may change a pubkey.
		other, _ := meshcrypto.GenerateIdentity()
		if _, err := s.SetPeerPubkey(ctx, carol.P, bob.P.MemberID, other.PublicKeyHex()); !isCode(err, "admin_required") {
			t.Errorf("carol changing bob's key: %v", err)
		}
	})
}

func TestClaimKeyIsAtomic(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cm, _ := newMesh(t, s)
		peers := []peer{joinPeer(t, s, cm, "p0"), joinPeer(t, s, cm, "p1"), joinPeer(t, s, cm, "p2"), joinPeer(t, s, cm, "p3")}

		// A failure between keying the topic and storing the seal leaves neither.
		boom := errors.New("injected failure")
		s.SetHooks(models.Hooks{AfterStep: func(step string) error {
			if step == "claim_key" {
				return boom
			}
			return nil
		}})
		key, _ := meshcrypto.NewTopicKey()
		if _, err := s.ClaimKey(ctx, peers[0].P, "general", sealFor(t, key, peers[0], peers[0])); !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
		ta, _ := s.TopicFor(ctx, peers[0].P, "general")
		if ta.Topic.Keyed() || count(t, s, "topic_member_keys") != 0 {
			t.Fatal("claim-key half-applied")
		}
		s.SetHooks(models.Hooks{})

		// Concurrent claims: exactly one wins; losers learn the winner's key.
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners int
			losers  []string
		)
		for _, p := range peers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k, _ := meshcrypto.NewTopicKey()
				_, err := s.ClaimKey(ctx, p.P, "general", sealFor(t, k, p, p))
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					winners++
					return
				}
				e, ok := models.AsError(err)
				if !ok || e.Code != "topic_already_keyed" {
					t.Errorf("loser error = %v", err)
					return
				}
				losers = append(losers, e.Extra["keyPubkey"].(string))
			}()
		}
		wg.Wait()
		if winners != 1 || len(losers) != 3 {
			t.Fatalf("winners %d, losers %d", winners, len(losers))
		}
		ta, _ = s.TopicFor(ctx, peers[0].P, "general")
		for _, l := range losers {
			if l != *ta.Topic.EncryptedKeyPubkey {
				t.Errorf("loser told %s, topic keyed by %s", l, *ta.Topic.EncryptedKeyPubkey)
			}
		}
		if n := count(t, s, "topic_member_keys"); n != 1 {
			t.Errorf("seals = %d, want 1", n)
		}
	})
}
