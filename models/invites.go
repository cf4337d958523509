package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Invite lets up to MaxUses new members join a mesh until ExpiresAt. Only the
// SHA-256 of its token is stored; the token is shown once, at creation.
type Invite struct {
	ID                string `gorm:"primaryKey"`
	MeshID            string
	TokenHash         string
	Role              string
	MaxUses           int
	Uses              int
	ExpiresAt         time.Time
	CreatedByMemberID *string
	CreatedByUserID   *string
	CreatedAt         time.Time
	RevokedAt         *time.Time
}

// Invite bounds.
const (
	DefaultInviteTTL = 7 * 24 * time.Hour
	MaxInviteTTL     = 30 * 24 * time.Hour
	MinInviteTTL     = time.Minute
	MaxInviteUses    = 1000
)

// CreateInviteInput describes a new invite; zero values take the defaults.
type CreateInviteInput struct {
	Role      string
	MaxUses   int
	ExpiresIn time.Duration
}

// AuthorizeMeshAdmin returns the admin member through which the caller acts
// on meshID: a user's own admin membership, or a member principal of that
// mesh holding the admin capability. Meshes the caller cannot see are 404.
func (s *Store) AuthorizeMeshAdmin(ctx context.Context, p *Principal, meshID string) (*Member, error) {
	switch {
	case p.IsMember():
		if p.MeshID != meshID {
			return nil, notFound("mesh")
		}
		if !p.Can(CapAdmin) {
			return nil, E(KindForbidden, "admin_required", "this needs the admin capability")
		}
		return s.MemberInMesh(ctx, meshID, p.MemberID)
	case p.IsUser():
		m, err := s.MembershipFor(ctx, p.UserID, meshID)
		if err != nil {
			return nil, err
		}
		if m.Role != RoleAdmin {
			return nil, E(KindForbidden, "admin_required", "only mesh admins may do this")
		}
		return m, nil
	}
	return nil, ErrUnauthorized
}

// CreateInvite mints an invite on behalf of an admin member (and the user
// behind it, when the call came from the dashboard).
func (s *Store) CreateInvite(ctx context.Context, admin *Member, byUserID string, in CreateInviteInput) (*Invite, string, error) {
	if in.Role == "" {
		in.Role = RoleMember
	}
	if in.MaxUses == 0 {
		in.MaxUses = 1
	}
	if in.ExpiresIn == 0 {
		in.ExpiresIn = DefaultInviteTTL
	}
	var fe []FieldError
	if in.Role != RoleMember && in.Role != RoleAdmin {
		fe = append(fe, FieldError{"role", "must be member or admin"})
	}
	if in.MaxUses < 1 || in.MaxUses > MaxInviteUses {
		fe = append(fe, FieldError{"maxUses", fmt.Sprintf("must be 1 to %d", MaxInviteUses)})
	}
	if in.ExpiresIn < MinInviteTTL || in.ExpiresIn > MaxInviteTTL {
		fe = append(fe, FieldError{"expiresInSeconds", fmt.Sprintf("must be %d to %d", int(MinInviteTTL.Seconds()), int(MaxInviteTTL.Seconds()))})
	}
	if fe != nil {
		return nil, "", Invalid(fe...)
	}
	token := randomToken("cmi_")
	now := s.nowUTC()
	mid := admin.ID
	inv := &Invite{ID: NewID(), MeshID: admin.MeshID, TokenHash: hashSecret(token), Role: in.Role, MaxUses: in.MaxUses,
		ExpiresAt: now.Add(in.ExpiresIn), CreatedByMemberID: &mid, CreatedAt: now}
	if byUserID != "" {
		uid := byUserID
		inv.CreatedByUserID = &uid
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(inv).Error; err != nil {
			return fmt.Errorf("insert invite: %w", err)
		}
		return s.appendAudit(tx, inv.MeshID, AuditInviteCreated, admin.ID, inv.ID,
			map[string]any{"role": inv.Role, "maxUses": inv.MaxUses})
	})
	if err != nil {
		return nil, "", err
	}
	return inv, token, nil
}

