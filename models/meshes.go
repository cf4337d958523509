package models

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Mesh is a group of members that talk to each other.
type Mesh struct {
	ID           string `gorm:"primaryKey"`
	Slug         string
	Name         string
	OwnerUserID  string
	LastSeq      int64
	LastAuditSeq int64
	CreatedAt    time.Time
	ArchivedAt   *time.Time
}

// TableName pins the plural GORM would otherwise guess as "meshes" anyway;
// stated so a rename of the type cannot move the table.
func (Mesh) TableName() string { return "meshes" }

// GeneralTopic is the topic every mesh starts with and every member joins.
const GeneralTopic = "general"

var slugRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,47}$`)

// CreateMeshInput is what createMyMesh needs from the user.
type CreateMeshInput struct {
	Name string
	Slug string // optional; derived from Name when empty
}

// CreatedMesh is the result of CreateMyMesh.
type CreatedMesh struct {
	Mesh   Mesh
	Member Member
	Topic  Topic
}

// CreateMyMesh creates, in one transaction, the mesh, the owner's member row
// (a fresh ed25519 identity whose secret is discarded: the dashboard signs
// nothing), the general topic, and the owner's lead subscription to it. A
// failure at any step leaves nothing behind (seed 000). The slug is the
// one given (409 slug_taken when the user already has it), or one derived
// from the name (Slugify) with -2, -3… added when the user already has it.
func (s *Store) CreateMyMesh(ctx context.Context, user *User, in CreateMeshInput) (*CreatedMesh, error) {
	in.Name = strings.TrimSpace(in.Name)
	var fe []FieldError
	if e := checkLabel("name", in.Name, 1, 100); e != nil {
		fe = append(fe, *e)
	}
	chosen := in.Slug != ""
	if chosen && !slugRe.MatchString(in.Slug) {
		fe = append(fe, FieldError{"slug", "must be 1 to 48 of a-z, 0-9 and -, starting with a letter or digit (^[a-z0-9][a-z0-9-]{0,47}$)"})
	}
	if fe != nil {
		return nil, Invalid(fe...)
	}
	base := in.Slug
	if !chosen {
		base = Slugify(in.Name)
	}
	// A slug the person chose is theirs to change (409); one derived from
	// the name is ours, so a collision with their own meshes gets a suffix.
	// Another create may take the free slug between the look and the
	// insert: look again, a few times.
	for attempt := 0; ; attempt++ {
		slug := base
		if !chosen {
			var err error
			if slug, err = s.freeSlug(ctx, user.ID, base); err != nil {
				return nil, err
			}
		}
		out, err := s.createMesh(ctx, user, in.Name, slug)
		if err == nil || chosen || attempt == 4 || !hasCode(err, "slug_taken") {
			return out, err
		}
	}
}

func hasCode(err error, code string) bool {
	e, ok := AsError(err)
	return ok && e.Code == code
}

// freeSlug returns base, or base-2, base-3… (cut so it fits MaxSlugLen):
// the first that none of the user's meshes, archived ones included, has.
func (s *Store) freeSlug(ctx context.Context, userID, base string) (string, error) {
	prefix := trimSlug(base, MaxSlugLen-5) // room for "-9999"
	var taken []string
	if err := s.db.WithContext(ctx).Model(&Mesh{}).Where("owner_user_id = ? AND slug LIKE ?", userID, prefix+"%").
		Pluck("slug", &taken).Error; err != nil {
		return "", fmt.Errorf("list slugs: %w", err)
	}
	if !slices.Contains(taken, base) {
		return base, nil
	}
	for n := 2; n <= 9999; n++ {
		suffix := fmt.Sprintf("-%d", n)
		if c := trimSlug(base, MaxSlugLen-len(suffix)) + suffix; !slices.Contains(taken, c) {
			return c, nil
		}
	}
	return trimSlug(base, MaxSlugLen-7) + "-" + randomSlugPart(6), nil
}

// createMesh is CreateMyMesh's transaction, with the slug settled.
func (s *Store) createMesh(ctx context.Context, user *User, name, slug string) (*CreatedMesh, error) {
	now := s.nowUTC()
	out := &CreatedMesh{Mesh: Mesh{ID: NewID(), Slug: slug, Name: name, OwnerUserID: user.ID, CreatedAt: now}}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(&out.Mesh).Error; err != nil {
			if isUniqueViolation(err) {
				return E(KindConflict, "slug_taken", "you already have a mesh with slug %q: choose another slug, or leave slug out to have one made from the name", slug)
			}
			return fmt.Errorf("insert mesh: %w", err)
		}
		if err := s.step("mesh"); err != nil {
			return err
		}
		m, t, err := s.createOwnerMember(tx, &out.Mesh, user)
		if err != nil {
			return err
		}
		out.Member, out.Topic = *m, *t
		return s.appendAudit(tx, out.Mesh.ID, AuditMeshCreated, m.ID, out.Mesh.ID, map[string]any{"slug": out.Mesh.Slug})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// createOwnerMember mints the owner's dashboard member row, makes sure the
// general topic exists and subscribes the owner to it as lead. Shared by
// CreateMyMesh and the backfill so both produce identical rows.
func (s *Store) createOwnerMember(tx *gorm.DB, mesh *Mesh, user *User) (*Member, *Topic, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate owner identity: %w", err)
	}
	name, err := freeDisplayName(tx, mesh.ID, ownerDisplayName(user))
	if err != nil {
		return nil, nil, err
	}
	now := s.nowUTC()
	uid := user.ID
	m := &Member{ID: NewID(), MeshID: mesh.ID, PeerPubkey: hex.EncodeToString(pub), DisplayName: name,
		Role: RoleAdmin, UserID: &uid, DashboardUserID: &uid, JoinedAt: now}
	if err := tx.Create(m).Error; err != nil {
		return nil, nil, fmt.Errorf("insert owner member: %w", err)
	}
	if err := s.step("member"); err != nil {
		return nil, nil, err
	}
	t, err := s.ensureGeneral(tx, mesh.ID, m.ID)
	if err != nil {
		return nil, nil, err
	}
	if err := s.step("topic"); err != nil {
		return nil, nil, err
	}
	tm := TopicMember{TopicID: t.ID, MemberID: m.ID, Role: TopicRoleLead, JoinedAt: now}
	if err := tx.Create(&tm).Error; err != nil {
		return nil, nil, fmt.Errorf("subscribe owner to general: %w", err)
	}
	if err := s.step("topic_member"); err != nil {
		return nil, nil, err
	}
	return m, t, nil
}

var nameCleanRe = regexp.MustCompile(`[^a-z0-9_-]+`)

// ownerDisplayName derives a mention-safe name from the account.
func ownerDisplayName(u *User) string {
	base := u.Name
	if base == "" {
		base, _, _ = strings.Cut(u.Email, "@")
	}
	n := strings.Trim(nameCleanRe.ReplaceAllString(strings.ToLower(base), "-"), "-_")
	if len(n) > 48 {
		n = n[:48]
	}
	if n == "" || !displayNameRe.MatchString(n) {
		n = "owner"
	}
	return n
}

// freeDisplayName returns base, or base-2, base-3… if taken by a live member.
func freeDisplayName(tx *gorm.DB, meshID, base string) (string, error) {
	for i := 1; i <= 20; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		var n int64
		if err := tx.Model(&Member{}).Where("mesh_id = ? AND display_name = ? AND revoked_at IS NULL", meshID, name).Count(&n).Error; err != nil {
			return "", fmt.Errorf("check display name: %w", err)
		}
		if n == 0 {
			return name, nil
		}
	}
	return base + "-" + NewID()[24:], nil
}

// ListMyMeshes pages the meshes a user owns or is a live member of.
func (s *Store) ListMyMeshes(ctx context.Context, userID string, p PageRequest) (Page[Mesh], error) {
	q := s.db.WithContext(ctx).Model(&Mesh{}).
		Where("owner_user_id = ? OR id IN (SELECT mesh_id FROM members WHERE revoked_at IS NULL AND (dashboard_user_id = ? OR user_id = ?))", userID, userID, userID)
	return pageByID[Mesh](q, p, func(m Mesh) string { return m.ID })
}

// MyMesh loads a mesh the user owns or belongs to; anything else is not found.
func (s *Store) MyMesh(ctx context.Context, userID, meshID string) (*Mesh, error) {
	if !ValidID(meshID) {
		return nil, notFound("mesh")
	}
	var m Mesh
	err := s.db.WithContext(ctx).
		Where("id = ? AND (owner_user_id = ? OR id IN (SELECT mesh_id FROM members WHERE revoked_at IS NULL AND (dashboard_user_id = ? OR user_id = ?)))", meshID, userID, userID, userID).
		Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, notFound("mesh")
	}
	if err != nil {
		return nil, fmt.Errorf("find mesh %s: %w", meshID, err)
	}
	return &m, nil
}

// MeshByID loads any mesh (internal use: auth already scoped the caller).
func (s *Store) MeshByID(ctx context.Context, meshID string) (*Mesh, error) {
	var m Mesh
	err := s.db.WithContext(ctx).Where("id = ?", meshID).Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, notFound("mesh")
	}
	if err != nil {
		return nil, fmt.Errorf("find mesh %s: %w", meshID, err)
	}
	return &m, nil
}

// BackfillResult reports what the backfill did for one mesh.
type BackfillResult struct {
	MeshID      string
	Slug        string
	MemberID    string
	DisplayName string
	Created     bool // false in a dry run
}

// BackfillOwnerMembers gives every non-archived mesh whose owner has no live
// member row the row createMyMesh would have made, one transaction per mesh.
// Re-checking under the mesh's row lock makes it idempotent and safe to run
// beside a live broker.
func (s *Store) BackfillOwnerMembers(ctx context.Context, dryRun bool) ([]BackfillResult, error) {
	const missing = `archived_at IS NULL AND NOT EXISTS (
		SELECT 1 FROM members m WHERE m.mesh_id = meshes.id AND m.revoked_at IS NULL
		AND (m.dashboard_user_id = meshes.owner_user_id OR m.user_id = meshes.owner_user_id))`
	var candidates []Mesh
	if err := s.db.WithContext(ctx).Where(missing).Order("id").Find(&candidates).Error; err != nil {
		return nil, fmt.Errorf("find meshes without owner member: %w", err)
	}
	var out []BackfillResult
	for _, c := range candidates {
		if dryRun {
			out = append(out, BackfillResult{MeshID: c.ID, Slug: c.Slug})
			continue
		}
		var res *BackfillResult
		err := s.tx(ctx, func(tx *gorm.DB) error {
			var mesh Mesh
			err := s.forUpdate(tx.Where("id = ?", c.ID).Where(missing)).Take(&mesh).Error
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return nil // fixed meanwhile
			}
			if err != nil {
				return fmt.Errorf("lock mesh %s: %w", c.ID, err)
			}
			var owner User
			if err := tx.Where("id = ?", mesh.OwnerUserID).Take(&owner).Error; err != nil {
				return fmt.Errorf("load owner of mesh %s: %w", mesh.ID, err)
			}
			m, _, err := s.createOwnerMember(tx, &mesh, &owner)
			if err != nil {
				return err
			}
			if err := s.appendAudit(tx, mesh.ID, AuditOwnerBackfilled, m.ID, m.ID, nil); err != nil {
				return err
			}
			res = &BackfillResult{MeshID: mesh.ID, Slug: mesh.Slug, MemberID: m.ID, DisplayName: m.DisplayName, Created: true}
			return nil
		})
		if err != nil {
			return out, fmt.Errorf("backfill mesh %s: %w", c.ID, err)
		}
		if res != nil {
			out = append(out, *res)
		}
	}
	return out, nil
}

// RenameMesh changes a mesh's display name (an admin, authorised by
// AuthorizeMeshAdmin). The slug stays: it names the mesh in URLs and CLIs.
func (s *Store) RenameMesh(ctx context.Context, admin *Member, name string) (*Mesh, error) {
	name = strings.TrimSpace(name)
	if e := checkLabel("name", name, 1, 100); e != nil {
		return nil, Invalid(*e)
	}
	var out Mesh
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.forUpdate(tx.Where("id = ? AND archived_at IS NULL", admin.MeshID)).Take(&out).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return notFound("mesh")
			}
			return fmt.Errorf("find mesh: %w", err)
		}
		if out.Name == name {
			return nil
		}
		if err := tx.Model(&Mesh{}).Where("id = ?", out.ID).Update("name", name).Error; err != nil {
			return fmt.Errorf("rename mesh: %w", err)
		}
		out.Name = name
		return s.appendAudit(tx, out.ID, AuditMeshRenamed, admin.ID, out.ID, nil)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ArchiveMesh archives a mesh (an admin, authorised by AuthorizeMeshAdmin).
// From the commit on, every API key and member token of the mesh is
// refused, invites are gone, and streams and peer connections end at their
// next re-check with the code mesh_archived. Nothing is deleted; the owner
// still sees the mesh (with archivedAt) in GET /v1/meshes.
func (s *Store) ArchiveMesh(ctx context.Context, admin *Member) (*Mesh, error) {
	var out Mesh
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.forUpdate(tx.Where("id = ?", admin.MeshID)).Take(&out).Error; err != nil {
			return fmt.Errorf("find mesh: %w", err)
		}
		if out.ArchivedAt != nil {
			return nil
		}
		now := s.nowUTC()
		if err := tx.Model(&Mesh{}).Where("id = ?", out.ID).Update("archived_at", now).Error; err != nil {
			return fmt.Errorf("archive mesh: %w", err)
		}
		out.ArchivedAt = &now
		return s.appendAudit(tx, out.ID, AuditMeshArchived, admin.ID, out.ID, nil)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// LeaveMesh ends the caller's membership: a member principal leaves as
// itself; a user leaves with every member linked to them in the mesh
// (dashboard and CLI peers alike). Leaving revokes the members and their
// keys and starts a new key epoch in their keyed topics, like a
// revocation. The mesh must keep an admin: when the last ones would leave,
// successorID must name a live member who stays, and it becomes admin
// (409 last_admin otherwise). Naming a successor is an admin's act: a
// leaver who is not an admin cannot hand the role on (403). A member
// principal leaves only with a credential that holds everything its role
// allows (authority.whole): a read-only key cannot end its member. The
// owner cannot leave their own mesh (409 owner_member); they archive it
// instead.
func (s *Store) LeaveMesh(ctx context.Context, p *Principal, meshID, successorID string) error {
	if successorID != "" && !ValidID(successorID) {
		return Invalid(FieldError{"successorMemberId", "must be a member id"})
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		var mesh Mesh
		err := s.forUpdate(tx.Where("id = ? AND archived_at IS NULL", meshID)).Take(&mesh).Error
		if errors.Is(err, gorm.ErrRecordNotFound) || (p.IsMember() && p.MeshID != meshID) {
			return notFound("mesh")
		}
		if err != nil {
			return fmt.Errorf("find mesh: %w", err)
		}
		var leaving []Member
		q := tx.Where("mesh_id = ? AND revoked_at IS NULL", meshID)
		if p.IsMember() {
			q = q.Where("id = ?", p.MemberID)
		} else {
			q = q.Where("dashboard_user_id = ? OR user_id = ?", p.UserID, p.UserID)
		}
		if err := q.Order("id").Find(&leaving).Error; err != nil {
			return fmt.Errorf("find leaving members: %w", err)
		}
		if len(leaving) == 0 {
			return notFound("mesh")
		}
		ids := make([]string, len(leaving))
		leaverIsAdmin := false
		for i, m := range leaving {
			ids[i] = m.ID
			if (m.DashboardUserID != nil && *m.DashboardUserID == mesh.OwnerUserID) || (m.UserID != nil && *m.UserID == mesh.OwnerUserID) {
				return E(KindConflict, "owner_member", "the mesh owner cannot leave; archive the mesh instead")
			}
			if err := authorityOf(p, &leaving[i]).whole(); err != nil {
				return err
			}
			leaverIsAdmin = leaverIsAdmin || m.Role == RoleAdmin
		}
		actor := ids[0]
		if successorID != "" && !leaverIsAdmin {
			return E(KindForbidden, "admin_required", "only an admin may name a successor: the successor becomes admin")
		}
		if successorID != "" {
			succ, err := s.MemberInMeshTx(tx, meshID, successorID)
			if err != nil {
				return Invalid(FieldError{"successorMemberId", "is not a live member of this mesh"})
			}
			if slices.Contains(ids, succ.ID) {
				return Invalid(FieldError{"successorMemberId", "must be a member who stays"})
			}
			if succ.Role != RoleAdmin {
				if err := tx.Model(&Member{}).Where("id = ?", succ.ID).Update("role", RoleAdmin).Error; err != nil {
					return fmt.Errorf("promote successor: %w", err)
				}
				if err := s.appendAudit(tx, meshID, AuditMemberRoleChanged, actor, succ.ID, map[string]any{"role": RoleAdmin, "reason": "successor"}); err != nil {
					return err
				}
			}
		}
		var admins int64
		if err := tx.Model(&Member{}).Where("mesh_id = ? AND role = ? AND revoked_at IS NULL AND id NOT IN ?", meshID, RoleAdmin, ids).
			Count(&admins).Error; err != nil {
			return fmt.Errorf("count admins: %w", err)
		}
		if admins == 0 {
			return E(KindConflict, "last_admin", "you are the mesh's last admin: name a successorMemberId to make admin")
		}
		now := s.nowUTC()
		if err := tx.Model(&Member{}).Where("id IN ?", ids).Update("revoked_at", now).Error; err != nil {
			return fmt.Errorf("leave: %w", err)
		}
		if err := tx.Model(&APIKey{}).Where("issued_by_member_id IN ? AND revoked_at IS NULL", ids).Update("revoked_at", now).Error; err != nil {
			return fmt.Errorf("revoke leaving members' keys: %w", err)
		}
		for _, id := range ids {
			if err := s.appendAudit(tx, meshID, AuditMemberLeft, id, id, nil); err != nil {
				return err
			}
			if err := s.rotateKeysOf(tx, meshID, id, id, RotateMemberLeft); err != nil {
				return err
			}
		}
		return nil
	})
}
