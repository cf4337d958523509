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

// replayPage bounds one replay query.
const replayPage = 500

// subscription is the writer's topic feed: the same exact-resume contract
// as SSE. The hub filter is set first, then the database is replayed after
// since, then live events are written skipping every seq already written.
type subscription struct {
	active   bool
	ref      string         // the subscribe frame's ref, quoted when the feed ends
	explicit []string       // names the client asked for; nil = every visible topic
	topics   []models.Topic // what the filter lets through now
	lastSent int64          // highest message seq written
	// failingSince starts an unbroken run of access checks that could not
	// be made (database unreachable).
	failingSince time.Time
}

func (c *conn) handleSubscribe(ctx context.Context, f *clientFrame) {
	if f.Since != nil && *f.Since < 0 {
		c.replyError(ctx, f.Ref, "validation_failed", "since must be a message seq (a non-negative integer)")
		return
	}
	if len(f.Topics) > 256 {
		c.replyError(ctx, f.Ref, "validation_failed", "at most 256 topics per subscription")
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
	select {
	case c.cmds <- func(ctx context.Context) { c.startSubscription(ctx, ref, explicit, topics, since) }:
	case <-ctx.Done():
	}
}

func (c *conn) handleUnsubscribe(ctx context.Context, f *clientFrame) {
	ref := f.Ref
	select {
	case c.cmds <- func(ctx context.Context) {
		c.stopSubscription()
		_ = c.write(ctx, mustJSON(ackFrame{Type: TypeAck, Ref: ref}))
	}:
	case <-ctx.Done():
	}
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

// startSubscription runs on the writer: filter, baseline, subscribed frame,
// replay. A new subscribe replaces the previous one.
func (c *conn) startSubscription(ctx context.Context, ref string, explicit []string, topics []models.Topic, since *int64) {
	c.sub.SetFilter(c.topicFilter(topics))
	last, err := c.s.store.MeshLastSeqs(ctx, []string{c.p.MeshID})
	if err != nil {
		c.stopSubscription()
		c.storeError(ctx, ref, err)
		return
	}
	baseline := last[c.p.MeshID]
	c.s.hub.Anchor(c.p.MeshID, baseline)
	clamped := false
	if since != nil {
		v, cl := stream.ClampResume(*since, baseline)
		since, clamped = &v, cl
	}
	c.subst = subscription{active: true, ref: ref, explicit: explicit, topics: topics, lastSent: baseline}
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	if err := c.write(ctx, mustJSON(subscribedFrame{Type: TypeSubscribed, Ref: ref, Topics: names, LastSeq: baseline, Resumed: since != nil, Clamped: clamped})); err != nil {
		return
	}
	if since != nil {
		c.subst.lastSent = *since
		if err := c.replay(ctx); err != nil {
			c.endSubscription(ctx, err)
			return
		}
	}
	c.stopRevalidation()
	c.revT = time.NewTicker(c.s.cfg.RevalidateEvery)
	c.reval = c.revT.C
}

// replay writes every subscribed message after lastSent from the database.
func (c *conn) replay(ctx context.Context) error {
	ids := make([]string, len(c.subst.topics))
	for i, t := range c.subst.topics {
		ids[i] = t.ID
	}
	for {
		rows, err := c.s.store.MessagesAfter(ctx, c.p.MeshID, ids, c.subst.lastSent, replayPage)
		if err != nil {
			return fmt.Errorf("replay after %d: %w", c.subst.lastSent, err)
		}
		for i := range rows {
			if err := c.write(ctx, stream.MessageEvent(&rows[i], time.Time{}).WS()); err != nil {
				return err
			}
			c.subst.lastSent = rows[i].Seq
		}
		if len(rows) < replayPage {
			return nil
		}
	}
}

// resubscribe replaces a hub subscription the hub ended (this connection
// fell behind, or a gap could not be filled) and catches up from the
// database, so the feed stays exact without dropping the connection.
func (c *conn) resubscribe(ctx context.Context) error {
	c.sub.Close()
	filter := presenceOnly
	if c.subst.active {
		filter = c.topicFilter(c.subst.topics)
	}
	c.sub = c.s.hub.Subscribe(c.p.MeshID, filter)
	if !c.subst.active {
		return nil
	}
	last, err := c.s.store.MeshLastSeqs(ctx, []string{c.p.MeshID})
	if err != nil {
		return err
	}
	c.s.hub.Anchor(c.p.MeshID, last[c.p.MeshID])
	return c.replay(ctx)
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
	c.sub.SetFilter(c.topicFilter(topics))
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
		c.revT, c.reval = nil, nil
	}
}
