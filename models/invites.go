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
	TokenPrefix       string // the token's first characters, for admins to tell invites apart
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
	// inviteTokenPrefixLen keeps "cmi_" and 6 of the 43 random characters:
	// enough to tell invites apart, far too little to guess the rest.
	inviteTokenPrefixLen = 10
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
		if p.TopicScopes != nil {
			return nil, errScopedCredential
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

// CreateInvite mints an invite on behalf of an admin member (authorised by
// AuthorizeMeshAdmin) for the caller p, who may be the user behind it. The
// invite's role may not carry a capability the caller does not hold.
func (s *Store) CreateInvite(ctx context.Context, p *Principal, admin *Member, in CreateInviteInput) (*Invite, string, error) {
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
	// An invite opens the whole mesh with its role's capabilities.
	if err := authorityOf(p, admin).grant(CapsForRole(in.Role), nil); err != nil {
		return nil, "", err
	}
	token := randomToken("cmi_")
	now := s.nowUTC()
	mid := admin.ID
	inv := &Invite{ID: NewID(), MeshID: admin.MeshID, TokenHash: hashSecret(token), TokenPrefix: token[:inviteTokenPrefixLen], Role: in.Role, MaxUses: in.MaxUses,
		ExpiresAt: now.Add(in.ExpiresIn), CreatedByMemberID: &mid, CreatedAt: now}
	if p.IsUser() {
		uid := p.UserID
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
	// UserID links the new member to a signed-in dashboard user (a join made
	// with a user token). The user's first member in the mesh becomes its
	// dashboard member; a later one (a CLI peer of the same person) is
	// linked by user_id only.
	UserID string
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
			return errInviteRevoked
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
		if in.UserID != "" {
			uid := in.UserID
			out.Member.UserID = &uid
			var dash int64
			if err := tx.Model(&Member{}).Where("mesh_id = ? AND dashboard_user_id = ? AND revoked_at IS NULL", inv.MeshID, uid).Count(&dash).Error; err != nil {
				return fmt.Errorf("find dashboard member: %w", err)
			}
			if dash == 0 {
				out.Member.DashboardUserID = &uid
			}
		}
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
			map[string]any{"inviteId": inv.ID, "role": out.Member.Role, "linkedToUser": in.UserID != ""})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

var errInviteRevoked = E(KindGone, "invite_revoked", "this invite was revoked")

// InviteRow is an invite as its mesh's admins list it: never the token.
type InviteRow struct {
	Invite
	CreatedByDisplayName *string
}

// ListInvites pages a mesh's invites by id (admins only; the caller has
// been authorised by AuthorizeMeshAdmin).
func (s *Store) ListInvites(ctx context.Context, admin *Member, pr PageRequest) (Page[InviteRow], error) {
	limit, after, err := pr.normalise()
	if err != nil {
		return Page[InviteRow]{}, err
	}
	q := s.db.WithContext(ctx).Table("invites AS i").
		Select("i.*, m.display_name AS created_by_display_name").
		Joins("LEFT JOIN members m ON m.id = i.created_by_member_id").
		Where("i.mesh_id = ?", admin.MeshID)
	if after != "" {
		q = q.Where("i.id > ?", after)
	}
	var rows []InviteRow
	if err := q.Order("i.id").Limit(limit + 1).Scan(&rows).Error; err != nil {
		return Page[InviteRow]{}, fmt.Errorf("list invites: %w", err)
	}
	return cut(rows, limit, func(r InviteRow) string { return r.ID }), nil
}

// RevokeInvite revokes an invite of the admin's mesh; joins with it fail
// at once with 410 invite_revoked. Revoking twice is a no-op.
func (s *Store) RevokeInvite(ctx context.Context, admin *Member, inviteID string) error {
	if !ValidID(inviteID) {
		return notFound("invite")
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		var inv Invite
		err := s.forUpdate(tx.Where("id = ? AND mesh_id = ?", inviteID, admin.MeshID)).Take(&inv).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return notFound("invite")
		}
		if err != nil {
			return fmt.Errorf("find invite: %w", err)
		}
		if inv.RevokedAt != nil {
			return nil
		}
		if err := tx.Model(&Invite{}).Where("id = ?", inv.ID).Update("revoked_at", s.nowUTC()).Error; err != nil {
			return fmt.Errorf("revoke invite: %w", err)
		}
		return s.appendAudit(tx, inv.MeshID, AuditInviteRevoked, admin.ID, inv.ID, map[string]any{"prefix": inv.TokenPrefix})
	})
}

// InvitePreview is what anyone holding an invite token may see before
// joining.
type InvitePreview struct {
	MeshName           string
	InviterDisplayName *string
	Role               string
	ExpiresAt          time.Time
	UsesLeft           int
}

// PreviewInvite shows an invite without spending a use. Unknown tokens are
// 404; revoked, expired and used-up ones 410, as a join would answer.
func (s *Store) PreviewInvite(ctx context.Context, token string) (*InvitePreview, error) {
	if token == "" || len(token) > 128 {
		return nil, E(KindNotFound, "invite_not_found", "no such invite")
	}
	var row struct {
		Invite
		MeshName       string
		MeshArchivedAt *time.Time
		InviterName    *string
	}
	err := s.db.WithContext(ctx).Table("invites AS i").
		Select("i.*, s.name AS mesh_name, s.archived_at AS mesh_archived_at, m.display_name AS inviter_name").
		Joins("JOIN meshes s ON s.id = i.mesh_id").
		Joins("LEFT JOIN members m ON m.id = i.created_by_member_id").
		Where("i.token_hash = ?", hashSecret(token)).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, E(KindNotFound, "invite_not_found", "no such invite")
	}
	if err != nil {
		return nil, fmt.Errorf("find invite: %w", err)
	}
	switch {
	case row.RevokedAt != nil:
		return nil, errInviteRevoked
	case !s.nowUTC().Before(row.ExpiresAt):
		return nil, E(KindGone, "invite_expired", "this invite has expired")
	case row.MeshArchivedAt != nil:
		return nil, E(KindGone, "mesh_archived", "this mesh is archived")
	case row.Uses >= row.MaxUses:
		return nil, E(KindGone, "invite_used_up", "this invite has no uses left")
	}
	return &InvitePreview{MeshName: row.MeshName, InviterDisplayName: row.InviterName, Role: row.Role, ExpiresAt: row.ExpiresAt,
		UsesLeft: row.MaxUses - row.Uses}, nil
}
