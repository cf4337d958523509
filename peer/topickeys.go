package peer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/meshcrypto"
)

// TopicKeys is one topic's keys by key epoch, fetched as messages need
// them and kept: old history opens with the old epoch's key, and after a
// rotation posts and seals use the new one. Safe for concurrent use.
type TopicKeys struct {
	s     *Session
	topic string
	ring  *meshcrypto.KeyRing

	mu    sync.Mutex
	tried map[int]time.Time // the last fetch of an epoch we hold no key of
}

func NewTopicKeys(s *Session, topic string) *TopicKeys {
	return &TopicKeys{s: s, topic: topic, ring: meshcrypto.NewKeyRing(), tried: map[int]time.Time{}}
}

// Fetch asks the broker for our seal of an epoch (0: the current one) and
// keeps the key. ok is false while nobody has sealed that epoch for us.
func (k *TopicKeys) Fetch(ctx context.Context, epoch int) (key [meshcrypto.TopicKeySize]byte, got int, ok bool, err error) {
	var params client.GetMyTopicKeyParams
	if epoch > 0 {
		params.Epoch = &epoch
	}
	r, err := k.s.API.GetMyTopicKeyWithResponse(ctx, k.topic, &params)
	if err := k.s.Check(err, r, http.StatusOK); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Code() == "seal_not_found" {
			return key, epoch, false, nil
		}
		return key, epoch, false, err
	}
	got = max(r.JSON200.KeyEpoch, 1)
	if err := k.ring.AddSealed(got, r.JSON200.EncryptedKey, r.JSON200.Nonce, k.s.ID); err != nil {
		return key, got, false, fmt.Errorf("open the key of #%s (sealed by member %s): %w", k.topic, r.JSON200.SealedByMemberId, err)
	}
	key, _ = k.ring.Key(got)
	return key, got, true, nil
}

// Get returns the key of an epoch (≥ 1), fetching it when not held and the
// last try for it was at least minGap ago (so a backlog of pending
// messages is not one request per message).
func (k *TopicKeys) Get(ctx context.Context, epoch int, minGap time.Duration) ([meshcrypto.TopicKeySize]byte, bool, error) {
	if key, ok := k.ring.Key(epoch); ok {
		return key, true, nil
	}
	k.mu.Lock()
	if time.Since(k.tried[epoch]) < minGap {
		k.mu.Unlock()
		return [meshcrypto.TopicKeySize]byte{}, false, nil
	}
	k.tried[epoch] = time.Now()
	k.mu.Unlock()
	key, _, ok, err := k.Fetch(ctx, epoch)
	return key, ok, err
}

// Held returns the key of an epoch if it is already held (no request).
func (k *TopicKeys) Held(epoch int) ([meshcrypto.TopicKeySize]byte, bool) { return k.ring.Key(epoch) }

// Topic reads a topic: its current key epoch, whether it is claimed, whether we joined.
func (s *Session) Topic(ctx context.Context, topic string) (t *client.Topic, err error) {
	tr, err := s.API.GetTopicWithResponse(ctx, topic)
	if err := s.Check(err, tr, http.StatusOK); err != nil {
		return nil, err
	}
	return tr.JSON200, nil
}

