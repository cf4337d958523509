package stream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/claudemesh/claudemesh-go/models"
)

// subjectPrefix + mesh id is where a mesh's commits travel between nodes;
// presencePrefix + mesh id carries its coalesced presence batches, and
// eventPrefix + mesh id single presence events from older nodes.
const (
	subjectPrefix  = "claudemesh.mesh."
	eventPrefix    = "claudemesh.event."
	presencePrefix = "claudemesh.presence."
)

// Bridge carries commits between broker nodes over core NATS. Delivery is
// best effort by design: the database is the history, so a lost NATS
// message becomes a seq gap that the hub fills from the database (on the
// next commit, on the reconciler's next tick, or when the link comes back).
type Bridge struct {
	nc    *nats.Conn
	sub   *nats.Subscription
	evsub *nats.Subscription
	prsub *nats.Subscription
	hub   *Hub
	node  string
	log   *slog.Logger
	// connected is true while the link is up; everUp once it has been up,
	// which tells "connecting" (never reached yet) from "down" (lost).
	connected, everUp atomic.Bool
	// ctx ends with Close: it bounds the catch-up reads started on connect.
	ctx    context.Context
	cancel context.CancelFunc
}

// The link states /ready reports.
const (
	NATSConnected  = "connected"
	NATSConnecting = "connecting" // not reached since start
	NATSDown       = "down"       // reached once, lost now
)

// wire is the NATS payload: the commit and the node that made it (a node
// ignores its own commits, which it delivered locally already).
type wire struct {
	Node   string           `json:"node"`
	Commit models.Committed `json:"commit"`
}

// wireEvent is a live-only event on the bus (one presence change; what
// nodes before presence batches send).
type wireEvent struct {
	Node   string          `json:"node"`
	Kind   string          `json:"kind"`
	MeshID string          `json:"meshId"`
	Data   json.RawMessage `json:"data"`
}

// wireBatch is a coalesced presence batch on the bus: the latest view of
// every session that changed in one window.
type wireBatch struct {
	Node   string            `json:"node"`
	MeshID string            `json:"meshId"`
	Views  []json.RawMessage `json:"views"`
}

// reconnectDelay backs off from 250 ms to 5 s between rounds of attempts,
// with the client's jitter on top, so a fleet restarting during a NATS
// outage does not hammer it in step.
func reconnectDelay(attempts int) time.Duration {
	return min(250*time.Millisecond<<min(attempts, 5), 5*time.Second)
}

// StartBridge starts the link to NATS and returns at once, whether or not
// NATS answers yet: the broker serves its own clients from the first
// moment, and the link is made (and remade after a loss) in the
// background. Each time it comes up, the hub first catches up from the
// database (Reconcile), which fills every seq the other nodes committed
// while this one could not hear them. Only a malformed URL is an error.
func StartBridge(url string, hub *Hub, log *slog.Logger) (*Bridge, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	ctx, cancel := context.WithCancel(context.Background())
	br := &Bridge{node: hex.EncodeToString(b[:]), hub: hub, log: log, ctx: ctx, cancel: cancel}
	up := func(first bool) func(*nats.Conn) {
		return func(*nats.Conn) {
			br.connected.Store(true)
			br.everUp.Store(true)
			hub.metrics.nats.Set(1)
			if first {
				log.Info("nats connected; catching up from the database")
			} else {
				log.Info("nats reconnected; catching up from the database")
			}
			go br.catchUp()
		}
	}
	nc, err := nats.Connect(url, nats.Name("claudemesh-broker"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.ConnectHandler(up(true)), nats.ReconnectHandler(up(false)),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			br.connected.Store(false)
			hub.metrics.nats.Set(0)
			if err != nil {
				log.Warn("nats disconnected; the database reconciler covers the gap", slog.String("error", err.Error()))
			}
		}))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("connect to NATS_URL: %w", err)
	}
	if nc.IsConnected() {
		// Connected on the first try: say so now (/ready right after start)
		// rather than when the asynchronous ConnectHandler runs.
		br.connected.Store(true)
		br.everUp.Store(true)
		hub.metrics.nats.Set(1)
	}
	br.nc = nc
	// Subscriptions made before the link is up are sent when it comes up.
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
	if err == nil {
		br.prsub, err = nc.Subscribe(presencePrefix+"*", func(m *nats.Msg) {
			var w wireBatch
			if err := json.Unmarshal(m.Data, &w); err != nil || w.Node == br.node || w.MeshID == "" || len(w.Views) == 0 {
				return
			}
			views := make([][]byte, len(w.Views))
			for i, v := range w.Views {
				views[i] = v
			}
			hub.PublishLocal(presenceBatch(w.MeshID, views, time.Now()))
		})
	}
	if err != nil {
		cancel()
		nc.Close()
		return nil, fmt.Errorf("subscribe to NATS: %w", err)
	}
	hub.SetForward(br.publish, br.publishEvent)
	return br, nil
}

// catchUp runs the reconciler once, so commits made on other nodes while
// the link was down reach this node's subscribers now rather than on the
// next tick.
func (b *Bridge) catchUp() {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	b.hub.Reconcile(ctx)
}

// State is the link's state for /ready: NATSConnected, NATSConnecting or
// NATSDown.
func (b *Bridge) State() string {
	switch {
	case b.connected.Load():
		return NATSConnected
	case b.everUp.Load():
		return NATSDown
	default:
		return NATSConnecting
	}
}

func (b *Bridge) publishEvent(e *Event) {
	var data []byte
	var err error
	subject := eventPrefix + e.MeshID
	if e.views != nil {
		views := make([]json.RawMessage, len(e.views))
		for i, v := range e.views {
			views[i] = v
		}
		subject = presencePrefix + e.MeshID
		data, err = json.Marshal(wireBatch{Node: b.node, MeshID: e.MeshID, Views: views})
	} else {
		data, err = json.Marshal(wireEvent{Node: b.node, Kind: e.Kind, MeshID: e.MeshID, Data: e.Data})
	}
	if err == nil {
		err = b.nc.Publish(subject, data)
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

// Close drains the subscriptions and closes the connection.
func (b *Bridge) Close() {
	b.cancel()
	_ = b.sub.Unsubscribe()
	_ = b.evsub.Unsubscribe()
	_ = b.prsub.Unsubscribe()
	b.nc.Close()
}
