package models

import (
	"context"
	"fmt"
	"time"
)

// HelloMember loads what a WebSocket hello is checked against: the member
// (revoked or not) and its mesh. An unknown member is ErrNotFound.
func (s *Store) HelloMember(ctx context.Context, meshID, memberID string) (*Member, *Mesh, error) {
	if !ValidID(meshID) || !ValidID(memberID) {
		return nil, nil, notFound("member")
	}
	m, err := s.MemberInMesh(ctx, meshID, memberID)
	if err != nil {
		return nil, nil, err
	}
	mesh, err := s.MeshByID(ctx, meshID)
	if err != nil {
		return nil, nil, err
	}
	return m, mesh, nil
}

// SessionCheck is what a broker re-reads about each session it serves, to
// close connections whose member was revoked, whose mesh was archived,
// whose key changed or whose session moved to another connection, and to
// learn status changes made elsewhere (a hook on another broker).
type SessionCheck struct {
	PresenceID     string
	ConnID         string
	Status         string
	StatusSource   string
	Summary        string
	DisconnectedAt *time.Time
	RevokedAt      *time.Time
	ArchivedAt     *time.Time
	Pubkey         string
}

// CheckSessions returns the current state of the given sessions and, with
// touch, first stamps their last_seen_at (the broker serving them is
// alive). It works in chunks of 500, so a pass costs a few queries per
// broker, never one per connection.
func (s *Store) CheckSessions(ctx context.Context, presenceIDs []string, touch bool) ([]SessionCheck, error) {
	now := s.nowUTC()
	var out []SessionCheck
	for _, ids := range chunks(presenceIDs, 500) {
		if touch {
			if err := s.db.WithContext(ctx).Exec("UPDATE presence SET last_seen_at = ? WHERE id IN ? AND disconnected_at IS NULL", now, ids).Error; err != nil {
				return nil, fmt.Errorf("heartbeat sessions: %w", err)
			}
		}
		var rows []SessionCheck
		err := s.db.WithContext(ctx).Raw(`SELECT p.id AS presence_id, p.conn_id, p.status, p.status_source, p.summary, p.disconnected_at,
			m.revoked_at, m.peer_pubkey AS pubkey, s.archived_at
			FROM presence p JOIN members m ON m.id = p.member_id JOIN meshes s ON s.id = p.mesh_id WHERE p.id IN ?`, ids).Scan(&rows).Error
		if err != nil {
			return nil, fmt.Errorf("check sessions: %w", err)
		}
		out = append(out, rows...)
	}
	return out, nil
}

// SweepInput tunes one presence sweep.
type SweepInput struct {
	StatusTTL time.Duration // STATUS_TTL_SECONDS
	// StaleAfter disconnects sessions of other brokers not heartbeated for
	// this long (their broker died); Node is this broker, whose own
	// sessions are heartbeated by the caller instead.
	StaleAfter time.Duration
	Node       string
}

// SweepPresence flips sessions stuck in working longer than StatusTTL to
// idle (source jsonl; dnd stays), disconnects sessions whose broker stopped
// heartbeating, and forgets old disconnected sessions and stale hook
// signals. It returns the sessions whose visible presence changed.
func (s *Store) SweepPresence(ctx context.Context, in SweepInput) ([]PresenceRow, error) {
	now := s.nowUTC()
	db := s.db.WithContext(ctx)
	var changed []string
	var working []Presence
	if err := db.Where("disconnected_at IS NULL AND status = ? AND status_at < ?", StatusWorking, now.Add(-in.StatusTTL)).
		Order("id").Limit(1000).Find(&working).Error; err != nil {
		return nil, fmt.Errorf("find stuck sessions: %w", err)
	}
	for _, p := range working {
		next, ok := ExpireWorking(p.state(), now, in.StatusTTL)
		if !ok {
			continue
		}
		// Guarded on the state read, so a status set meanwhile wins and two
		// brokers sweeping at once flip a session once.
		res := db.Exec("UPDATE presence SET status = ?, status_source = ?, status_at = ? WHERE id = ? AND status = ? AND status_at = ?",
			next.Status, next.Source, next.At, p.ID, p.Status, p.StatusAt)
		if res.Error != nil {
			return nil, fmt.Errorf("expire working status: %w", res.Error)
		}
		if res.RowsAffected == 1 {
			changed = append(changed, p.ID)
		}
	}
	if in.StaleAfter > 0 {
		var stale []Presence
		if err := db.Where("disconnected_at IS NULL AND last_seen_at < ? AND node_id <> ?", now.Add(-in.StaleAfter), in.Node).
			Order("id").Limit(1000).Find(&stale).Error; err != nil {
			return nil, fmt.Errorf("find stale sessions: %w", err)
		}
		for _, p := range stale {
			if _, ok, err := s.DisconnectSession(ctx, p.ID, p.ConnID, "stale"); err != nil {
				return nil, err
			} else if ok {
				changed = append(changed, p.ID)
			}
		}
	}
	if err := db.Where("received_at < ?", now.Add(-HookStashWindow)).Delete(&statusSignal{}).Error; err != nil {
		return nil, fmt.Errorf("forget hook signals: %w", err)
	}
	if err := db.Where("disconnected_at < ?", now.Add(-presenceKeep)).Delete(&Presence{}).Error; err != nil {
		return nil, fmt.Errorf("forget old sessions: %w", err)
	}
	var out []PresenceRow
	for _, ids := range chunks(changed, 500) {
		var rows []PresenceRow
		if err := presenceRows(db).Where("p.id IN ?", ids).Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("load swept sessions: %w", err)
		}
		out = append(out, rows...)
	}
	return out, nil
}

// ListPeers pages the connected sessions of the caller's mesh, across every
// broker (the database is the truth).
func (s *Store) ListPeers(ctx context.Context, p *Principal, pr PageRequest) (Page[PresenceRow], error) {
	if !p.Can(CapRead) {
		return Page[PresenceRow]{}, E(KindForbidden, "capability_required", "listing peers needs the \"read\" capability")
	}
	limit, after, err := pr.normalise()
	if err != nil {
		return Page[PresenceRow]{}, err
	}
	q := presenceRows(s.db.WithContext(ctx)).Where("p.mesh_id = ? AND p.disconnected_at IS NULL AND m.revoked_at IS NULL", p.MeshID)
	if after != "" {
		q = q.Where("p.id > ?", after)
	}
	var rows []PresenceRow
	if err := q.Order("p.id").Limit(limit + 1).Scan(&rows).Error; err != nil {
		return Page[PresenceRow]{}, fmt.Errorf("list peers: %w", err)
	}
	return cut(rows, limit, func(r PresenceRow) string { return r.ID }), nil
}

// OnlinePeers lists every connected session of a mesh (list_peers and
// broadcast), capped at 10,000.
func (s *Store) OnlinePeers(ctx context.Context, meshID string) ([]PresenceRow, error) {
	var rows []PresenceRow
	err := presenceRows(s.db.WithContext(ctx)).Where("p.mesh_id = ? AND p.disconnected_at IS NULL AND m.revoked_at IS NULL", meshID).
		Order("p.id").Limit(10_000).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("online peers: %w", err)
	}
	return rows, nil
}
