package models

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
)

// APIKey is a member credential: "cm_" + base64url(32 random bytes). Only
// its SHA-256 and an 11-character lookup prefix are stored.
type APIKey struct {
	ID               string `gorm:"primaryKey"`
	MeshID           string
	IssuedByMemberID string
	Name             string
	Prefix           string
	KeyHash          string
	Capabilities     string  // comma-joined, canonical order
	TopicScopes      *string // comma-joined normalised names; nil = all topics
	ExpiresAt        *time.Time
	RevokedAt        *time.Time
	LastUsedAt       *time.Time
	CreatedAt        time.Time
}

// Caps returns the key's capabilities.
func (k *APIKey) Caps() []string { return splitList(k.Capabilities) }

// Scopes returns the key's topic scopes, nil meaning every topic.
func (k *APIKey) Scopes() []string {
	if k.TopicScopes == nil {
		return nil
	}
	return splitList(*k.TopicScopes)
}

func splitList(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

const (
	apiKeyPrefix    = "cm_"
	apiKeyLen       = 3 + 43 // prefix + base64url(32 bytes) without padding
	apiKeyLookupLen = 11
	maxTopicScopes  = 64
	maxKeyTTL       = 365 * 24 * time.Hour
	// lastUsedEvery bounds last_used_at writes (upstream wrote on every request).
	lastUsedEvery = time.Minute
)

var topicNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,49}$`)

// NormaliseTopicName strips one leading '#'.
func NormaliseTopicName(s string) string { return strings.TrimPrefix(s, "#") }

// CreateKeyInput describes a new API key.
type CreateKeyInput struct {
	Name        string
	Caps        []string
	TopicScopes []string // nil = inherit the caller's scopes (all, for an unscoped caller)
	ExpiresIn   time.Duration
}

// CreateAPIKey mints a key for the calling member. A key never gets a
// capability, a topic or a lifetime its caller does not have.
func (s *Store) CreateAPIKey(ctx context.Context, caller *Principal, in CreateKeyInput) (*APIKey, string, error) {
	var fe []FieldError
	if e := checkLabel("name", in.Name, 0, 100); e != nil {
		fe = append(fe, *e)
	}
	caps, capErr := canonicalCaps(in.Caps)
	if capErr != "" {
		fe = append(fe, FieldError{"capabilities", capErr})
	}
	var scopes []string
	if in.TopicScopes != nil {
		if len(in.TopicScopes) > maxTopicScopes {
			fe = append(fe, FieldError{"topicScopes", fmt.Sprintf("at most %d topics", maxTopicScopes)})
		}
		scopes = []string{}
		for _, t := range in.TopicScopes {
			n := NormaliseTopicName(t)
			if !topicNameRe.MatchString(n) {
				fe = append(fe, FieldError{"topicScopes", fmt.Sprintf("%q is not a topic name", t)})
				continue
			}
			if !slices.Contains(scopes, n) {
				scopes = append(scopes, n)
			}
		}
	}
	if in.ExpiresIn != 0 && (in.ExpiresIn < time.Minute || in.ExpiresIn > maxKeyTTL) {
		fe = append(fe, FieldError{"expiresInSeconds", fmt.Sprintf("must be 60 to %d", int(maxKeyTTL.Seconds()))})
	}
	if fe != nil {
		return nil, "", Invalid(fe...)
	}
	if scopes == nil && caller.TopicScopes != nil {
		scopes = slices.Clone(caller.TopicScopes) // omitted: inherit the caller's confinement
	}
	if err := authorityOf(caller, nil).grant(caps, scopes); err != nil {
		return nil, "", err
	}
	var expires *time.Time
	if in.ExpiresIn != 0 {
		t := s.nowUTC().Add(in.ExpiresIn)
		expires = &t
	}
	var (
		key    *APIKey
		secret string
	)
	err := s.tx(ctx, func(tx *gorm.DB) error {
		m, err := s.MemberInMeshTx(tx, caller.MeshID, caller.MemberID)
		if err != nil {
			return err
		}
		if caller.APIKeyID != "" {
			var parent APIKey
			if err := tx.Where("id = ?", caller.APIKeyID).Take(&parent).Error; err != nil {
				return fmt.Errorf("load caller key: %w", err)
			}
			// A derived key may not outlive the key that made it.
			if parent.ExpiresAt != nil && (expires == nil || expires.After(*parent.ExpiresAt)) {
				expires = parent.ExpiresAt
			}
		}
		key, secret, err = s.insertAPIKey(tx, m, in.Name, caps, scopes, expires)
		if err != nil {
			return err
		}
		return s.appendAudit(tx, m.MeshID, AuditKeyCreated, caller.MemberID, key.ID,
			map[string]any{"prefix": key.Prefix, "capabilities": caps})
	})
	if err != nil {
		return nil, "", err
	}
	return key, secret, nil
}

// canonicalCaps validates and orders a capability list.
func canonicalCaps(in []string) ([]string, string) {
	if len(in) == 0 {
		return nil, "at least one capability is required"
	}
	if len(in) > len(AllCaps) {
		return nil, fmt.Sprintf("at most %d capabilities", len(AllCaps))
	}
	for i, c := range in {
		if slices.Contains(in[:i], c) {
			return nil, fmt.Sprintf("capability %q is listed twice", c)
		}
	}
	var out []string
	for _, c := range AllCaps {
		if slices.Contains(in, c) {
			out = append(out, c)
		}
	}
	for _, c := range in {
		if !slices.Contains(AllCaps, c) {
			return nil, fmt.Sprintf("unknown capability %q", c)
		}
	}
	return out, ""
}

func (s *Store) insertAPIKey(tx *gorm.DB, m *Member, name string, caps, scopes []string, expires *time.Time) (*APIKey, string, error) {
	secret := randomToken(apiKeyPrefix)
	k := &APIKey{ID: NewID(), MeshID: m.MeshID, IssuedByMemberID: m.ID, Name: name, Prefix: secret[:apiKeyLookupLen],
		KeyHash: hashSecret(secret), Capabilities: strings.Join(caps, ","), ExpiresAt: expires, CreatedAt: s.nowUTC()}
	if scopes != nil {
		j := strings.Join(scopes, ",")
		k.TopicScopes = &j
	}
	if err := tx.Create(k).Error; err != nil {
		return nil, "", fmt.Errorf("insert api key: %w", err)
	}
	return k, secret, nil
}

// MemberInMeshTx is MemberInMesh inside a transaction; it refuses revoked members.
func (s *Store) MemberInMeshTx(tx *gorm.DB, meshID, memberID string) (*Member, error) {
	var m Member
	err := tx.Where("id = ? AND mesh_id = ? AND revoked_at IS NULL", memberID, meshID).Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, notFound("member")
	}
	if err != nil {
		return nil, fmt.Errorf("find member %s: %w", memberID, err)
	}
	return &m, nil
}

// ListAPIKeys pages the caller member's own keys.
func (s *Store) ListAPIKeys(ctx context.Context, caller *Principal, p PageRequest) (Page[APIKey], error) {
	q := s.db.WithContext(ctx).Model(&APIKey{}).Where("mesh_id = ? AND issued_by_member_id = ?", caller.MeshID, caller.MemberID)
	return pageByID[APIKey](q, p, func(k APIKey) string { return k.ID })
}

// RevokeAPIKey revokes a key. A credential may always revoke itself; another
// key of the same member only when the caller holds everything that key
// holds (a read-only key cannot take away its member's full key); a key of
// another member only with the admin capability over the whole mesh. Keys
// of other members that the caller may not touch are reported as not found.
func (s *Store) RevokeAPIKey(ctx context.Context, caller *Principal, keyID string) error {
	if !ValidID(keyID) {
		return notFound("api_key")
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		var k APIKey
		err := tx.Where("id = ? AND mesh_id = ?", keyID, caller.MeshID).Take(&k).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return notFound("api_key")
		}
		if err != nil {
			return fmt.Errorf("find api key: %w", err)
		}
		auth := authorityOf(caller, nil)
		switch {
		case k.ID == caller.APIKeyID:
			// giving up one's own credential hands nothing on
		case k.IssuedByMemberID == caller.MemberID:
			if !auth.covers(&k) {
				return E(KindForbidden, "capability_escalation", "this key holds more than your credential: revoke it with a credential that holds as much (the member's session or a full key)")
			}
		case !caller.Can(CapAdmin):
			return notFound("api_key")
		default:
			if err := auth.meshWide(); err != nil {
				return err
			}
		}
		if k.RevokedAt != nil {
			return nil
		}
		if err := tx.Model(&APIKey{}).Where("id = ?", k.ID).Update("revoked_at", s.nowUTC()).Error; err != nil {
			return fmt.Errorf("revoke api key: %w", err)
		}
		return s.appendAudit(tx, k.MeshID, AuditKeyRevoked, caller.MemberID, k.ID, map[string]any{"prefix": k.Prefix})
	})
}

// keyAuthRow is an API key joined with its member, for authentication.
type keyAuthRow struct {
	APIKey
	Role        string
	DisplayName string
	PeerPubkey  string
}

var errBadKey = E(KindUnauthorized, "invalid_api_key", "the API key is invalid, expired or revoked")

// AuthenticateAPIKey resolves a presented key to a member principal. The
// prefix finds candidate rows; the full hash is compared in constant time.
// Revoked keys, revoked members and archived meshes are refused.
func (s *Store) AuthenticateAPIKey(ctx context.Context, secret string) (*Principal, error) {
	if len(secret) != apiKeyLen || !strings.HasPrefix(secret, apiKeyPrefix) {
		return nil, errBadKey
	}
	rows, err := s.findKeys(ctx, secret[:apiKeyLookupLen])
	if err != nil {
		return nil, err
	}
	want := []byte(hashSecret(secret))
	now := s.nowUTC()
	for i := range rows {
		r := &rows[i]
		if subtle.ConstantTimeCompare([]byte(r.KeyHash), want) != 1 {
			continue
		}
		if r.ExpiresAt != nil && !now.Before(*r.ExpiresAt) {
			return nil, errBadKey
		}
		s.touchKey(ctx, r.ID, now)
		allowed := CapsForRole(r.Role)
		var caps []string
		for _, c := range r.Caps() {
			if slices.Contains(allowed, c) {
				caps = append(caps, c)
			}
		}
		return &Principal{MemberID: r.IssuedByMemberID, MeshID: r.MeshID, Role: r.Role, DisplayName: r.DisplayName,
			Pubkey: r.PeerPubkey, Caps: caps, TopicScopes: r.Scopes(), APIKeyID: r.ID, ExpiresAt: r.ExpiresAt}, nil
	}
	return nil, errBadKey
}

// maxKeyLookups bounds the prefixes one lookup query asks for.
const maxKeyLookups = 128

// keyLookup is one queued API-key lookup by prefix and, once run, its rows.
type keyLookup struct {
	prefix string
	rows   []keyAuthRow
	err    error
	done   chan struct{}
}

// findKeys returns the live keys (live member, open mesh) with prefix.
// Every request presenting a key is checked against the database, so a
// revocation applies to the next request; concurrent checks are answered
// by one query (lookupKeys), which under load costs the database and the
// broker a fraction of a query per request.
func (s *Store) findKeys(ctx context.Context, prefix string) ([]keyAuthRow, error) {
	l := &keyLookup{prefix: prefix, done: make(chan struct{})}
	s.keyLookups.submit("", l)
	select {
	case <-l.done:
		return l.rows, l.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// lookupKeys answers a batch of lookups with one query.
func (s *Store) lookupKeys(batch []*keyLookup) {
	// Not tied to one request: the query answers every request in the batch.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var prefixes []string
	for _, l := range batch {
		prefixes = appendNew(prefixes, l.prefix)
	}
	var rows []keyAuthRow
	err := s.db.WithContext(ctx).Table("api_keys AS k").
		Select("k.*, m.role, m.display_name, m.peer_pubkey").
		Joins("JOIN members m ON m.id = k.issued_by_member_id").
		Joins("JOIN meshes s ON s.id = k.mesh_id").
		Where("k.prefix IN ? AND k.revoked_at IS NULL AND m.revoked_at IS NULL AND s.archived_at IS NULL", prefixes).
		// A prefix is 48 random bits: more than a few rows for one is not
		// a collision but someone planting keys, and is cut off here.
		Limit(8 * len(prefixes)).Scan(&rows).Error
	for _, l := range batch {
		if err != nil {
			l.err = fmt.Errorf("find api key: %w", err)
		}
		for _, r := range rows {
			if r.Prefix == l.prefix {
				l.rows = append(l.rows, r)
			}
		}
		close(l.done)
	}
}

// usageThrottle remembers when each key's last_used_at was last written.
type usageThrottle struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func newUsageThrottle() *usageThrottle { return &usageThrottle{last: map[string]time.Time{}} }

// due reports whether keyID's last_used_at should be written now, and if so
// records that it is being written.
func (u *usageThrottle) due(keyID string, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if t, ok := u.last[keyID]; ok && now.Sub(t) < lastUsedEvery {
		return false
	}
	if len(u.last) > 100_000 {
		for k, t := range u.last {
			if now.Sub(t) >= lastUsedEvery {
				delete(u.last, k)
			}
		}
	}
	u.last[keyID] = now
	return true
}

// touchKey writes last_used_at at most once a minute per key and node; the
// guarded UPDATE also keeps several nodes from writing more than needed.
func (s *Store) touchKey(ctx context.Context, keyID string, now time.Time) {
	if !s.lastUsed.due(keyID, now) {
		return
	}
	// Best effort: a failed usage stamp must not fail the request.
	_ = s.db.WithContext(ctx).Exec("UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)",
		now, keyID, now.Add(-lastUsedEvery)).Error
}

// KeyLastUsed reads a key's last_used_at (tests use it to prove the throttle).
func (s *Store) KeyLastUsed(ctx context.Context, keyID string) (*time.Time, error) {
	var k APIKey
	if err := s.db.WithContext(ctx).Select("last_used_at").Where("id = ?", keyID).Take(&k).Error; err != nil {
		return nil, fmt.Errorf("find api key: %w", err)
	}
	return k.LastUsedAt, nil
}