// KeyForPosting returns the key and epoch to post with, claiming the epoch
// first when nobody has (a topic never keyed, or just rotated). A keyed
// epoch without a seal for us is an error: posting never falls back to
// plaintext.
func (k *TopicKeys) KeyForPosting(ctx context.Context) ([meshcrypto.TopicKeySize]byte, int, error) {
	var zero [meshcrypto.TopicKeySize]byte
	s, topic := k.s, k.topic
	for attempt := 0; ; attempt++ {
		t, err := s.Topic(ctx, topic)
		if err != nil {
			return zero, 0, err
		}
		if !t.Joined {
			return zero, 0, &APIError{Status: http.StatusForbidden, Problem: client.Problem{Code: "not_topic_member",
				Title: fmt.Sprintf("not a member of #%s; nothing was sent", topic)}}
		}
		epoch := max(t.KeyEpoch, 1)
		if t.KeyPubkey == nil { // unclaimed: key it ourselves
			key, err := meshcrypto.NewTopicKey()
			if err != nil {
				return zero, 0, err
			}
			enc, nonce, err := meshcrypto.SealTopicKey(key, s.ID, s.ID.PublicKey())
			if err != nil {
				return zero, 0, err
			}
			cr, err := s.API.ClaimTopicKeyWithResponse(ctx, topic, client.ClaimTopicKeyRequest{EncryptedKey: enc, Nonce: nonce, KeyEpoch: &epoch})
			err = s.Check(err, cr, http.StatusCreated)
			if err == nil {
				k.ring.Add(epoch, key)
				return key, epoch, nil
			}
			var ae *APIError
			if !errors.As(err, &ae) || (ae.Code() != "topic_already_keyed" && ae.Code() != "key_epoch_mismatch") || attempt > 2 {
				return zero, 0, err
			}
			continue // someone claimed it, or it rotated, meanwhile: look again
		}
		key, ok, err := k.Get(ctx, epoch, 0)
		if err != nil {
			return zero, 0, err
		}
		if !ok {
			return zero, 0, &APIError{Status: http.StatusNotFound, Problem: client.Problem{Code: "seal_not_found",
				Title: fmt.Sprintf("#%s is encrypted and nobody has sealed its key for you yet; nothing was sent", topic)}}
		}
		return key, epoch, nil
	}
}

// Reseal seals the current epoch's key for every topic member waiting for
// one and returns the display names sealed for. Seals another member raced
// us to (seal_exists), members who left meanwhile, and a rotation in the
// middle (key_epoch_mismatch: the next cycle uses the new epoch) are
// skipped.
func (k *TopicKeys) Reseal(ctx context.Context) ([]string, error) {
	s, topic := k.s, k.topic
	t, err := s.Topic(ctx, topic)
	if err != nil || t.KeyPubkey == nil || !t.Joined {
		return nil, err // unclaimed epochs have nothing to seal
	}
	epoch := max(t.KeyEpoch, 1)
	key, ok, err := k.Get(ctx, epoch, 0)
	if err != nil || !ok {
		return nil, err // we do not hold this epoch's key: not ours to seal
	}
	limit100 := client.Limit(100)
	var sealed []string
	var cursor *string
	for {
		r, err := s.API.ListPendingSealsWithResponse(ctx, topic, &client.ListPendingSealsParams{Limit: &limit100, Cursor: cursor})
		if err := s.Check(err, r, http.StatusOK); err != nil {
			return sealed, err
		}
		for _, p := range r.JSON200.Items {
			pub, err := meshcrypto.ParsePublicKeyHex(p.Pubkey)
			if err != nil {
				continue // the broker validated it; a bad one is not ours to fix
			}
			enc, nonce, err := meshcrypto.SealTopicKey(key, s.ID, pub)
			if err != nil {
				continue // a pubkey with no x25519 form can never be sealed for
			}
			sr, err := s.API.SealTopicKeyWithResponse(ctx, topic, client.SealTopicKeyRequest{MemberId: p.MemberId, EncryptedKey: enc, Nonce: nonce, KeyEpoch: &epoch})
			err = s.Check(err, sr, http.StatusCreated)
			var ae *APIError
			switch {
			case err == nil:
				sealed = append(sealed, p.DisplayName)
			case errors.As(err, &ae) && ae.Code() == "key_epoch_mismatch":
				return sealed, nil // rotated meanwhile: the next cycle seals the new epoch
			case errors.As(err, &ae) && (ae.Status == http.StatusConflict || ae.Status == http.StatusUnprocessableEntity):
				// sealed by someone else meanwhile, or no longer a member
			default:
				return sealed, err
			}
		}
		if !r.JSON200.HasMore || r.JSON200.NextCursor == nil {
			return sealed, nil
		}
		cursor = r.JSON200.NextCursor
	}
}
