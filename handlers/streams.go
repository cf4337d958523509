package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/stream"
)

// CreateStreamToken mints a short-lived token for ?token= on the stream
// routes: POST /v1/stream/token.
func (h *Handler) CreateStreamToken(c echo.Context) error {
	tok, exp, err := h.Tokens.SignStream(middleware.PrincipalFrom(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expiresAt"`
	}{tok, exp.UTC()})
}

type streamReady struct {
	Topics  []string `json:"topics"`
	LastSeq int64    `json:"lastSeq"`
	Resumed bool     `json:"resumed"`
	// Clamped: the resume point was beyond lastSeq (a seq this mesh never
	// had) and the stream resumes from lastSeq instead.
	Clamped bool `json:"clamped,omitempty"`
}

// TopicStream follows one topic: GET /v1/topics/{name}/stream.
func (h *Handler) TopicStream(c echo.Context) error {
	p := middleware.PrincipalFrom(c)
	ctx := c.Request().Context()
	since, err := stream.ParseLastEventID(c.Request().Header.Get("Last-Event-ID"), c.QueryParam("since"))
	if err != nil {
		return models.E(models.KindBadRequest, "invalid_query", "%s", err.Error())
	}
	ta, err := h.Store.StreamTopicFor(ctx, p, topicParam(c))
	if err != nil {
		return err
	}
	topic := ta.Topic
	wants := func(e *stream.Event) bool { return e.Kind == stream.KindMessage && e.TopicID == topic.ID }
	revalidate := func(ctx context.Context) error {
		return accessLost(h.Store.RecheckStream(ctx, p, topic.Name))
	}
	return h.serveStream(c, p, since, []models.Topic{topic}, wants, revalidate, nil)
}

