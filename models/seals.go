package models

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
)

// TopicMemberKey is one member's sealed copy of a topic key (seed 003):
// base64(sender x25519 pub ‖ crypto_box(topic key)). It is valid while
// SealedForPubkey equals the member's current pubkey; a member whose pubkey
// changed is pending again until someone re-seals for the new key.
type TopicMemberKey struct {
	ID               string `gorm:"primaryKey"`
	TopicID          string
	MemberID         string
	Epoch            int // the topic key epoch this seal carries
	EncryptedKey     string
	Nonce            string
	SealedForPubkey  string
	SealedByMemberID string
	CreatedAt        time.Time
	RotatedAt        *time.Time
}

// SealInput is a sealed topic key as a client submits it.
type SealInput struct {
	EncryptedKey string
	Nonce        string
	// KeyEpoch is the epoch the caller believes current (0: not stated). A
	// stated epoch that is not current is refused, so a key cached before a
	// rotation is never stored as the new epoch's.
	KeyEpoch int
}

// epochMismatch refuses a seal or claim made for another epoch.
func epochMismatch(topic string, stated, current int) error {
	e := E(KindConflict, "key_epoch_mismatch", "#%s is at key epoch %d, not %d: fetch the current key (or claim it) and try again", topic, current, stated)
	e.Extra = map[string]any{"keyEpoch": current}
	return e
}

// checkSeal validates the blob and that its inline sender key is the
// sealer's own x25519 key, so no member can pass a seal off as another's.
func checkSeal(sealerPubkey string, in SealInput) (senderX25519Hex string, err error) {
	if n, err := meshcrypto.DecodeBase64(in.Nonce); err != nil || len(n) != NonceBytes {
		return "", Invalid(FieldError{"nonce", "must be canonical standard base64 of exactly 24 bytes"})
	}
	if err := meshcrypto.ValidSealBlob(in.EncryptedKey, in.Nonce); err != nil {
		return "", Invalid(FieldError{"encryptedKey", err.Error()})
	}
	blob, _ := base64.StdEncoding.DecodeString(in.EncryptedKey)
	pub, err := meshcrypto.ParsePublicKeyHex(sealerPubkey)
	var want [32]byte
	if err == nil {
		want, err = meshcrypto.Ed25519PublicKeyToX25519(pub)
	}
	if err != nil {
		return "", E(KindConflict, "unusable_pubkey", "your member pubkey cannot be converted to x25519; set a valid ed25519 key first")
	}
	if hex.EncodeToString(blob[:32]) != hex.EncodeToString(want[:]) {
		return "", Invalid(FieldError{"encryptedKey", "its sender key is not the x25519 form of your member pubkey"})
	}
	return hex.EncodeToString(blob[:32]), nil
}

// MyTopicKey returns the caller's seal for its current pubkey, of the
// topic's current key epoch or (epoch > 0) of an earlier one, so a member
// can open history written before a rotation.
func (s *Store) MyTopicKey(ctx context.Context, p *Principal, topic string, epoch int) (*TopicMemberKey, *Topic, error) {
	if epoch < 0 {
		return nil, nil, E(KindBadRequest, "invalid_query", "epoch must be a positive integer")
	}
	db := s.db.WithContext(ctx)
	ta, err := s.topicFor(db, p, topic)
	if err != nil {
		return nil, nil, err
	}
	if epoch == 0 {
		epoch = ta.Topic.KeyEpoch
	}
	var k TopicMemberKey
	err = db.Where("topic_id = ? AND member_id = ? AND epoch = ? AND sealed_for_pubkey = ?", ta.Topic.ID, p.MemberID, epoch, p.Pubkey).Take(&k).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, E(KindNotFound, "seal_not_found", "no sealed key of #%s (epoch %d) for your current pubkey; ask a key holder to seal it", ta.Topic.Name, epoch)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("find seal: %w", err)
	}
	return &k, &ta.Topic, nil
}

