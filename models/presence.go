package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// Session statuses and the sources that report them (SPEC §8).
const (
	StatusIdle    = "idle"
	StatusWorking = "working"
	StatusDND     = "dnd"

	SourceHook   = "hook"
	SourceManual = "manual"
	SourceJSONL  = "jsonl"
)

// Presence bounds.
const (
	// HookStashWindow is how long a hook signal that beat its session's
	// hello is kept for that hello.
	HookStashWindow = 10 * time.Second
	maxSummaryRunes = 500
	maxCwdBytes     = 4096
	// presenceKeep is how long a disconnected session's row is kept.
	presenceKeep = 24 * time.Hour
)

// Presence is one connected (or recently connected) session of a member. A
// member may run several sessions; each has its own status.
type Presence struct {
	ID             string `gorm:"primaryKey"`
	MeshID         string
	MemberID       string
	SessionID      string
	NodeID         string
	Pid            *int
	Cwd            string
	Status         string
	StatusSource   string
	StatusAt       time.Time
	Summary        string
	ConnectedAt    time.Time
	LastSeenAt     time.Time
	DisconnectedAt *time.Time
	// ConnID is the connection serving the session now; queue claims are
	// tied to it.
	ConnID string
}

// TableName is the singular table of SPEC §4.
func (Presence) TableName() string { return "presence" }

// PresenceRow is a session with its member's name and key.
type PresenceRow struct {
	Presence
	DisplayName string
	Pubkey      string
}

// ---- the rules, as pure functions of the state and an injected time ----

// StatusState is what the status rules read from a session.
type StatusState struct {
	Status string
	Source string
	At     time.Time
}

// StatusSignal is one report of a session's status.
type StatusSignal struct {
	Status string
	Source string
}

func sourceRank(src string) int {
	switch src {
	case SourceHook:
		return 3
	case SourceManual:
		return 2
	case SourceJSONL:
		return 1
	}
	return 0
}

// DecideStatus applies a signal to a session's status (the upstream rules):
// a changed status always applies; an unchanged status from a source ranked
// at least as high (hook > manual > jsonl) refreshes it; from a lower source
// it takes over only once the recorded one is older than fresh. Do-not-
// disturb is lifted only by a person (manual): never by a hook, and never
// by jsonl inference either, which is what the sweeper (also jsonl) obeys.
func DecideStatus(cur StatusState, sig StatusSignal, now time.Time, fresh time.Duration) (StatusState, bool) {
	next := StatusState{Status: sig.Status, Source: sig.Source, At: now}
	switch {
	case cur.Status == StatusDND && sig.Status != StatusDND && sig.Source != SourceManual:
		return cur, false
	case sig.Status != cur.Status:
		return next, true
	case sourceRank(sig.Source) >= sourceRank(cur.Source), now.Sub(cur.At) > fresh:
		return next, true
	}
	return cur, false
}

// ExpireWorking is the sweeper's rule: a session stuck in working longer
// than ttl is idle again (source jsonl). Other statuses, dnd included, stay.
func ExpireWorking(cur StatusState, now time.Time, ttl time.Duration) (StatusState, bool) {
	if cur.Status != StatusWorking || now.Sub(cur.At) <= ttl {
		return cur, false
	}
	return StatusState{Status: StatusIdle, Source: SourceJSONL, At: now}, true
}

// Deliverable reports whether a queued message of the priority may be
// pushed to a session in the status: idle takes everything, working and dnd
// only "now".
func Deliverable(status, priority string) bool {
	return status == StatusIdle || priority == PriorityNow
}

// DeliverablePriorities lists the priorities a session in status receives.
func DeliverablePriorities(status string) []string {
	if status == StatusIdle {
		return []string{PriorityNow, PriorityNext, PriorityLow}
	}
	return []string{PriorityNow}
}

// StashFresh reports whether a stashed hook signal received at receivedAt
// may still be applied at now.
func StashFresh(receivedAt, now time.Time) bool {
	return !receivedAt.After(now) && now.Sub(receivedAt) <= HookStashWindow
}

