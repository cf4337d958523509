package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/peer"
)

// topicName strips a leading '#', as the broker does.
func topicName(s string) string { return strings.TrimPrefix(strings.TrimSpace(s), "#") }

// topicHint adds the next step for topic-level refusals.
func topicHint(err error, topic string) error {
	var ae *peer.APIError
	if !asAPI(err, &ae) {
		return err
	}
	switch ae.Code() {
	case "not_topic_member":
		return hint(err, "not a member of #%s: run `claudemesh topic join %s`", topic, topic)
	case "topic_not_found":
		return hint(err, "no topic #%s you can see: run `claudemesh topic list`, or create it with `claudemesh topic create %s`", topic, topic)
	case "observer":
		return hint(err, "observers of #%s may read but not post: ask a topic lead", topic)
	case "topic_archived":
		return hint(err, "#%s is archived: it takes no new messages", topic)
	case "seal_not_found":
		return hint(err, "no key for you in #%s yet: a member holding it seals it for you while their `claudemesh topic tail %s` runs; try again then", topic, topic)
	}
	return err
}

// topicKeys is one topic's keys by key epoch, fetched as messages need
// them and kept: old history opens with the old epoch's key, and after a
// rotation posts and seals use the new one. Safe for concurrent use.
type topicKeys struct {
	s     *session
	topic string
	ring  *meshcrypto.KeyRing

	mu    sync.Mutex
	tried map[int]time.Time // the last fetch of an epoch we hold no key of
}

func newTopicKeys(s *session, topic string) *topicKeys {
	return &topicKeys{s: s, topic: topic, ring: meshcrypto.NewKeyRing(), tried: map[int]time.Time{}}
}

// fetch asks the broker for our seal of an epoch (0: the current one) and
// keeps the key. ok is false while nobody has sealed that epoch for us.
func (k *topicKeys) fetch(ctx context.Context, epoch int) (key [meshcrypto.TopicKeySize]byte, got int, ok bool, err error) {
	var params client.GetMyTopicKeyParams
	if epoch > 0 {
		params.Epoch = &epoch
	}
	r, err := k.s.api.GetMyTopicKeyWithResponse(ctx, k.topic, &params)
	if err := k.s.check(err, r, http.StatusOK); err != nil {
		var ae *peer.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Code() == "seal_not_found" {
			return key, epoch, false, nil
		}
		return key, epoch, false, err
	}
	got = max(r.JSON200.KeyEpoch, 1)
	if err := k.ring.AddSealed(got, r.JSON200.EncryptedKey, r.JSON200.Nonce, k.s.id); err != nil {
		return key, got, false, fmt.Errorf("open the key of #%s (sealed by member %s): %w", k.topic, r.JSON200.SealedByMemberId, err)
	}
	key, _ = k.ring.Key(got)
	return key, got, true, nil
}

// get returns the key of an epoch (≥ 1), fetching it when not held and the
// last try for it was at least minGap ago (so a backlog of pending
// messages is not one request per message).
func (k *topicKeys) get(ctx context.Context, epoch int, minGap time.Duration) ([meshcrypto.TopicKeySize]byte, bool, error) {
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
	key, _, ok, err := k.fetch(ctx, epoch)
	return key, ok, err
}

// held returns the key of an epoch if it is already held (no request).
func (k *topicKeys) held(epoch int) ([meshcrypto.TopicKeySize]byte, bool) { return k.ring.Key(epoch) }

// current reads the topic's current key epoch and whether it is claimed.
func (s *session) currentEpoch(ctx context.Context, topic string) (t *client.Topic, err error) {
	tr, err := s.api.GetTopicWithResponse(ctx, topic)
	if err := s.check(err, tr, http.StatusOK); err != nil {
		return nil, topicHint(err, topic)
	}
	return tr.JSON200, nil
}

