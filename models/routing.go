package models

import (
	"time"
)

// Audit event kinds of peer routing (ws/). Their metadata carries ids,
// sizes, priorities and times only, never a body.
const (
	AuditPeerConnected    = "peer.connected"
	AuditPeerDisconnected = "peer.disconnected"
	AuditDirectQueued     = "message.queued"
	AuditDirectDelivered  = "message.delivered"
	AuditDirectAcked      = "message.acked"
	AuditDirectExpired    = "message.expired"
)

// Now is the store's clock (UTC, microseconds). The WebSocket server reads
// it too, so one injected clock drives every time rule in tests.
func (s *Store) Now() time.Time { return s.nowUTC() }

// chunks splits ids into slices of at most n, keeping IN lists bounded.
func chunks(ids []string, n int) [][]string {
	var out [][]string
	for len(ids) > n {
		out = append(out, ids[:n:n])
		ids = ids[n:]
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}