// MatchHookSession picks the connected session a hook signal is for: the
// one with the same (pid, cwd), else the newest with the same cwd; nil when
// none (the signal is then stashed for the session's hello).
func MatchHookSession(sessions []Presence, pid int, cwd string) *Presence {
	var exact, sameCwd *Presence
	for i := range sessions {
		p := &sessions[i]
		if p.DisconnectedAt != nil || p.Cwd != cwd {
			continue
		}
		if p.Pid != nil && *p.Pid == pid && (exact == nil || p.ConnectedAt.After(exact.ConnectedAt)) {
			exact = p
		}
		if sameCwd == nil || p.ConnectedAt.After(sameCwd.ConnectedAt) {
			sameCwd = p
		}
	}
	if exact != nil {
		return exact
	}
	return sameCwd
}

func (p *Presence) state() StatusState {
	return StatusState{Status: p.Status, Source: p.StatusSource, At: p.StatusAt}
}

// ---- validation ----

func validStatus(s string) bool { return s == StatusIdle || s == StatusWorking || s == StatusDND }

func validSource(s string) bool { return sourceRank(s) > 0 }

func checkSummary(summary *string, fe []FieldError) []FieldError {
	if summary != nil {
		if e := checkText("summary", *summary, 0, maxSummaryRunes, true); e != nil {
			fe = append(fe, *e)
		}
	}
	return fe
}

// ValidCwd reports a working directory we store: valid UTF-8, no NUL, at
// most 4096 bytes.
func ValidCwd(cwd string) bool {
	return len(cwd) <= maxCwdBytes && utf8.ValidString(cwd) && !strings.ContainsRune(cwd, 0)
}

// ---- sessions ----

// ConnectInput is a session saying hello.
type ConnectInput struct {
	MeshID, MemberID, SessionID, NodeID, ConnID string
	Pid                                         *int
	Cwd                                         string
	// FreshWindow is HOOK_FRESH_WINDOW_SECONDS, for a stashed hook signal.
	FreshWindow time.Duration
}

var errSessionRace = errors.New("session row raced")

// ConnectSession records a session's connection: its row is created or taken
// over by this connection (a reconnect keeps dnd, anything else starts
// idle), a hook signal stashed for it in the last 10 s is applied, and the
// connect is audited.
func (s *Store) ConnectSession(ctx context.Context, in ConnectInput) (*PresenceRow, error) {
	var id string
	var err error
	for range 2 { // a concurrent first hello of the same session inserts once
		id, err = s.connectSession(ctx, in)
		if !errors.Is(err, errSessionRace) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return s.presenceRow(s.db.WithContext(ctx), id)
}

func (s *Store) connectSession(ctx context.Context, in ConnectInput) (string, error) {
	now := s.nowUTC()
	var cur Presence
	err := s.tx(ctx, func(tx *gorm.DB) error {
		err := s.forUpdate(tx.Where("member_id = ? AND session_id = ?", in.MemberID, in.SessionID)).Take(&cur).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			cur = Presence{ID: NewID(), MeshID: in.MeshID, MemberID: in.MemberID, SessionID: in.SessionID, NodeID: in.NodeID, Pid: in.Pid,
				Cwd: in.Cwd, Status: StatusIdle, StatusSource: SourceJSONL, StatusAt: now, ConnectedAt: now, LastSeenAt: now, ConnID: in.ConnID}
			if err := tx.Create(&cur).Error; err != nil {
				if isUniqueViolation(err) {
					return errSessionRace
				}
				return fmt.Errorf("insert session: %w", err)
			}
		case err != nil:
			return fmt.Errorf("find session: %w", err)
		default:
			if cur.Status != StatusDND {
				cur.Status, cur.StatusSource, cur.StatusAt = StatusIdle, SourceJSONL, now
			}
			cur.NodeID, cur.Pid, cur.Cwd, cur.ConnID, cur.ConnectedAt, cur.LastSeenAt, cur.DisconnectedAt = in.NodeID, in.Pid, in.Cwd, in.ConnID, now, now, nil
			if err := tx.Select("node_id", "pid", "cwd", "conn_id", "connected_at", "last_seen_at", "disconnected_at", "status", "status_source", "status_at").
				Save(&cur).Error; err != nil {
				return fmt.Errorf("take over session: %w", err)
			}
		}
		if err := s.applyStash(tx, &cur, in.FreshWindow, now); err != nil {
			return err
		}
		return s.appendAudits(tx, in.MeshID, []auditIn{{AuditPeerConnected, in.MemberID, cur.ID,
			map[string]any{"sessionId": in.SessionID, "connId": in.ConnID, "node": in.NodeID}}})
	})
	return cur.ID, err
}