// JoinInput is what a newcomer presents.
type JoinInput struct {
	Token       string
	Pubkey      string
	DisplayName string
}

// JoinResult is the new member and its first API key.
type JoinResult struct {
	Mesh      Mesh
	Member    Member
	Key       APIKey
	KeySecret string
}

// Join spends one use of an invite and creates the member, its general
// subscription and an API key, in one transaction. The use counter is
// incremented with a guarded UPDATE, so concurrent joins can never exceed
// MaxUses, and a failed join gives its use back by rolling back.
func (s *Store) Join(ctx context.Context, in JoinInput) (*JoinResult, error) {
	in.Pubkey = strings.ToLower(in.Pubkey)
	var fe []FieldError
	if in.Token == "" {
		fe = append(fe, FieldError{"token", "is required"})
	}
	if !validPubkey(in.Pubkey) {
		fe = append(fe, FieldError{"pubkey", "must be a 64-character hex ed25519 public key"})
	}
	if !validDisplayName(in.DisplayName) {
		fe = append(fe, FieldError{"displayName", "must match ^[a-z0-9][a-z0-9_-]{0,63}$"})
	}
	if fe != nil {
		return nil, Invalid(fe...)
	}
	var out JoinResult
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var inv Invite
		err := tx.Where("token_hash = ?", hashSecret(in.Token)).Take(&inv).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return E(KindNotFound, "invite_not_found", "no such invite")
		}
		if err != nil {
			return fmt.Errorf("find invite: %w", err)
		}
		now := s.nowUTC()
		if inv.RevokedAt != nil {
			return E(KindNotFound, "invite_not_found", "no such invite")
		}
		if !now.Before(inv.ExpiresAt) {
			return E(KindGone, "invite_expired", "this invite has expired")
		}
		if err := tx.Where("id = ?", inv.MeshID).Take(&out.Mesh).Error; err != nil {
			return fmt.Errorf("load mesh: %w", err)
		}
		if out.Mesh.ArchivedAt != nil {
			return E(KindGone, "mesh_archived", "this mesh is archived")
		}
		res := tx.Exec("UPDATE invites SET uses = uses + 1 WHERE id = ? AND uses < max_uses", inv.ID)
		if res.Error != nil {
			return fmt.Errorf("spend invite: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return E(KindGone, "invite_used_up", "this invite has no uses left")
		}
		out.Member = Member{ID: NewID(), MeshID: inv.MeshID, PeerPubkey: in.Pubkey, DisplayName: in.DisplayName, Role: inv.Role, JoinedAt: now}
		if err := tx.Create(&out.Member).Error; err != nil {
			if isUniqueViolation(err) {
				if strings.Contains(uniqueIndexOf(err), "pubkey") || strings.Contains(uniqueIndexOf(err), "peer_pubkey") {
					return E(KindConflict, "pubkey_taken", "a member of this mesh already has this public key")
				}
				return E(KindConflict, "display_name_taken", "display name %q is taken in this mesh", in.DisplayName)
			}
			return fmt.Errorf("insert member: %w", err)
		}
		creator := out.Member.ID
		if inv.CreatedByMemberID != nil {
			creator = *inv.CreatedByMemberID
		}
		general, err := s.ensureGeneral(tx, inv.MeshID, creator)
		if err != nil {
			return err
		}
		if err := tx.Create(&TopicMember{TopicID: general.ID, MemberID: out.Member.ID, Role: TopicRoleMember, JoinedAt: now}).Error; err != nil {
			return fmt.Errorf("subscribe to general: %w", err)
		}
		key, secret, err := s.insertAPIKey(tx, &out.Member, "join", CapsForRole(out.Member.Role), nil, nil)
		if err != nil {
			return err
		}
		out.Key, out.KeySecret = *key, secret
		return s.appendAudit(tx, inv.MeshID, AuditMemberJoined, out.Member.ID, out.Member.ID,
			map[string]any{"inviteId": inv.ID, "role": out.Member.Role})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}