// MeshStream follows several topics (or every visible one) plus the caller's
// notifications and the mesh's presence: GET /stream?topics=a,b.
func (h *Handler) MeshStream(c echo.Context) error {
	p := middleware.PrincipalFrom(c)
	ctx := c.Request().Context()
	since, err := stream.ParseLastEventID(c.Request().Header.Get("Last-Event-ID"), c.QueryParam("since"))
	if err != nil {
		return models.E(models.KindBadRequest, "invalid_query", "%s", err.Error())
	}
	var names []string
	for _, name := range strings.Split(c.QueryParam("topics"), ",") {
		if name = strings.TrimSpace(name); name != "" && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	// The cap is checked before any topic is looked up.
	if stream.TooManyTopics(len(names)) {
		return models.E(models.KindBadRequest, "invalid_query", "at most %d topics per stream", stream.MaxFeedTopics)
	}
	kinds, err := eventTypes(c.QueryParam("types"))
	if err != nil {
		return err
	}
	if !kinds[stream.KindMessage] {
		since = -1 // no messages wanted: nothing to replay
	}
	resolve := func(ctx context.Context) ([]models.Topic, error) {
		if names == nil {
			return h.Store.VisibleTopics(ctx, p)
		}
		var out []models.Topic
		for _, name := range names {
			ta, err := h.Store.StreamTopicFor(ctx, p, name)
			if err != nil {
				return nil, err
			}
			if !slices.ContainsFunc(out, func(t models.Topic) bool { return t.ID == ta.Topic.ID }) {
				out = append(out, ta.Topic)
			}
		}
		return out, nil
	}
	topics, err := resolve(ctx)
	if err != nil {
		return err
	}
	filter := func(topics []models.Topic) func(*stream.Event) bool {
		allowed := make(map[string]bool, len(topics))
		for _, t := range topics {
			allowed[t.ID] = true
		}
		return func(e *stream.Event) bool {
			if !kinds[e.Kind] {
				return false
			}
			switch e.Kind {
			case stream.KindMessage:
				return allowed[e.TopicID]
			case stream.KindNotification:
				return e.Recipient == p.MemberID && allowed[e.TopicID]
			default:
				return true
			}
		}
	}
	var feed *stream.Feed
	revalidate := func(ctx context.Context) error {
		if err := h.Store.StillValid(ctx, p); err != nil {
			return err
		}
		now, err := resolve(ctx)
		if err != nil {
			return accessLost(err) // an explicitly named topic became invisible
		}
		feed.Retarget(filter(now), topicIDs(now))
		return nil
	}
	return h.serveStream(c, p, since, topics, filter(topics), revalidate, func(f *stream.Feed) { feed = f })
}

// eventTypes reads /stream's ?types=: the event types the subscriber
// wants, all of them when the parameter is absent or empty. Message replay
// follows the types too: without "message" nothing is replayed.
func eventTypes(raw string) (map[string]bool, error) {
	all := map[string]bool{stream.KindMessage: true, stream.KindNotification: true, stream.KindPresence: true}
	if strings.TrimSpace(raw) == "" {
		return all, nil
	}
	kinds := map[string]bool{}
	for _, t := range strings.Split(raw, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !all[t] {
			return nil, models.E(models.KindBadRequest, "invalid_query", "types takes message, notification and presence, comma-separated; got %q", t)
		}
		kinds[t] = true
	}
	return kinds, nil
}

// streamCredential names the credential a stream counts against: the API
// key, else the login (token family) behind a member or stream token.
// Every stream token minted from one credential counts as that credential.
func streamCredential(p *models.Principal) string {
	switch {
	case p.APIKeyID != "":
		return "key:" + p.APIKeyID
	case p.FamilyID != "":
		return "family:" + p.FamilyID
	default:
		return "member:" + p.MemberID
	}
}

// serveStream takes one of the credential's stream slots, subscribes,
// anchors the live feed to the database, and runs the SSE writer with
// replay limited to the given topics.
func (h *Handler) serveStream(c echo.Context, p *models.Principal, since int64, topics []models.Topic,
	wants func(*stream.Event) bool, revalidate func(context.Context) error, got func(*stream.Feed)) error {
	ctx := c.Request().Context()
	release := func() {}
	if h.Streams != nil {
		var ok bool
		if release, ok = h.Streams.Take(streamCredential(p)); !ok {
			return &models.Error{Kind: models.KindRateLimited, Code: "too_many_streams", RetryAfterSeconds: 5,
				Detail: fmt.Sprintf("this credential already has %d streams open on this broker; close one first", h.Streams.Max())}
		}
	}
	ids, names := topicIDs(topics), make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	sub := h.Hub.Subscribe(p.MeshID, wants)
	feed, start, err := h.Hub.StartFeed(ctx, h.Store, sub, wants, ids, since)
	if err != nil {
		sub.Close()
		release()
		return err
	}
	if got != nil {
		got(feed)
	}
	sse := &stream.SSE{
		Feed: feed, Resume: start.Resumed, Revalidate: revalidate,
		Ready:            streamReady{Topics: names, LastSeq: start.LastSeq, Resumed: start.Resumed, Clamped: start.Clamped},
		Heartbeat:        h.StreamHeartbeat,
		RevalidateEvery:  h.StreamRevalidate,
		UnavailableGrace: h.StreamUnavailableGrace,
		Stop:             h.Closing,
	}
	// The writer may take the connection over from net/http; record the
	// status for the request log now.
	c.Response().Status = http.StatusOK
	ended := func(err error) {
		release()
		var de *models.Error
		switch {
		case err == nil, errors.Is(err, context.Canceled):
		case errors.As(err, &de), errors.Is(err, stream.ErrSlowConsumer), errors.Is(err, stream.ErrGap):
			h.Log.Debug("stream ended", slog.String("member", p.MemberID), slog.String("reason", err.Error()))
		default:
			h.Log.Info("stream ended", slog.String("member", p.MemberID), slog.String("reason", err.Error()))
		}
	}
	_ = sse.Serve(ctx, c.Response(), ended) // ended has the outcome
	return nil                              // the response is committed; nothing more to render
}

func topicIDs(topics []models.Topic) []string {
	ids := make([]string, len(topics))
	for i, t := range topics {
		ids[i] = t.ID
	}
	return ids
}

// accessLost turns "this topic is no longer visible to you" during a
// stream's re-check into the fixed end code access_lost; other refusals
// (topic_archived, …) and database errors pass through unchanged.
func accessLost(err error) error {
	if de, ok := models.AsError(err); ok && (de.Kind == models.KindNotFound || de.Kind == models.KindForbidden) {
		return models.E(models.KindForbidden, "access_lost", "you can no longer read this topic")
	}
	return err
}