// ClaimKey makes the caller the first keyer of an unkeyed topic, or of the
// current epoch of a rotated one: the epoch's key pubkey and the caller's
// own seal commit together, and a second claimer loses with the winner's
// pubkey.
func (s *Store) ClaimKey(ctx context.Context, p *Principal, topic string, in SealInput) (*TopicMemberKey, error) {
	if !p.Can(CapSend) {
		return nil, E(KindForbidden, "capability_required", "claiming a key needs the \"send\" capability")
	}
	senderHex, err := checkSeal(p.Pubkey, in)
	if err != nil {
		return nil, err
	}
	var out TopicMemberKey
	err = s.tx(ctx, func(tx *gorm.DB) error {
		ta, err := s.topicFor(tx, p, topic)
		if err != nil {
			return err
		}
		if ta.Membership == nil || ta.Membership.Role == TopicRoleObserver {
			return errNotTopicMem
		}
		if ta.Topic.ArchivedAt != nil {
			return E(KindConflict, "topic_archived", "#%s is archived", ta.Topic.Name)
		}
		if in.KeyEpoch != 0 && in.KeyEpoch != max(ta.Topic.KeyEpoch, 1) {
			return epochMismatch(ta.Topic.Name, in.KeyEpoch, max(ta.Topic.KeyEpoch, 1))
		}
		// Guarded by the epoch read above too: a rotation committed since
		// must not receive a key claimed for the epoch before it.
		res := tx.Exec("UPDATE topics SET encrypted_key_pubkey = ?, key_epoch = CASE WHEN key_epoch = 0 THEN 1 ELSE key_epoch END WHERE id = ? AND encrypted_key_pubkey IS NULL AND key_epoch = ?",
			senderHex, ta.Topic.ID, ta.Topic.KeyEpoch)
		if res.Error != nil {
			return fmt.Errorf("claim topic key: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			var winner string
			if err := tx.Raw("SELECT encrypted_key_pubkey FROM topics WHERE id = ?", ta.Topic.ID).Scan(&winner).Error; err != nil {
				return fmt.Errorf("read topic key: %w", err)
			}
			e := E(KindConflict, "topic_already_keyed", "#%s already has a key; fetch your sealed copy or wait to be sealed", ta.Topic.Name)
			e.Extra = map[string]any{"keyPubkey": winner}
			return e
		}
		if err := s.step("claim_key"); err != nil {
			return err
		}
		epoch := max(ta.Topic.KeyEpoch, 1)
		out = TopicMemberKey{ID: NewID(), TopicID: ta.Topic.ID, MemberID: p.MemberID, Epoch: epoch, EncryptedKey: in.EncryptedKey, Nonce: in.Nonce,
			SealedForPubkey: p.Pubkey, SealedByMemberID: p.MemberID, CreatedAt: s.nowUTC()}
		if err := tx.Create(&out).Error; err != nil {
			return fmt.Errorf("insert claimer seal: %w", err)
		}
		return s.appendAudit(tx, p.MeshID, AuditTopicKeyClaimed, p.MemberID, ta.Topic.ID, map[string]any{"keyPubkey": senderHex, "keyEpoch": epoch})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// PendingSeal is a topic member waiting for a seal of its current pubkey.
type PendingSeal struct {
	MemberID    string
	DisplayName string
	Pubkey      string
}

// PendingSeals pages, by member id, the live topic members with no seal of
// the current key epoch for their current pubkey. Unkeyed topics have
// nothing to seal; removed members are not topic members, so never listed.
func (s *Store) PendingSeals(ctx context.Context, p *Principal, topic string, pr PageRequest) (Page[PendingSeal], error) {
	if !p.Can(CapRead) {
		return Page[PendingSeal]{}, E(KindForbidden, "capability_required", "this needs the \"read\" capability")
	}
	db := s.db.WithContext(ctx)
	ta, err := s.topicFor(db, p, topic)
	if err != nil {
		return Page[PendingSeal]{}, err
	}
	limit, after, err := pr.normalise()
	if err != nil {
		return Page[PendingSeal]{}, err
	}
	if !ta.Topic.Keyed() {
		return Page[PendingSeal]{Items: []PendingSeal{}}, nil
	}
	q := db.Table("topic_members AS tm").
		Select("m.id AS member_id, m.display_name, m.peer_pubkey AS pubkey").
		Joins("JOIN members m ON m.id = tm.member_id").
		Where("tm.topic_id = ? AND m.revoked_at IS NULL", ta.Topic.ID).
		Where("NOT EXISTS (SELECT 1 FROM topic_member_keys k WHERE k.topic_id = tm.topic_id AND k.member_id = m.id AND k.epoch = ? AND k.sealed_for_pubkey = m.peer_pubkey)",
			ta.Topic.KeyEpoch)
	if after != "" {
		q = q.Where("m.id > ?", after)
	}
	var rows []PendingSeal
	if err := q.Order("m.id").Limit(limit + 1).Scan(&rows).Error; err != nil {
		return Page[PendingSeal]{}, fmt.Errorf("pending seals: %w", err)
	}
	return cut(rows, limit, func(r PendingSeal) string { return r.MemberID }), nil
}

// Seal stores a sealed topic key for another topic member. Only a member
// holding a valid seal may seal; the recipient must be a live topic member;
// a valid seal (one for the recipient's current pubkey) is never
// overwritten.
func (s *Store) Seal(ctx context.Context, p *Principal, topic, recipientID string, in SealInput) (*TopicMemberKey, error) {
	if !p.Can(CapSend) {
		return nil, E(KindForbidden, "capability_required", "sealing needs the \"send\" capability")
	}
	if !ValidID(recipientID) {
		return nil, Invalid(FieldError{"memberId", "must be a member id"})
	}
	if _, err := checkSeal(p.Pubkey, in); err != nil {
		return nil, err
	}
	var out TopicMemberKey
	err := s.tx(ctx, func(tx *gorm.DB) error {
		ta, err := s.topicFor(tx, p, topic)
		if err != nil {
			return err
		}
		if !ta.Topic.KeyClaimed() {
			return E(KindConflict, "topic_not_keyed", "#%s has no key for epoch %d yet; claim it first", ta.Topic.Name, ta.Topic.KeyEpoch)
		}
		if in.KeyEpoch != 0 && in.KeyEpoch != ta.Topic.KeyEpoch {
			return epochMismatch(ta.Topic.Name, in.KeyEpoch, ta.Topic.KeyEpoch)
		}
		var held int64
		if err := tx.Model(&TopicMemberKey{}).Where("topic_id = ? AND member_id = ? AND epoch = ? AND sealed_for_pubkey = ?", ta.Topic.ID, p.MemberID, ta.Topic.KeyEpoch, p.Pubkey).
			Count(&held).Error; err != nil {
			return fmt.Errorf("check sealer: %w", err)
		}
		if ta.Membership == nil || held == 0 {
			return E(KindForbidden, "not_key_holder", "only a topic member holding the key may seal it for others")
		}
		var rcpt struct {
			PeerPubkey string
		}
		err = tx.Raw(`SELECT m.peer_pubkey FROM members m JOIN topic_members tm ON tm.member_id = m.id AND tm.topic_id = ?
			WHERE m.id = ? AND m.mesh_id = ? AND m.revoked_at IS NULL`, ta.Topic.ID, recipientID, p.MeshID).Scan(&rcpt).Error
		if err != nil {
			return fmt.Errorf("find recipient: %w", err)
		}
		if rcpt.PeerPubkey == "" {
			return Invalid(FieldError{"memberId", "is not a live member of this topic"})
		}
		out = TopicMemberKey{ID: NewID(), TopicID: ta.Topic.ID, MemberID: recipientID, Epoch: ta.Topic.KeyEpoch, EncryptedKey: in.EncryptedKey, Nonce: in.Nonce,
			SealedForPubkey: rcpt.PeerPubkey, SealedByMemberID: p.MemberID, CreatedAt: s.nowUTC()}
		if err := tx.Create(&out).Error; err != nil {
			if isUniqueViolation(err) {
				return E(KindConflict, "seal_exists", "that member already holds a valid seal for its current pubkey")
			}
			return fmt.Errorf("insert seal: %w", err)
		}
		return s.appendAudit(tx, p.MeshID, AuditTopicSealed, p.MemberID, recipientID, map[string]any{"topicId": ta.Topic.ID, "keyEpoch": ta.Topic.KeyEpoch})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// SetPeerPubkey replaces a member's identity pubkey: its own, or any
// member's for an admin. Seals made for the old key stop counting, so the
// member is pending again in every keyed topic.
func (s *Store) SetPeerPubkey(ctx context.Context, p *Principal, memberID, pubkey string) (*Member, error) {
	pubkey = strings.ToLower(pubkey)
	if !validPubkey(pubkey) {
		return nil, Invalid(FieldError{"pubkey", "must be a 64-character hex ed25519 public key"})
	}
	if memberID == "" {
		memberID = p.MemberID
	}
	// Swapping the identity key redirects every future seal, so a leaked
	// ordinary API key must not be able to do it: only the member's own
	// session token (minted by its user) or an admin credential may.
	// Replacing an identity key hands the caller that member's whole
	// identity: its /ws session with every capability of its role, and every
	// future seal and direct message. So a member's own key is replaced only
	// with a whole credential (its session token, or an admin key that holds
	// everything, unscoped: a leaked ordinary key must not take the
	// identity over), and another member's only by an unscoped admin
	// credential that holds at least that member's capabilities, never for
	// another admin (an admin may reset a member who lost their key, not
	// become another admin).
	auth := authorityOf(p, nil)
	switch {
	case memberID == p.MemberID && p.APIKeyID != "" && !p.Can(CapAdmin):
		return nil, E(KindForbidden, "admin_required", "changing a pubkey needs a member session token or an admin key")
	case memberID == p.MemberID:
		if err := auth.whole(); err != nil {
			return nil, err
		}
	case !p.Can(CapAdmin):
		return nil, E(KindForbidden, "admin_required", "only an admin may change another member's pubkey")
	default:
		if err := auth.meshWide(); err != nil {
			return nil, err
		}
	}
	var m Member
	err := s.tx(ctx, func(tx *gorm.DB) error {
		found, err := s.MemberInMeshTx(tx, p.MeshID, memberID)
		if err != nil {
			return err
		}
		if found.ID != p.MemberID {
			if found.Role == RoleAdmin {
				return E(KindForbidden, "admin_target", "an admin's identity key can be changed only by that admin")
			}
			if err := auth.grant(CapsForRole(found.Role), nil); err != nil {
				return err
			}
		}
		m = *found
		if m.PeerPubkey == pubkey {
			return nil
		}
		old := m.PeerPubkey
		if err := tx.Model(&Member{}).Where("id = ?", m.ID).Update("peer_pubkey", pubkey).Error; err != nil {
			if isUniqueViolation(err) {
				return E(KindConflict, "pubkey_taken", "another member of this mesh has this pubkey")
			}
			return fmt.Errorf("set pubkey: %w", err)
		}
		m.PeerPubkey = pubkey
		return s.appendAudit(tx, p.MeshID, AuditPubkeyChanged, p.MemberID, m.ID, map[string]any{"old": old, "new": pubkey})
	})
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// Reasons a topic key epoch ends (audit metadata).
const (
	RotateMemberRemoved = "member_removed"
	RotateMemberRevoked = "member_revoked"
	RotateMemberLeft    = "member_left"
	RotateExplicit      = "explicit"
)

// rotateTopicKey starts the next key epoch of a keyed topic whose current
// epoch has been claimed: the epoch goes up by one and its key is unclaimed
// until a remaining member claims it (claim-key) and seals it for the
// others. Old seals stay, so members keep opening the history they could
// open before. A topic that was never keyed, or whose current epoch nobody
// holds yet, needs no new epoch; it reports its epoch unchanged.
func (s *Store) rotateTopicKey(tx *gorm.DB, meshID, actorID, topicID, reason string) (int, error) {
	res := tx.Exec("UPDATE topics SET key_epoch = key_epoch + 1, encrypted_key_pubkey = NULL WHERE id = ? AND key_epoch > 0 AND encrypted_key_pubkey IS NOT NULL", topicID)
	if res.Error != nil {
		return 0, fmt.Errorf("rotate topic key: %w", res.Error)
	}
	var epoch int
	if err := tx.Raw("SELECT key_epoch FROM topics WHERE id = ?", topicID).Scan(&epoch).Error; err != nil {
		return 0, fmt.Errorf("read key epoch: %w", err)
	}
	if res.RowsAffected == 0 {
		return epoch, nil
	}
	return epoch, s.appendAudit(tx, meshID, AuditTopicKeyRotated, actorID, topicID, map[string]any{"keyEpoch": epoch, "reason": reason})
}

// rotateKeysOf starts a new key epoch in every keyed topic the member
// belongs to (revocation and leaving: the member holds those keys).
func (s *Store) rotateKeysOf(tx *gorm.DB, meshID, actorID, memberID, reason string) error {
	var ids []string
	if err := tx.Raw(`SELECT t.id FROM topics t JOIN topic_members tm ON tm.topic_id = t.id
		WHERE tm.member_id = ? AND t.mesh_id = ? AND t.key_epoch > 0 AND t.encrypted_key_pubkey IS NOT NULL ORDER BY t.id`, memberID, meshID).
		Scan(&ids).Error; err != nil {
		return fmt.Errorf("keyed topics of member: %w", err)
	}
	for _, id := range ids {
		if _, err := s.rotateTopicKey(tx, meshID, actorID, id, reason); err != nil {
			return err
		}
	}
	return nil
}

// RotateTopicKey is the explicit rotation (a mesh admin or the topic's
// lead): it starts a new key epoch and returns the topic.
func (s *Store) RotateTopicKey(ctx context.Context, p *Principal, topic string) (*TopicAccess, error) {
	var out TopicAccess
	err := s.tx(ctx, func(tx *gorm.DB) error {
		ta, err := s.topicFor(tx, p, topic)
		if err != nil {
			return err
		}
		if !p.Can(CapAdmin) && (ta.Membership == nil || ta.Membership.Role != TopicRoleLead) {
			return E(KindForbidden, "lead_required", "only a topic lead or a mesh admin may rotate a topic key")
		}
		switch {
		case ta.Topic.ArchivedAt != nil:
			return E(KindConflict, "topic_archived", "#%s is archived", ta.Topic.Name)
		case !ta.Topic.Keyed():
			return E(KindConflict, "topic_not_keyed", "#%s has no key to rotate", ta.Topic.Name)
		}
		if _, err := s.rotateTopicKey(tx, p.MeshID, p.MemberID, ta.Topic.ID, RotateExplicit); err != nil {
			return err
		}
		// The answer shows the topic as the caller sees it, membership included.
		out.Membership = ta.Membership
		return tx.Where("id = ?", ta.Topic.ID).Take(&out.Topic).Error
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}