// statusSignal is a hook signal waiting for its session's hello.
type statusSignal struct {
	ID         string `gorm:"primaryKey"`
	MeshID     string
	MemberID   string
	Pid        int
	Cwd        string
	Status     string
	Summary    string
	ReceivedAt time.Time
}

func (statusSignal) TableName() string { return "status_signals" }

// applyStash applies the newest fresh hook signal stashed for the session's
// cwd (one with the same pid first) and drops the session's stash.
func (s *Store) applyStash(tx *gorm.DB, p *Presence, fresh time.Duration, now time.Time) error {
	var sigs []statusSignal
	if err := tx.Where("member_id = ? AND cwd = ? AND received_at >= ?", p.MemberID, p.Cwd, now.Add(-HookStashWindow)).
		Order("received_at DESC").Limit(32).Find(&sigs).Error; err != nil {
		return fmt.Errorf("read stashed hook signals: %w", err)
	}
	var pick *statusSignal
	for i := range sigs {
		if !StashFresh(sigs[i].ReceivedAt, now) {
			continue
		}
		if pick == nil || (p.Pid != nil && sigs[i].Pid == *p.Pid && (pick.Pid != *p.Pid)) {
			pick = &sigs[i]
		}
	}
	if pick == nil {
		return nil
	}
	if next, ok := DecideStatus(p.state(), StatusSignal{Status: pick.Status, Source: SourceHook}, now, fresh); ok {
		p.Status, p.StatusSource, p.StatusAt = next.Status, next.Source, next.At
		if pick.Summary != "" {
			p.Summary = pick.Summary
		}
		if err := tx.Select("status", "status_source", "status_at", "summary").Save(p).Error; err != nil {
			return fmt.Errorf("apply stashed hook signal: %w", err)
		}
	}
	if err := tx.Where("member_id = ? AND cwd = ?", p.MemberID, p.Cwd).Delete(&statusSignal{}).Error; err != nil {
		return fmt.Errorf("drop stashed hook signals: %w", err)
	}
	return nil
}

// DisconnectSession marks a session disconnected, if connID still serves
// it (a reconnect may have taken it over), and audits it. It reports
// whether anything changed.
func (s *Store) DisconnectSession(ctx context.Context, presenceID, connID, reason string) (*PresenceRow, bool, error) {
	changed := false
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var cur Presence
		err := s.forUpdate(tx.Where("id = ? AND conn_id = ? AND disconnected_at IS NULL", presenceID, connID)).Take(&cur).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("find session: %w", err)
		}
		now := s.nowUTC()
		if err := tx.Model(&Presence{}).Where("id = ?", cur.ID).Update("disconnected_at", now).Error; err != nil {
			return fmt.Errorf("disconnect session: %w", err)
		}
		changed = true
		return s.appendAudits(tx, cur.MeshID, []auditIn{{AuditPeerDisconnected, cur.MemberID, cur.ID, map[string]any{"sessionId": cur.SessionID,
			"connId": connID, "reason": reason, "seconds": int64(now.Sub(cur.ConnectedAt).Seconds())}}})
	})
	if err != nil || !changed {
		return nil, false, err
	}
	row, err := s.presenceRow(s.db.WithContext(ctx), presenceID)
	return row, err == nil, err
}

// SetSessionStatus applies a set_status from the session's own connection.
// It reports whether the visible presence changed.
func (s *Store) SetSessionStatus(ctx context.Context, presenceID string, sig StatusSignal, summary *string, fresh time.Duration) (*PresenceRow, bool, error) {
	var fe []FieldError
	if !validStatus(sig.Status) {
		fe = append(fe, FieldError{"status", "must be idle, working or dnd"})
	}
	if !validSource(sig.Source) {
		fe = append(fe, FieldError{"source", "must be hook, manual or jsonl"})
	}
	if fe = checkSummary(summary, fe); fe != nil {
		return nil, false, Invalid(fe...)
	}
	changed := false
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var cur Presence
		if err := s.forUpdate(tx.Where("id = ?", presenceID)).Take(&cur).Error; err != nil {
			return fmt.Errorf("find session: %w", err)
		}
		var err error
		_, changed, err = s.applySignal(tx, &cur, sig, summary, fresh)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	row, err := s.presenceRow(s.db.WithContext(ctx), presenceID)
	return row, changed, err
}

