package peer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/meshcrypto"
)

// TopicName is a topic name as typed, without a leading "#" or spaces.
func TopicName(s string) string { return strings.TrimPrefix(strings.TrimSpace(s), "#") }

// Topic returns the topic's key holder for this session.
func (k *TopicKeys) Topic() string { return k.topic }

// PostOptions are a post's optional parts.
type PostOptions struct {
	ReplyTo *uuid.UUID
	// ClientPrefix names the front end in the idempotency key ("cli", "mcp").
	ClientPrefix string
}

// Post encrypts text with the topic key of the current epoch (claiming an
// unkeyed topic first) and posts it over REST; it never sends plaintext.
// When the key rotates between reading it and posting (key_epoch_mismatch,
// or a fresh epoch nobody claimed yet) it takes the new key and posts
// again, twice at most, with the same idempotency key.
func (k *TopicKeys) Post(ctx context.Context, text string, opt PostOptions) (*client.Message, error) {
	s, name := k.s, k.topic
	cid := NewClientID(opt.ClientPrefix)
	for attempt := 0; ; attempt++ {
		key, epoch, err := k.KeyForPosting(ctx)
		if err != nil {
			return nil, err
		}
		ct, nonce, err := meshcrypto.EncryptV2(key, []byte(text))
		if err != nil {
			return nil, err
		}
		r, err := s.API.PostMessageWithResponse(ctx, client.PostMessageRequest{Topic: name, BodyVersion: client.PostMessageRequestBodyVersionN2,
			Ciphertext: ct, Nonce: &nonce, KeyEpoch: &epoch, ReplyToId: opt.ReplyTo, ClientMessageId: &cid})
		err = s.Check(err, r, http.StatusCreated, http.StatusOK)
		var ae *APIError
		if err != nil && errors.As(err, &ae) && attempt < 2 && (ae.Code() == "key_epoch_mismatch" || ae.Code() == "topic_key_unclaimed") {
			continue
		}
		if err != nil {
			return nil, err
		}
		if r.JSON201 != nil {
			return r.JSON201, nil
		}
		return r.JSON200, nil
	}
}

// Opened is a topic message's body as this member can read it. Text is
// nil when it could not be read: Pending (no key for us yet) or
// Undecryptable.
type Opened struct {
	Text          *string
	Plaintext     bool // a v1 body (base64 plaintext)
	Pending       bool
	Undecryptable bool
}

// Open reads a message with the keys already held (OpenMessage).
func (k *TopicKeys) Open(m *client.Message) Opened { return OpenMessage(m, k.Held) }

// OpenMessage reads a message: v1 is base64 plaintext, v2 is opened with
// the key of the epoch it names when key has it.
func OpenMessage(m *client.Message, key func(epoch int) ([meshcrypto.TopicKeySize]byte, bool)) Opened {
	var o Opened
	if m.BodyVersion == client.MessageBodyVersionN1 {
		o.Plaintext = true
		if t, err := meshcrypto.DecodeV1(m.Ciphertext); err == nil {
			o.Text = &t
		} else {
			o.Undecryptable = true
		}
		return o
	}
	tk, ok := key(max(m.KeyEpoch, 1))
	if !ok {
		o.Pending = true
		return o
	}
	if b, err := meshcrypto.DecryptV2(tk, m.Ciphertext, m.Nonce); err == nil {
		t := string(b)
		o.Text = &t
	} else {
		o.Undecryptable = true
	}
	return o
}

// OpenFetching is Open after fetching the message's epoch key when we lack
// it and have not asked for it within minGap (a key may have been sealed
// for us since).
func (k *TopicKeys) OpenFetching(ctx context.Context, m *client.Message, minGap time.Duration) (Opened, error) {
	if m.BodyVersion == client.MessageBodyVersionN2 {
		if _, _, err := k.Get(ctx, max(m.KeyEpoch, 1), minGap); err != nil {
			return Opened{}, err
		}
	}
	return k.Open(m), nil
}

// ListTopics reads every topic this member can see, all pages.
func (s *Session) ListTopics(ctx context.Context) ([]client.Topic, error) {
	return allPages(ctx, func(ctx context.Context, limit client.Limit, cursor *string) ([]client.Topic, bool, *string, error) {
		r, err := s.API.ListTopicsWithResponse(ctx, &client.ListTopicsParams{Limit: &limit, Cursor: cursor})
		if err := s.Check(err, r, http.StatusOK); err != nil {
			return nil, false, nil, err
		}
		return r.JSON200.Items, r.JSON200.HasMore, r.JSON200.NextCursor, nil
	})
}

// DefaultResealInterval is how often a key holder seals topic keys for
// members waiting for them; CLAUDEMESH_RESEAL_INTERVAL (a Go duration)
// overrides it, tests use that.
const DefaultResealInterval = 30 * time.Second

// ResealInterval reads CLAUDEMESH_RESEAL_INTERVAL.
func ResealInterval(getenv func(string) string) (time.Duration, error) {
	v := getenv("CLAUDEMESH_RESEAL_INTERVAL")
	if v == "" {
		return DefaultResealInterval, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("CLAUDEMESH_RESEAL_INTERVAL must be a positive duration like 30s, got %q", v)
	}
	return d, nil
}

// ResealReport is one topic's outcome in a re-seal cycle: the members
// sealed for, or a failure (each distinct failure is reported once, not
// every cycle).
type ResealReport struct {
	Topic  string
	Sealed []string
	Err    error
}

// ResealLoop does a key holder's duty until ctx ends: now and then every
// interval, it seals the current key of each topic keys returns for the
// members still waiting for one, and tells report what happened.
func ResealLoop(ctx context.Context, every time.Duration, keys func(ctx context.Context) ([]*TopicKeys, error), report func(ResealReport)) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	lastErr := map[string]string{} // by topic; "" = the list itself
	say := func(topic string, err error) {
		switch {
		case err != nil && ctx.Err() == nil && err.Error() != lastErr[topic]:
			lastErr[topic] = err.Error()
			report(ResealReport{Topic: topic, Err: err})
		case err == nil:
			delete(lastErr, topic)
		}
	}
	for {
		ks, err := keys(ctx)
		say("", err)
		for _, k := range ks {
			names, err := k.Reseal(ctx)
			if len(names) > 0 {
				report(ResealReport{Topic: k.topic, Sealed: names})
			}
			say(k.topic, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
