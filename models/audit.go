package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Audit event kinds recorded so far.
const (
	AuditMeshCreated     = "mesh.created"
	AuditOwnerBackfilled = "member.owner_backfilled"
	AuditMemberJoined    = "member.joined"
	AuditMemberRevoked   = "member.revoked"
	AuditInviteCreated   = "invite.created"
	AuditKeyCreated      = "api_key.created"
	AuditKeyRevoked      = "api_key.revoked"

	AuditTopicCreated       = "topic.created"
	AuditTopicArchived      = "topic.archived"
	AuditTopicJoined        = "topic.joined"
	AuditTopicMemberAdded   = "topic.member_added"
	AuditTopicMemberRemoved = "topic.member_removed"
	AuditTopicKeyClaimed    = "topic.key_claimed"
	AuditTopicSealed        = "topic.sealed"
	AuditPubkeyChanged      = "member.pubkey_changed"
	AuditMessageSent        = "message.sent"
	AuditTopicKeyRotated    = "topic.key_rotated"

	AuditInviteRevoked     = "invite.revoked"
	AuditMeshRenamed       = "mesh.renamed"
	AuditMeshArchived      = "mesh.archived"
	AuditMemberLeft        = "member.left"
	AuditMemberRoleChanged = "member.role_changed"
)

// AuditEvent is one link of a mesh's hash-chained audit log. Metadata holds
// ids and sizes only, never message bodies or secrets.
type AuditEvent struct {
	ID            string `gorm:"primaryKey"`
	MeshID        string
	Seq           int64
	Kind          string
	ActorMemberID *string
	Target        string
	Metadata      string
	CreatedAt     time.Time
	PrevHash      string
	Hash          string
}

// genesisHash is the prev_hash of a mesh's first audit event.
var genesisHash = strings.Repeat("0", 64)

// auditIn is one event to append to a mesh's chain. meta is marshalled to
// JSON (a struct or a map; ids and sizes only, never bodies or secrets).
type auditIn struct {
	kind, actor, target string
	meta                any
}

// appendAudit adds one event to the mesh's chain inside tx.
func (s *Store) appendAudit(tx *gorm.DB, meshID, kind, actorID, target string, meta map[string]any) error {
	in := auditIn{kind: kind, actor: actorID, target: target}
	if meta != nil {
		in.meta = meta // a nil map in an interface would marshal as null
	}
	return s.appendAudits(tx, meshID, []auditIn{in})
}

// appendAudits appends events to one mesh's chain inside tx with a single
// seq allocation and one multi-row insert, so a batch of deliveries or acks
// costs one mesh-row lock, not one per row. Taking the seqs with an UPDATE
// locks the mesh row, so appends to one mesh serialise and the chain has no
// forks.
func (s *Store) appendAudits(tx *gorm.DB, meshID string, in []auditIn) error {
	if len(in) == 0 {
		return nil
	}
	if err := s.step("audit_chain"); err != nil {
		return err
	}
	n := int64(len(in))
	var last int64
	if err := tx.Raw("UPDATE meshes SET last_audit_seq = last_audit_seq + ? WHERE id = ? RETURNING last_audit_seq", n, meshID).Scan(&last).Error; err != nil {
		return fmt.Errorf("audit seq: %w", err)
	}
	if last == 0 {
		return fmt.Errorf("audit seq: mesh %s not found", meshID)
	}
	return s.writeAuditChain(tx, meshID, last-n+1, s.nowUTC(), in)
}

// writeAuditChain is the one writer of audit rows: it links events whose
// seqs (firstSeq, firstSeq+1, …) the caller has allocated under the mesh
// row lock to the previous event's hash and inserts them in one statement.
func (s *Store) writeAuditChain(tx *gorm.DB, meshID string, firstSeq int64, at time.Time, in []auditIn) error {
	prev, err := auditPrevHash(tx, meshID, firstSeq)
	if err != nil {
		return err
	}
	evs, err := chainAudit(meshID, prev, firstSeq, at, in)
	if err != nil {
		return err
	}
	// In runs: a group commit's events can pass SQLite's bind-parameter limit.
	for _, chunk := range auditChunks(evs) {
		if err := tx.Create(&chunk).Error; err != nil {
			return fmt.Errorf("insert audit events: %w", err)
		}
	}
	return nil
}

// chainAudit builds the events of in with seqs from firstSeq, each linked
// to the hash before it, the first to prev. Every chain link is made here.
func chainAudit(meshID, prev string, firstSeq int64, at time.Time, in []auditIn) ([]AuditEvent, error) {
	evs := make([]AuditEvent, len(in))
	for i, e := range in {
		meta := e.meta
		if meta == nil {
			meta = struct{}{}
		}
		raw, err := json.Marshal(meta)
		if err != nil {
			return nil, fmt.Errorf("audit metadata: %w", err)
		}
		evs[i] = AuditEvent{ID: NewID(), MeshID: meshID, Seq: firstSeq + int64(i), Kind: e.kind, Target: e.target, Metadata: string(raw),
			CreatedAt: at, PrevHash: prev}
		if e.actor != "" {
			a := e.actor
			evs[i].ActorMemberID = &a
		}
		evs[i].Hash = evs[i].computeHash()
		prev = evs[i].Hash
	}
	return evs, nil
}

