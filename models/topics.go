package models

import (
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Topic visibilities.
const (
	VisibilityPublic  = "public"
	VisibilityPrivate = "private"
	VisibilityDM      = "dm"
)

// Topic member roles.
const (
	TopicRoleLead     = "lead"
	TopicRoleMember   = "member"
	TopicRoleObserver = "observer"
)

// Topic is a named conversation inside a mesh.
type Topic struct {
	ID                 string `gorm:"primaryKey"`
	MeshID             string
	Name               string
	Description        string
	Visibility         string
	EncryptedKeyPubkey *string
	CreatedByMemberID  *string
	CreatedAt          time.Time
	ArchivedAt         *time.Time
}

// TopicMember subscribes a member to a topic.
type TopicMember struct {
	TopicID     string `gorm:"primaryKey"`
	MemberID    string `gorm:"primaryKey"`
	Role        string
	JoinedAt    time.Time
	LastReadSeq int64
}

// ensureGeneral returns the mesh's general topic, creating it if missing.
func (s *Store) ensureGeneral(tx *gorm.DB, meshID, creatorID string) (*Topic, error) {
	var t Topic
	err := tx.Where("mesh_id = ? AND name = ?", meshID, GeneralTopic).Take(&t).Error
	if err == nil {
		return &t, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("find general topic: %w", err)
	}
	cid := creatorID
	t = Topic{ID: NewID(), MeshID: meshID, Name: GeneralTopic, Description: "Everyone in the mesh",
		Visibility: VisibilityPublic, CreatedByMemberID: &cid, CreatedAt: s.nowUTC()}
	if err := tx.Create(&t).Error; err != nil {
		return nil, fmt.Errorf("create general topic: %w", err)
	}
	return &t, nil
}