// keyForPosting returns the key and epoch to post with, claiming the epoch
// first when nobody has (a topic never keyed, or just rotated). A keyed
// epoch without a seal for us is an error: posting never falls back to
// plaintext.
func (k *topicKeys) keyForPosting(ctx context.Context) ([meshcrypto.TopicKeySize]byte, int, error) {
	var zero [meshcrypto.TopicKeySize]byte
	s, topic := k.s, k.topic
	for attempt := 0; ; attempt++ {
		t, err := s.currentEpoch(ctx, topic)
		if err != nil {
			return zero, 0, err
		}
		if !t.Joined {
			return zero, 0, hint(&peer.APIError{Status: http.StatusForbidden, Problem: client.Problem{Code: "not_topic_member",
				Title: fmt.Sprintf("not a member of #%s; nothing was sent", topic)}}, "run `claudemesh topic join %s`", topic)
		}
		epoch := max(t.KeyEpoch, 1)
		if t.KeyPubkey == nil { // unclaimed: key it ourselves
			key, err := meshcrypto.NewTopicKey()
			if err != nil {
				return zero, 0, err
			}
			enc, nonce, err := meshcrypto.SealTopicKey(key, s.id, s.id.PublicKey())
			if err != nil {
				return zero, 0, err
			}
			cr, err := s.api.ClaimTopicKeyWithResponse(ctx, topic, client.ClaimTopicKeyRequest{EncryptedKey: enc, Nonce: nonce, KeyEpoch: &epoch})
			err = s.check(err, cr, http.StatusCreated)
			if err == nil {
				k.ring.Add(epoch, key)
				return key, epoch, nil
			}
			var ae *peer.APIError
			if !errors.As(err, &ae) || (ae.Code() != "topic_already_keyed" && ae.Code() != "key_epoch_mismatch") || attempt > 2 {
				return zero, 0, topicHint(err, topic)
			}
			continue // someone claimed it, or it rotated, meanwhile: look again
		}
		key, ok, err := k.get(ctx, epoch, 0)
		if err != nil {
			return zero, 0, topicHint(err, topic)
		}
		if !ok {
			return zero, 0, topicHint(&peer.APIError{Status: http.StatusNotFound, Problem: client.Problem{Code: "seal_not_found",
				Title: fmt.Sprintf("#%s is encrypted and nobody has sealed its key for you yet; nothing was sent", topic)}}, topic)
		}
		return key, epoch, nil
	}
}

// reseal seals the current epoch's key for every topic member waiting for
// one and returns the display names sealed for. Seals another member raced
// us to (seal_exists), members who left meanwhile, and a rotation in the
// middle (key_epoch_mismatch: the next cycle uses the new epoch) are
// skipped.
func (k *topicKeys) reseal(ctx context.Context) ([]string, error) {
	s, topic := k.s, k.topic
	t, err := s.currentEpoch(ctx, topic)
	if err != nil || t.KeyPubkey == nil || !t.Joined {
		return nil, err // unclaimed epochs have nothing to seal
	}
	epoch := max(t.KeyEpoch, 1)
	key, ok, err := k.get(ctx, epoch, 0)
	if err != nil || !ok {
		return nil, err // we do not hold this epoch's key: not ours to seal
	}
	var sealed []string
	var cursor *string
	for {
		r, err := s.api.ListPendingSealsWithResponse(ctx, topic, &client.ListPendingSealsParams{Limit: ptr(client.Limit(100)), Cursor: cursor})
		if err := s.check(err, r, http.StatusOK); err != nil {
			return sealed, err
		}
		for _, p := range r.JSON200.Items {
			pub, err := meshcrypto.ParsePublicKeyHex(p.Pubkey)
			if err != nil {
				continue // the broker validated it; a bad one is not ours to fix
			}
			enc, nonce, err := meshcrypto.SealTopicKey(key, s.id, ed25519.PublicKey(pub))
			if err != nil {
				continue // a pubkey with no x25519 form can never be sealed for
			}
			sr, err := s.api.SealTopicKeyWithResponse(ctx, topic, client.SealTopicKeyRequest{MemberId: p.MemberId, EncryptedKey: enc, Nonce: nonce, KeyEpoch: &epoch})
			err = s.check(err, sr, http.StatusCreated)
			var ae *peer.APIError
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
