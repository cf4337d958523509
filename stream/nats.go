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

// subjectPrefix + mesh id is where a mesh's commits travel between nodes.
const subjectPrefix = "claudemesh.mesh."

// Bridge carries commits between broker nodes over core NATS. Delivery is
// best effort by design: the database is the history, so a lost NATS
// message becomes a seq gap that the hub fills from the database (on the
// next commit, or on the reconciler's next tick).
type Bridge struct {
	nc   *nats.Conn
	sub  *nats.Subscription
	node string
	log  *slog.Logger
}

// wire is the NATS payload: the commit and the node that made it (a node
// ignores its own commits, which it delivered locally already).
type wire struct {
	Node   string           `json:"node"`
	Commit models.Committed `json:"commit"`
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
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("subscribe to NATS: %w", err)
	}
	hub.SetForward(br.publish)
	return br, nil
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
	b.nc.Close()
}