// applySignal runs DecideStatus on a locked row and writes the result. It
// reports whether the rules accepted the signal and whether the visible
// presence (status, source, summary) changed.
func (s *Store) applySignal(tx *gorm.DB, cur *Presence, sig StatusSignal, summary *string, fresh time.Duration) (applied, changed bool, err error) {
	before := *cur
	next, ok := DecideStatus(cur.state(), sig, s.nowUTC(), fresh)
	if !ok {
		return false, false, nil
	}
	cur.Status, cur.StatusSource, cur.StatusAt = next.Status, next.Source, next.At
	if summary != nil {
		cur.Summary = *summary
	}
	if err := tx.Select("status", "status_source", "status_at", "summary").Save(cur).Error; err != nil {
		return false, false, fmt.Errorf("set status: %w", err)
	}
	return true, before.Status != cur.Status || before.StatusSource != cur.StatusSource || before.Summary != cur.Summary, nil
}

// HookInput is a Claude Code hook's report: POST /hook/set-status.
type HookInput struct {
	Status  string
	Pid     int
	Cwd     string
	Summary *string
}

// HookResult says what a hook signal did.
type HookResult struct {
	Session *PresenceRow // the matched session, nil when stashed
	Applied bool         // the rules accepted the signal
	Changed bool         // the visible presence changed
	Stashed bool         // no session yet: kept for its hello
}

// HookStatus applies a hook signal to one of the caller's own sessions,
// matched by (pid, cwd), else the newest with that cwd; with none connected
// it is stashed for HookStashWindow. Nobody else's sessions are reachable.
func (s *Store) HookStatus(ctx context.Context, p *Principal, in HookInput, fresh time.Duration) (*HookResult, error) {
	if !p.Can(CapStateWrite) {
		return nil, E(KindForbidden, "capability_required", "setting status needs the \"state_write\" capability")
	}
	var fe []FieldError
	if !validStatus(in.Status) {
		fe = append(fe, FieldError{"status", "must be idle, working or dnd"})
	}
	if in.Pid < 1 {
		fe = append(fe, FieldError{"pid", "must be a process id (a positive integer)"})
	}
	if in.Cwd == "" || !ValidCwd(in.Cwd) {
		fe = append(fe, FieldError{"cwd", "must be a non-empty path of at most 4096 bytes of UTF-8 without NUL"})
	}
	if fe = checkSummary(in.Summary, fe); fe != nil {
		return nil, Invalid(fe...)
	}
	res := &HookResult{}
	var id string
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var sessions []Presence
		if err := s.forUpdate(tx.Where("mesh_id = ? AND member_id = ? AND cwd = ? AND disconnected_at IS NULL", p.MeshID, p.MemberID, in.Cwd)).
			Find(&sessions).Error; err != nil {
			return fmt.Errorf("find sessions: %w", err)
		}
		m := MatchHookSession(sessions, in.Pid, in.Cwd)
		if m == nil {
			res.Stashed = true
			sig := statusSignal{ID: NewID(), MeshID: p.MeshID, MemberID: p.MemberID, Pid: in.Pid, Cwd: in.Cwd, Status: in.Status, ReceivedAt: s.nowUTC()}
			if in.Summary != nil {
				sig.Summary = *in.Summary
			}
			if err := tx.Create(&sig).Error; err != nil {
				return fmt.Errorf("stash hook signal: %w", err)
			}
			return nil
		}
		id = m.ID
		var err error
		res.Applied, res.Changed, err = s.applySignal(tx, m, StatusSignal{Status: in.Status, Source: SourceHook}, in.Summary, fresh)
		return err
	})
	if err != nil || id == "" {
		return res, err
	}
	res.Session, err = s.presenceRow(s.db.WithContext(ctx), id)
	return res, err
}

// presenceRow loads one session with its member's name and key.
func (s *Store) presenceRow(db *gorm.DB, id string) (*PresenceRow, error) {
	var rows []PresenceRow
	if err := presenceRows(db).Where("p.id = ?", id).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	if len(rows) == 0 {
		return nil, notFound("session")
	}
	return &rows[0], nil
}

func presenceRows(db *gorm.DB) *gorm.DB {
	return db.Table("presence AS p").Select("p.*, m.display_name, m.peer_pubkey AS pubkey").Joins("JOIN members m ON m.id = p.member_id")
}
