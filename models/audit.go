package models

import (
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

// appendAudit adds an event to the mesh's chain inside tx. Taking the next
// seq with an UPDATE locks the mesh row, so appends to one mesh serialise and
// the chain has no forks.
func (s *Store) appendAudit(tx *gorm.DB, meshID, kind, actorID, target string, meta map[string]any) error {
	var seq int64
	if err := tx.Raw("UPDATE meshes SET last_audit_seq = last_audit_seq + 1 WHERE id = ? RETURNING last_audit_seq", meshID).Scan(&seq).Error; err != nil {
		return fmt.Errorf("audit seq: %w", err)
	}
	if seq == 0 {
		return fmt.Errorf("audit seq: mesh %s not found", meshID)
	}
	prev, err := auditPrevHash(tx, meshID, seq)
	if err != nil {
		return err
	}
	_, err = s.writeAudit(tx, meshID, seq, prev, kind, actorID, target, meta)
	return err
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

// writeAudit inserts the event with an already-allocated seq and returns its hash.
func (s *Store) writeAudit(tx *gorm.DB, meshID string, seq int64, prev, kind, actorID, target string, meta map[string]any) (string, error) {
	if meta == nil {
		meta = map[string]any{}
	}
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return "", fmt.Errorf("audit metadata: %w", err)
	}
	ev := AuditEvent{ID: NewID(), MeshID: meshID, Seq: seq, Kind: kind, Target: target, Metadata: string(metaJSON), CreatedAt: s.nowUTC(), PrevHash: prev}
	if actorID != "" {
		a := actorID
		ev.ActorMemberID = &a
	}
	ev.Hash = ev.computeHash()
	if err := tx.Create(&ev).Error; err != nil {
		return "", fmt.Errorf("insert audit event: %w", err)
	}
	return ev.Hash, nil
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
