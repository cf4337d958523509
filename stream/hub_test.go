package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/models"
)

// memStore is the database side of the hub for unit tests: a mesh's
// committed messages by seq.
type memStore struct {
	mu   sync.Mutex
	rows map[int64]models.MessageRow
}

func (m *memStore) MeshMessagesBetween(_ context.Context, meshID string, after, upTo int64, limit int) ([]models.MessageRow, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []models.MessageRow
	for s := after + 1; s <= upTo && len(out) < limit; s++ {
		if r, ok := m.rows[s]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

func (m *memStore) MeshLastSeqs(_ context.Context, ids []string) (map[string]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var last int64
	for s := range m.rows {
		last = max(last, s)
	}
	out := map[string]int64{}
	for _, id := range ids {
		out[id] = last
	}
	return out, nil
}

func msg(seq int64, topic string) models.MessageRow {
	return models.MessageRow{Message: models.Message{ID: fmt.Sprint("m", seq), MeshID: "mesh", TopicID: topic, Seq: seq, BodyVersion: 2}, TopicName: topic}
}

func (m *memStore) commit(seqs ...int64) models.Committed {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := models.Committed{MeshID: "mesh"}
	for _, s := range seqs {
		r := msg(s, "t")
		m.rows[s] = r
		c.Messages = append(c.Messages, r)
	}
	return c
}

func all(*Event) bool { return true }

func seqsOf(evs []*Event) []int64 {
	var out []int64
	for _, e := range evs {
		if e.Kind == KindMessage {
			out = append(out, e.Seq)
		}
	}
	return out
}

func TestSlowSubscriberIsCutOffWithoutStallingOthers(t *testing.T) {
	st := &memStore{rows: map[int64]models.MessageRow{}}
	h := NewHub(st, slog.New(slog.DiscardHandler), nil, Limits{MaxQueuedEvents: 8})
	slow := h.Subscribe("mesh", all)
	fast := h.Subscribe("mesh", all)
	var got []int64
	for seq := int64(1); seq <= 100; seq++ {
		h.Deliver(st.commit(seq)) // never blocks, whatever slow does
		got = append(got, seqsOf(fast.Take())...)
	}
	if len(got) != 100 || got[99] != 100 {
		t.Fatalf("fast subscriber got %d events", len(got))
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("slow subscriber still open after overflowing its queue")
	}
	if !errors.Is(slow.Err(), ErrSlowConsumer) {
		t.Errorf("slow err = %v", slow.Err())
	}
}

func TestHubFillsGapsFromTheDatabase(t *testing.T) {
	st := &memStore{rows: map[int64]models.MessageRow{}}
	h := NewHub(st, slog.New(slog.DiscardHandler), nil, Limits{})
	sub := h.Subscribe("mesh", all)
	h.Anchor("mesh", 0)
	h.Deliver(st.commit(1, 2))
	st.commit(3, 4) // committed elsewhere; their live copy was lost
	h.Deliver(st.commit(5))
	h.Deliver(st.commit(4)) // a late duplicate is dropped
	// The hole is filled on its own goroutine; 4 queued behind it.
	if got := fmt.Sprint(waitSeqs(t, sub, 5, 10*time.Second)); got != "[1 2 3 4 5]" {
		t.Errorf("delivered %s, want [1 2 3 4 5]", got)
	}
	// Reconcile repairs a lost commit even when nothing follows it.
	st.commit(6)
	h.Reconcile(context.Background())
	if got := fmt.Sprint(seqsOf(sub.Take())); got != "[6]" {
		t.Errorf("after reconcile %s, want [6]", got)
	}
}

func TestAnchorDetectsAGapBeforeTheFirstLiveEvent(t *testing.T) {
	st := &memStore{rows: map[int64]models.MessageRow{}}
	st.commit(1, 2, 3)
	h := NewHub(st, slog.New(slog.DiscardHandler), nil, Limits{})
	sub := h.Subscribe("mesh", all)
	h.Anchor("mesh", 3)
	st.commit(4)
	h.Deliver(st.commit(5))
	if got := fmt.Sprint(waitSeqs(t, sub, 2, 10*time.Second)); got != "[4 5]" {
		t.Errorf("delivered %s, want [4 5]", got)
	}
}

func TestFiltersAndNotifications(t *testing.T) {
	st := &memStore{rows: map[int64]models.MessageRow{}}
	h := NewHub(st, slog.New(slog.DiscardHandler), nil, Limits{})
	onlyA := h.Subscribe("mesh", func(e *Event) bool { return e.Kind == KindMessage && e.TopicID == "a" })
	bob := h.Subscribe("mesh", func(e *Event) bool { return e.Kind == KindNotification && e.Recipient == "bob" })
	other := h.Subscribe("other-mesh", all)
	everything := h.Subscribe("mesh", all)
	c := models.Committed{MeshID: "mesh", Messages: []models.MessageRow{msg(1, "a"), msg(2, "b")},
		Notifications: []models.NotificationRow{{Notification: models.Notification{MeshID: "mesh", TopicID: "b", RecipientMemberID: "bob"}, Seq: 2}}}
	h.Deliver(c)
	if got := fmt.Sprint(seqsOf(onlyA.Take())); got != "[1]" {
		t.Errorf("topic filter delivered %s", got)
	}
	if evs := bob.Take(); len(evs) != 1 || evs[0].Kind != KindNotification {
		t.Errorf("bob got %d events", len(evs))
	}
	if evs := other.Take(); len(evs) != 0 {
		t.Errorf("another mesh's subscriber got %d events", len(evs))
	}
	everything.Take()
	h.Publish(PresenceEvent("mesh", map[string]string{"status": "idle"}, time.Now()))
	if evs := everything.Take(); len(evs) != 1 || evs[0].Kind != KindPresence {
		t.Errorf("mesh subscriber got %d events for a presence change, want 1", len(evs))
	}
	if evs := other.Take(); len(evs) != 0 {
		t.Error("presence crossed meshes")
	}
}
