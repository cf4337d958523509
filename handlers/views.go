package handlers

import (
	"time"

	"github.com/claudemesh/claudemesh-go/models"
)

type userView struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

func viewUser(u *models.User) userView {
	return userView{ID: u.ID, Email: u.Email, Name: u.Name, CreatedAt: utc(u.CreatedAt)}
}

type meshView struct {
	ID          string     `json:"id"`
	Slug        string     `json:"slug"`
	Name        string     `json:"name"`
	OwnerUserID string     `json:"ownerUserId"`
	CreatedAt   time.Time  `json:"createdAt"`
	ArchivedAt  *time.Time `json:"archivedAt"`
}

func viewMesh(m *models.Mesh) meshView {
	return meshView{ID: m.ID, Slug: m.Slug, Name: m.Name, OwnerUserID: m.OwnerUserID, CreatedAt: utc(m.CreatedAt), ArchivedAt: utcPtr(m.ArchivedAt)}
}

type memberView struct {
	ID          string     `json:"id"`
	MeshID      string     `json:"meshId"`
	DisplayName string     `json:"displayName"`
	Pubkey      string     `json:"pubkey"`
	Role        string     `json:"role"`
	UserID      *string    `json:"userId"`
	JoinedAt    time.Time  `json:"joinedAt"`
	RevokedAt   *time.Time `json:"revokedAt"`
}

func viewMember(m *models.Member) memberView {
	uid := m.UserID
	if uid == nil {
		uid = m.DashboardUserID
	}
	return memberView{ID: m.ID, MeshID: m.MeshID, DisplayName: m.DisplayName, Pubkey: m.PeerPubkey, Role: m.Role,
		UserID: uid, JoinedAt: utc(m.JoinedAt), RevokedAt: utcPtr(m.RevokedAt)}
}

type apiKeyView struct {
	ID           string     `json:"id"`
	Prefix       string     `json:"prefix"`
	Name         string     `json:"name"`
	MemberID     string     `json:"memberId"`
	Capabilities []string   `json:"capabilities"`
	TopicScopes  []string   `json:"topicScopes"`
	ExpiresAt    *time.Time `json:"expiresAt"`
	RevokedAt    *time.Time `json:"revokedAt"`
	LastUsedAt   *time.Time `json:"lastUsedAt"`
	CreatedAt    time.Time  `json:"createdAt"`
}

func viewAPIKey(k *models.APIKey) apiKeyView {
	return apiKeyView{ID: k.ID, Prefix: k.Prefix, Name: k.Name, MemberID: k.IssuedByMemberID, Capabilities: k.Caps(),
		TopicScopes: k.Scopes(), ExpiresAt: utcPtr(k.ExpiresAt), RevokedAt: utcPtr(k.RevokedAt), LastUsedAt: utcPtr(k.LastUsedAt),
		CreatedAt: utc(k.CreatedAt)}
}

type apiKeyCreatedView struct {
	apiKeyView
	Key string `json:"key"`
}
