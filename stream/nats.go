package stream

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/claudemesh/claudemesh-go/models"
)

// subjectPrefix + mesh id is where a mesh's commits travel between nodes;
// eventPrefix + mesh id carries its live-only events (presence).
const (
	subjectPrefix = "claudemesh.mesh."
	eventPrefix   = "claudemesh.event."
)

// Bridge carries commits between broker nodes over core NATS. Delivery is
// best effort by design: the database is the history, so a lost NATS
// message becomes a seq gap that the hub fills from the database (on the
// next commit, or on the reconciler's next tick).
type Bridge struct {
	nc    *nats.Conn
	sub   *nats.Subscription
	evsub *nats.Subscription
	node  string
	log   *slog.Logger
}

// wire is the NATS payload: the commit and the node that made it (a node
// ignores its own commits, which it delivered locally already).
type wire struct {
	Node   string           `json:"node"`
	Commit models.Committed `json:"commit"`
}

// wireEvent is a live-only event on the bus.
type wireEvent struct {
	Node   string          `json:"node"`
	Kind   string          `json:"kind"`
	MeshID string          `json:"meshId"`
	Data   json.RawMessage `json:"data"`
}

// ConnectBridge connects to NATS, subscribes to every mesh's subject and
// makes the hub forward local commits. It keeps reconnecting forever.
func ConnectBridge(url string, hub *Hub, log *slog.Logger) (*Bridge, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	br := &Bridge{node: hex.EncodeToString(b[:]), log: log}
	nc, err := nats.Connect(url, nats.Name("claudemesh-broker"), nats.MaxReconnects(-1), nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected; the database reconciler covers the gap", slog.String("error", err.Error()))
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("nats reconnected") }))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS_URL: %w", err)
	}
	br.nc = nc
	br.sub, err = nc.Subscribe(subjectPrefix+"*", func(m *nats.Msg) {
		var w wire
		if err := json.Unmarshal(m.Data, &w); err != nil {
			log.Warn("nats: undecodable commit", slog.String("error", err.Error()))
			return
		}
		if w.Node == br.node || w.Commit.MeshID == "" {
			return
		}
		hub.Deliver(w.Commit)
	})
	if err == nil {
		br.evsub, err = nc.Subscribe(eventPrefix+"*", func(m *nats.Msg) {
			var w wireEvent
			if err := json.Unmarshal(m.Data, &w); err != nil || w.Node == br.node || w.MeshID == "" || w.Kind != KindPresence {
				return
			}
			hub.PublishLocal(&Event{Kind: w.Kind, MeshID: w.MeshID, Data: w.Data, SSE: frame(0, w.Kind, w.Data), At: time.Now()})
		})
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("subscribe to NATS: %w", err)
	}
	hub.SetForward(br.publish, br.publishEvent)
	return br, nil
}

func (b *Bridge) publishEvent(e *Event) {
	data, err := json.Marshal(wireEvent{Node: b.node, Kind: e.Kind, MeshID: e.MeshID, Data: e.Data})
	if err == nil {
		err = b.nc.Publish(eventPrefix+e.MeshID, data)
	}
	if err != nil {
		b.log.Warn("nats publish failed", slog.String("mesh", e.MeshID), slog.String("error", err.Error()))
	}
}

// Node is this broker's id on the bus.
func (b *Bridge) Node() string { return b.node }

func (b *Bridge) publish(c models.Committed) {
	data, err := json.Marshal(wire{Node: b.node, Commit: c})
	if err == nil {
		err = b.nc.Publish(subjectPrefix+c.MeshID, data)
	}
	if err != nil {
		// Not fatal: the other nodes fill the gap from the database.
		b.log.Warn("nats publish failed", slog.String("mesh", c.MeshID), slog.String("error", err.Error()))
	}
}

// Close drains the subscription and closes the connection.
func (b *Bridge) Close() {
	_ = b.sub.Unsubscribe()
	_ = b.evsub.Unsubscribe()
	b.nc.Close()
}
