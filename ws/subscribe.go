package ws

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/stream"
)

// subscription is the writer's topic feed: a stream.Feed, the same
// exact-resume state machine as SSE, over the connection's hub
// subscription (which carries presence when no topic is followed).
type subscription struct {
	active   bool
	ref      string         // the subscribe frame's ref, quoted when the feed ends
	explicit []string       // names the client asked for; nil = every visible topic
	topics   []models.Topic // what the filter lets through now
	feed     *stream.Feed
	// failingSince starts an unbroken run of access checks that could not
	// be made (database unreachable).
	failingSince time.Time
}

func (c *conn) handleSubscribe(ctx context.Context, f *clientFrame) {
	if f.Since != nil && *f.Since < 0 {
		c.replyError(ctx, f.Ref, "validation_failed", "since must be a message seq (a non-negative integer)")
		return
	}
	if stream.TooManyTopics(len(f.Topics)) { // before any topic is looked up
		c.replyError(ctx, f.Ref, "validation_failed", fmt.Sprintf("at most %d topics per subscription", stream.MaxFeedTopics))
		return
	}
	var explicit []string // nil (omitted or empty): every visible topic
	if len(f.Topics) > 0 {
		explicit = slices.Clone(f.Topics)
	}
	topics, err := c.resolveTopics(ctx, explicit)
	if err != nil {
		c.storeError(ctx, f.Ref, err)
		return
	}
	ref, since := f.Ref, f.Since
	c.enqueue(ctx, func(ctx context.Context) { c.startSubscription(ctx, ref, explicit, topics, since) })
}

func (c *conn) handleUnsubscribe(ctx context.Context, f *clientFrame) {
	ref := f.Ref
	c.enqueue(ctx, func(ctx context.Context) {
		c.stopSubscription()
		_ = c.write(ctx, mustJSON(ackFrame{Type: TypeAck, Ref: ref}))
	})
}

// resolveTopics maps names to topics the member can see (a hidden or
// unknown one is topic_not_found), or lists every visible topic.
func (c *conn) resolveTopics(ctx context.Context, names []string) ([]models.Topic, error) {
	if names == nil {
		return c.s.store.VisibleTopics(ctx, c.p)
	}
	var out []models.Topic
	for _, n := range names {
		ta, err := c.s.store.StreamTopicFor(ctx, c.p, n)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(out, func(t models.Topic) bool { return t.ID == ta.Topic.ID }) {
			out = append(out, ta.Topic)
		}
	}
	return out, nil
}

// topicFilter is the hub filter of a subscription: presence always, and
// the subscribed topics' messages and this member's notifications in them.
func (c *conn) topicFilter(topics []models.Topic) func(*stream.Event) bool {
	allowed := make(map[string]bool, len(topics))
	for _, t := range topics {
		allowed[t.ID] = true
	}
	member := c.p.MemberID
	return func(e *stream.Event) bool {
		switch e.Kind {
		case stream.KindPresence:
			return true
		case stream.KindMessage:
			return allowed[e.TopicID]
		case stream.KindNotification:
			return e.Recipient == member && allowed[e.TopicID]
		}
		return false
	}
}

// startSubscription runs on the writer: start the feed (filter, baseline,
// anchor, clamp), the subscribed frame, replay. A new subscribe replaces the
// previous one.
func (c *conn) startSubscription(ctx context.Context, ref string, explicit []string, topics []models.Topic, since *int64) {
	from := int64(-1)
	if since != nil {
		from = *since
	}
	feed, start, err := c.s.hub.StartFeed(ctx, c.s.store, c.sub, c.topicFilter(topics), topicIDs(topics), from)
	if err != nil {
		c.stopSubscription()
		c.storeError(ctx, ref, err)
		return
	}
	c.subst = subscription{active: true, ref: ref, explicit: explicit, topics: topics, feed: feed}
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	if err := c.write(ctx, mustJSON(subscribedFrame{Type: TypeSubscribed, Ref: ref, Topics: names, LastSeq: start.LastSeq,
		Resumed: start.Resumed, Clamped: start.Clamped})); err != nil {
		return
	}
	if start.Resumed {
		if err := feed.Replay(ctx, c.writeEvents(ctx)); err != nil {
			c.endSubscription(ctx, err)
			return
		}
	}
	c.stopRevalidation()
	c.revT = time.AfterFunc(c.s.cfg.RevalidateEvery, func() { c.due(&c.revalDue) })
}

// writeEvents writes events as /ws frames (each built once per event).
func (c *conn) writeEvents(ctx context.Context) func([]*stream.Event) error {
	return func(events []*stream.Event) error {
		return c.batch(func() error {
			for _, e := range events {
				for _, f := range e.WSFrames() {
					if err := c.write(ctx, f); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
}

func topicIDs(topics []models.Topic) []string {
	ids := make([]string, len(topics))
	for i, t := range topics {
		ids[i] = t.ID
	}
	return ids
}

// resubscribe replaces a hub subscription the hub ended (this connection
// fell behind, or a gap could not be filled) and catches up from the
// database, so the feed stays exact without dropping the connection.
func (c *conn) resubscribe(ctx context.Context) error {
	c.sub.Close()
	if !c.subst.active {
		c.sub = c.s.hub.SubscribeNotify(c.p.MeshID, presenceOnly, c.kick)
		return nil
	}
	c.sub = c.s.hub.SubscribeNotify(c.p.MeshID, c.topicFilter(c.subst.topics), c.kick)
	return c.subst.feed.Resubscribe(ctx, c.sub, c.writeEvents(ctx))
}

// revalidate re-resolves the subscribed topics: joins and leaves change
// what "every visible topic" means, and a named topic that became
// invisible ends the subscription.
func (c *conn) revalidate(ctx context.Context) {
	if !c.subst.active {
		return
	}
	topics, err := c.resolveTopics(ctx, c.subst.explicit)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		if _, _, transient := stream.EndReason(err); transient {
			// Not a refusal: keep the feed and try again next tick, for
			// at most the grace period.
			now := time.Now()
			if c.subst.failingSince.IsZero() {
				c.subst.failingSince = now
			}
			c.s.log.Warn("ws: revalidate subscription", slog.String("member", c.p.MemberID), slog.String("error", err.Error()))
			if now.Sub(c.subst.failingSince) < c.s.cfg.UnavailableGrace {
				return
			}
		}
		c.endSubscription(ctx, err)
		return
	}
	c.subst.failingSince = time.Time{}
	c.subst.topics = topics
	c.subst.feed.Retarget(c.topicFilter(topics), topicIDs(topics))
}

// endSubscription stops the feed and tells the client why, as a fixed
// reason code (the same as an SSE end event), never the error's text.
func (c *conn) endSubscription(ctx context.Context, err error) {
	ref := c.subst.ref
	c.stopSubscription()
	code, reconnect, _ := stream.EndReason(err)
	msg := "the subscription ended (" + code + ")"
	if reconnect {
		msg += "; subscribe again with since = the last seq received"
	}
	f := errorFrame{Type: TypeError, Code: "subscription_ended", Message: msg, Reason: code, Reconnect: &reconnect}
	if ref != "" {
		f.Ref = &ref
	}
	_ = c.write(ctx, mustJSON(f))
}

func (c *conn) stopSubscription() {
	c.sub.SetFilter(presenceOnly)
	c.subst = subscription{}
	c.stopRevalidation()
}

func (c *conn) stopRevalidation() {
	if c.revT != nil {
		c.revT.Stop()
		c.revT = nil
		c.mu.Lock()
		c.revalDue = false // a tick of the stopped timer is no longer wanted
		c.mu.Unlock()
	}
}
