package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/claudemesh/claudemesh-go/models"
)

// MaxFeedTopics bounds the topics one feed may name. Every transport checks
// it with TooManyTopics before looking any topic up, so a long list costs
// no queries.
const MaxFeedTopics = 256

// TooManyTopics reports a topic list over MaxFeedTopics.
func TooManyTopics(n int) bool { return n > MaxFeedTopics }

// FeedStore is what a feed reads: the mesh's newest seq (the baseline) and
// the history it replays.
type FeedStore interface {
	MeshLastSeqs(ctx context.Context, meshIDs []string) (map[string]int64, error)
	MessagesAfter(ctx context.Context, meshID string, topicIDs []string, after int64, limit int) ([]models.MessageRow, error)
}

// Feed is one subscriber's resumable view of a mesh's messages, the same
// state machine whatever the transport (SSE writes e.SSE, /ws writes
// e.WSFrames()): the hub subscription is set first, the database is then
// replayed after the resume point, and live events follow with every seq
// already written skipped, so nothing is lost or doubled.
type Feed struct {
	hub      *Hub
	store    FeedStore
	sub      *Subscription
	meshID   string
	topicIDs []string // the replay scope
	// The position (highest message seq written) lives in the
	// subscription, where the hub's direct writes advance it too.
}

// FeedStart is what a client learns when its feed starts.
type FeedStart struct {
	LastSeq int64 // the mesh's newest seq when the feed started
	Resumed bool  // a resume point was given and is being replayed
	Clamped bool  // the resume point was beyond LastSeq and was lowered to it
}

// StartFeed points sub at the given topics and starts a feed on it, as one
// operation in the one order that loses nothing: filter the subscription
// (live events from now on are queued), read the mesh's newest seq (the
// baseline), anchor the hub's gap detection to it, and clamp the resume
// point. since < 0 means "start live at the baseline". sub stays the
// caller's to close.
func (h *Hub) StartFeed(ctx context.Context, store FeedStore, sub *Subscription, wants func(*Event) bool, topicIDs []string, since int64) (*Feed, FeedStart, error) {
	sub.SetFilter(wants)
	last, err := store.MeshLastSeqs(ctx, []string{sub.meshID})
	if err != nil {
		return nil, FeedStart{}, err
	}
	baseline := last[sub.meshID]
	h.Anchor(sub.meshID, baseline)
	f := &Feed{hub: h, store: store, sub: sub, meshID: sub.meshID, topicIDs: topicIDs}
	start := FeedStart{LastSeq: baseline}
	pos := baseline
	if since >= 0 {
		pos, start.Clamped = ClampResume(since, baseline)
		start.Resumed = true
	}
	sub.setPosition(pos)
	return f, start, nil
}

// Sub is the feed's hub subscription.
func (f *Feed) Sub() *Subscription { return f.sub }

// Retarget changes the topics followed (after a re-check found joins,
// leaves or lost access); the resume position is kept.
func (f *Feed) Retarget(wants func(*Event) bool, topicIDs []string) {
	f.topicIDs = topicIDs
	f.sub.SetFilter(wants)
}

// Replay writes every message after the feed's position from the database,
// a page of events per write call, until it is caught up with what was
// committed when it started (later commits are queued on the subscription).
func (f *Feed) Replay(ctx context.Context, write func([]*Event) error) error {
	for {
		pos := f.sub.position()
		rows, err := f.store.MessagesAfter(ctx, f.meshID, f.topicIDs, pos, replayPage)
		if err != nil {
			return fmt.Errorf("replay after %d: %w", pos, err)
		}
		if len(rows) > 0 {
			events := make([]*Event, len(rows))
			for i := range rows {
				events[i] = MessageEvent(&rows[i], time.Time{})
			}
			if err := write(events); err != nil {
				return err
			}
			f.sub.setPosition(rows[len(rows)-1].Seq)
			f.hub.metrics.sent.Add(float64(len(rows)))
		}
		if len(rows) < replayPage {
			return nil
		}
	}
}

// Live takes what the hub queued, dropping messages at or below the
// position (replayed already, or committed before the baseline).
func (f *Feed) Live() []*Event { return f.sub.takeAfter() }

// Resubscribe replaces a subscription the hub cut (the subscriber fell
// behind, or a gap could not be filled) with a new one from sub, anchors it,
// and catches up from the database from the feed's position, so the feed
// stays exact without dropping the connection.
func (f *Feed) Resubscribe(ctx context.Context, sub *Subscription, write func([]*Event) error) error {
	sub.setPosition(f.sub.position())
	f.sub = sub
	last, err := f.store.MeshLastSeqs(ctx, []string{f.meshID})
	if err != nil {
		return err
	}
	f.hub.Anchor(f.meshID, last[f.meshID])
	return f.Replay(ctx, write)
}
