// Package stream fans committed messages, notifications and presence out to
// live subscribers: an in-process hub with bounded per-subscriber queues, our
// own Server-Sent Events writer with exact resume from the database, and a
// NATS bridge that carries commits between broker nodes.
package stream

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/claudemesh/claudemesh-go/models"
)

// Event kinds, also the SSE "event:" names.
const (
	KindMessage      = "message"
	KindNotification = "notification"
	KindPresence     = "presence"
)

// Event is one thing to deliver, encoded once and shared by every
// subscriber (never re-encoded per connection).
type Event struct {
	Kind      string
	MeshID    string
	Seq       int64  // messages only: the SSE id
	TopicID   string // messages and notifications
	Recipient string // notifications: the member it is for
	Data      []byte // the JSON payload
	SSE       []byte // the complete SSE frame
	At        time.Time

	// views are the payloads of a presence batch (presenceBatch): SSE
	// holds one event per view, and WSFrames one frame per view.
	views [][]byte

	wsOnce sync.Once
	ws     [][]byte // the /ws frames, built on first use (WSFrames)
}

// WSFrames is the event as /ws frames, {"type":<kind>,"data":<data>}: one,
// or one per view of a presence batch. They are built once, by the first
// WebSocket subscriber that writes them, and shared by the rest (SSE-only
// events never pay for them).
func (e *Event) WSFrames() [][]byte {
	e.wsOnce.Do(func() {
		if e.views == nil {
			e.ws = [][]byte{WSFrame(e.Kind, e.Data)}
			return
		}
		e.ws = make([][]byte, len(e.views))
		for i, v := range e.views {
			e.ws[i] = WSFrame(e.Kind, v)
		}
	})
	return e.ws
}

// WSFrame renders {"type":typ,"data":payload}; payload is JSON already.
func WSFrame(typ string, payload []byte) []byte {
	b := make([]byte, 0, len(payload)+len(typ)+20)
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","data":`...)
	b = append(b, payload...)
	return append(b, '}')
}

// frame renders one SSE event. The payloads are single-line JSON, so one
// data: line suffices.
func frame(id int64, kind string, data []byte) []byte {
	b := make([]byte, 0, len(data)+48)
	if id > 0 {
		b = append(b, "id: "...)
		b = strconv.AppendInt(b, id, 10)
		b = append(b, '\n')
	}
	b = append(b, "event: "...)
	b = append(b, kind...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, '\n', '\n')
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Views hold strings, numbers and times only.
		panic("stream: encode event: " + err.Error())
	}
	return b
}

// MessageEvent encodes a committed message.
func MessageEvent(m *models.MessageRow, at time.Time) *Event {
	data := mustJSON(ViewMessage(m))
	return &Event{Kind: KindMessage, MeshID: m.MeshID, Seq: m.Seq, TopicID: m.TopicID, Data: data, SSE: frame(m.Seq, KindMessage, data), At: at}
}

// NotificationEvent encodes a new notification for its recipient.
func NotificationEvent(n *models.NotificationRow, at time.Time) *Event {
	data := mustJSON(ViewNotification(n))
	return &Event{Kind: KindNotification, MeshID: n.MeshID, TopicID: n.TopicID, Recipient: n.RecipientMemberID, Data: data,
		SSE: frame(0, KindNotification, data), At: at}
}

// PresenceEvent encodes a presence change for every subscriber of a mesh.
func PresenceEvent(meshID string, view any, at time.Time) *Event {
	data := mustJSON(view)
	return &Event{Kind: KindPresence, MeshID: meshID, Data: data, SSE: frame(0, KindPresence, data), At: at}
}