// auditPrevHash reads the hash of the event before seq (genesis for seq 1).
func auditPrevHash(tx *gorm.DB, meshID string, seq int64) (string, error) {
	if seq <= 1 {
		return genesisHash, nil
	}
	var prev string
	if err := tx.Raw("SELECT hash FROM audit_events WHERE mesh_id = ? AND seq = ?", meshID, seq-1).Scan(&prev).Error; err != nil {
		return "", fmt.Errorf("audit prev hash: %w", err)
	}
	if prev == "" {
		return "", fmt.Errorf("audit chain of mesh %s has no event %d", meshID, seq-1)
	}
	return prev, nil
}

// computeHash is SHA-256 over a fixed, newline-joined rendering of every
// field but the hash itself, so editing any column breaks the chain.
func (e *AuditEvent) computeHash() string {
	actor := ""
	if e.ActorMemberID != nil {
		actor = *e.ActorMemberID
	}
	msg := strings.Join([]string{"claudemesh-audit-v1", e.PrevHash, e.ID, e.MeshID, strconv.FormatInt(e.Seq, 10), e.Kind, actor,
		e.Target, e.Metadata, e.CreatedAt.UTC().Format(time.RFC3339Nano)}, "\n")
	sum := sha256.Sum256([]byte(msg))
	return hex.EncodeToString(sum[:])
}

// AuditBreak describes the first event of a mesh's chain that does not
// verify.
type AuditBreak struct {
	MeshID string
	Seq    int64
	Reason string
}

// VerifyAudit walks every mesh's audit chain in seq order and returns the
// first broken link of each broken mesh: a missing seq (deleted row), a
// prev_hash that is not the previous hash, or a hash that does not match
// the row (edited row).
func (s *Store) VerifyAudit(ctx context.Context) ([]AuditBreak, int64, error) {
	var meshIDs []string
	if err := s.db.WithContext(ctx).Model(&Mesh{}).Order("id").Pluck("id", &meshIDs).Error; err != nil {
		return nil, 0, fmt.Errorf("list meshes: %w", err)
	}
	var (
		breaks  []AuditBreak
		checked int64
	)
	for _, meshID := range meshIDs {
		broken, n, err := s.VerifyMeshAudit(ctx, meshID)
		if err != nil {
			return nil, 0, err
		}
		checked += n
		if broken != nil {
			breaks = append(breaks, *broken)
		}
	}
	return breaks, checked, nil
}

// VerifyMeshAudit walks one mesh's chain; it returns the first broken link
// (nil when the chain is whole) and how many events it checked.
func (s *Store) VerifyMeshAudit(ctx context.Context, meshID string) (*AuditBreak, int64, error) {
	var checked int64
	prev, want := genesisHash, int64(1)
	var last int64
	if err := s.db.WithContext(ctx).Raw("SELECT last_audit_seq FROM meshes WHERE id = ?", meshID).Scan(&last).Error; err != nil {
		return nil, 0, fmt.Errorf("read last audit seq: %w", err)
	}
	var broken *AuditBreak
	for broken == nil {
		var evs []AuditEvent
		if err := s.db.WithContext(ctx).Where("mesh_id = ? AND seq >= ?", meshID, want).Order("seq").Limit(1000).Find(&evs).Error; err != nil {
			return nil, 0, fmt.Errorf("read audit events: %w", err)
		}
		if len(evs) == 0 {
			break
		}
		for i := range evs {
			ev := &evs[i]
			checked++
			switch {
			case ev.Seq != want:
				broken = &AuditBreak{meshID, want, "event missing (deleted?)"}
			case ev.PrevHash != prev:
				broken = &AuditBreak{meshID, ev.Seq, "prev_hash does not match the previous event"}
			case ev.computeHash() != ev.Hash:
				broken = &AuditBreak{meshID, ev.Seq, "hash does not match the row (edited?)"}
			}
			if broken != nil {
				break
			}
			prev, want = ev.Hash, want+1
		}
	}
	if broken == nil && want-1 != last {
		broken = &AuditBreak{meshID, want, fmt.Sprintf("chain ends at %d but the mesh counted %d events (deleted?)", want-1, last)}
	}
	return broken, checked, nil
}

// ListAudit pages a mesh's audit events by seq, oldest first, after the
// given seq. Events carry metadata only (ids, sizes, roles), never a body.
func (s *Store) ListAudit(ctx context.Context, p *Principal, after int64, limit int) ([]AuditEvent, bool, error) {
	if !p.Can(CapAdmin) {
		return nil, false, E(KindForbidden, "admin_required", "the audit log needs the admin capability")
	}
	if err := authorityOf(p, nil).meshWide(); err != nil {
		return nil, false, err // the log names every topic's events
	}
	if after < 0 {
		return nil, false, E(KindBadRequest, "invalid_query", "after must be a seq")
	}
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	limit = min(limit, MaxPageLimit)
	var evs []AuditEvent
	if err := s.db.WithContext(ctx).Where("mesh_id = ? AND seq > ?", p.MeshID, after).Order("seq").Limit(limit + 1).Find(&evs).Error; err != nil {
		return nil, false, fmt.Errorf("list audit events: %w", err)
	}
	more := len(evs) > limit
	if more {
		evs = evs[:limit]
	}
	return evs, more, nil
}

// auditRowsPerInsert bounds one audit_events INSERT (10 columns a row) below
// SQLite's 32,766 and PostgreSQL's 65,535 bind parameters.
const auditRowsPerInsert = 2000

func auditChunks(evs []AuditEvent) [][]AuditEvent {
	var out [][]AuditEvent
	for len(evs) > 0 {
		n := min(len(evs), auditRowsPerInsert)
		out = append(out, evs[:n:n])
		evs = evs[n:]
	}
	return out
}
