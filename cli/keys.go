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

// topicKey fetches and opens the caller's sealed copy of the topic key.
// ok is false when the topic is keyed but holds no seal for this member
// yet, or is not keyed at all (keyed says which).
func (s *session) topicKey(ctx context.Context, topic string) (key [meshcrypto.TopicKeySize]byte, ok bool, err error) {
	r, err := s.api.GetMyTopicKeyWithResponse(ctx, topic)
	if err := s.check(err, r, http.StatusOK); err != nil {
		var ae *peer.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Code() == "seal_not_found" {
			return key, false, nil
		}
		return key, false, err
	}
	key, err = meshcrypto.OpenTopicKey(r.JSON200.EncryptedKey, r.JSON200.Nonce, s.id)
	if err != nil {
		return key, false, fmt.Errorf("open the key of #%s (sealed by member %s): %w", topic, r.JSON200.SealedByMemberId, err)
	}
	return key, true, nil
}

// keyForPosting returns the topic key, claiming the topic first when it
// is unkeyed. A keyed topic without a seal for us is an error: posting
// never falls back to plaintext.
func (s *session) keyForPosting(ctx context.Context, topic string) ([meshcrypto.TopicKeySize]byte, error) {
	var zero [meshcrypto.TopicKeySize]byte
	tr, err := s.api.GetTopicWithResponse(ctx, topic)
	if err := s.check(err, tr, http.StatusOK); err != nil {
		return zero, topicHint(err, topic)
	}
	if !tr.JSON200.Joined {
		return zero, hint(&peer.APIError{Status: http.StatusForbidden, Problem: client.Problem{Code: "not_topic_member",
			Title: fmt.Sprintf("not a member of #%s; nothing was sent", topic)}}, "run `claudemesh topic join %s`", topic)
	}
	if !tr.JSON200.Keyed {
		key, err := meshcrypto.NewTopicKey()
		if err != nil {
			return zero, err
		}
		enc, nonce, err := meshcrypto.SealTopicKey(key, s.id, s.id.PublicKey())
		if err != nil {
			return zero, err
		}
		cr, err := s.api.ClaimTopicKeyWithResponse(ctx, topic, client.ClaimTopicKeyRequest{EncryptedKey: enc, Nonce: nonce})
		err = s.check(err, cr, http.StatusCreated)
		if err == nil {
			return key, nil
		}
		var ae *peer.APIError
		if !errors.As(err, &ae) || ae.Code() != "topic_already_keyed" {
			return zero, topicHint(err, topic)
		}
		// Someone else keyed it first: use theirs.
	}
	key, ok, err := s.topicKey(ctx, topic)
	if err != nil {
		return zero, topicHint(err, topic)
	}
	if !ok {
		return zero, topicHint(&peer.APIError{Status: http.StatusNotFound, Problem: client.Problem{Code: "seal_not_found",
			Title: fmt.Sprintf("#%s is encrypted and nobody has sealed its key for you yet; nothing was sent", topic)}}, topic)
	}
	return key, nil
}

// reseal seals the topic key for every topic member waiting for one and
// returns the display names sealed for. Seals another member raced us to
// (seal_exists) or for members who left meanwhile are skipped.
func (s *session) reseal(ctx context.Context, topic string, key [meshcrypto.TopicKeySize]byte) ([]string, error) {
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
			sr, err := s.api.SealTopicKeyWithResponse(ctx, topic, client.SealTopicKeyRequest{MemberId: p.MemberId, EncryptedKey: enc, Nonce: nonce})
			err = s.check(err, sr, http.StatusCreated)
			var ae *peer.APIError
			switch {
			case err == nil:
				sealed = append(sealed, p.DisplayName)
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

// keyHolder is a topic key that may arrive later (after someone seals it).
type keyHolder struct {
	mu      sync.Mutex
	key     [meshcrypto.TopicKeySize]byte
	ok      bool
	lastTry time.Time // the last fetch, so a pending backlog is not one GET per message
}

func (h *keyHolder) get() ([meshcrypto.TopicKeySize]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.key, h.ok
}

func (h *keyHolder) set(k [meshcrypto.TopicKeySize]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.key, h.ok = k, true
}

// refresh fetches the key if it is not held yet and the last fetch was
// at least minGap ago.
func (h *keyHolder) refresh(ctx context.Context, s *session, topic string, minGap time.Duration) ([meshcrypto.TopicKeySize]byte, bool, error) {
	h.mu.Lock()
	if h.ok || time.Since(h.lastTry) < minGap {
		defer h.mu.Unlock()
		return h.key, h.ok, nil
	}
	h.lastTry = time.Now()
	h.mu.Unlock()
	k, ok, err := s.topicKey(ctx, topic)
	if err != nil || !ok {
		return k, false, err
	}
	h.set(k)
	return k, true, nil
}
