package models

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// User is a dashboard account.
type User struct {
	ID           string `gorm:"primaryKey"`
	Email        string
	PasswordHash string
	Name         string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// RefreshToken is one link of a rotating refresh-token family. Only the
// SHA-256 of the token is stored.
type RefreshToken struct {
	ID           string `gorm:"primaryKey"`
	UserID       string
	FamilyID     string
	TokenHash    string
	CreatedAt    time.Time
	ExpiresAt    time.Time
	UsedAt       *time.Time
	RevokedAt    *time.Time
	ReplacedByID *string
}

// RefreshTTL is how long an unused refresh token lives.
const RefreshTTL = 30 * 24 * time.Hour

// SignupInput is what a new account needs.
type SignupInput struct {
	Email    string
	Password string
	Name     string
}

func (in *SignupInput) normalise() error {
	in.Email = strings.ToLower(strings.TrimSpace(in.Email))
	in.Name = strings.TrimSpace(in.Name)
	var fe []FieldError
	if a, err := mail.ParseAddress(in.Email); err != nil || a.Address != in.Email || len(in.Email) > 254 {
		fe = append(fe, FieldError{"email", "must be a valid email address of at most 254 characters"})
	}
	if n := utf8.RuneCountInString(in.Password); n < 8 || n > 256 {
		fe = append(fe, FieldError{"password", "must be 8 to 256 characters"})
	}
	if e := checkLabel("name", in.Name, 1, 100); e != nil {
		fe = append(fe, *e)
	}
	if fe != nil {
		return Invalid(fe...)
	}
	return nil
}

// Refresh is a refresh token as issued: shown once, stored hashed. Access
// tokens name its family, so revoking the family ends them too.
type Refresh struct {
	Token    string
	FamilyID string
}

// Signup creates an account and its first refresh token.
func (s *Store) Signup(ctx context.Context, in SignupInput) (*User, Refresh, error) {
	if err := in.normalise(); err != nil {
		return nil, Refresh{}, err
	}
	now := s.nowUTC()
	u := &User{ID: NewID(), Email: in.Email, PasswordHash: hashPassword(in.Password), Name: in.Name, CreatedAt: now, UpdatedAt: now}
	refresh := Refresh{FamilyID: NewID()}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(u).Error; err != nil {
			if isUniqueViolation(err) {
				return E(KindConflict, "email_taken", "an account with this email already exists")
			}
			return fmt.Errorf("insert user: %w", err)
		}
		var err error
		refresh.Token, _, err = s.issueRefresh(tx, u.ID, refresh.FamilyID)
		return err
	})
	if err != nil {
		return nil, Refresh{}, err
	}
	return u, refresh, nil
}

// Login checks a password and starts a new refresh-token family.
func (s *Store) Login(ctx context.Context, email, password string) (*User, Refresh, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var u User
	err := s.db.WithContext(ctx).Where("email = ?", email).Take(&u).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		checkPassword(dummyHash(), password)
		return nil, Refresh{}, E(KindUnauthorized, "invalid_credentials", "wrong email or password")
	case err != nil:
		return nil, Refresh{}, fmt.Errorf("find user: %w", err)
	}
	if !checkPassword(u.PasswordHash, password) {
		return nil, Refresh{}, E(KindUnauthorized, "invalid_credentials", "wrong email or password")
	}
	refresh := Refresh{FamilyID: NewID()}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		refresh.Token, _, err = s.issueRefresh(tx, u.ID, refresh.FamilyID)
		return err
	})
	if err != nil {
		return nil, Refresh{}, err
	}
	return &u, refresh, nil
}

// UserByID loads an account.
func (s *Store) UserByID(ctx context.Context, id string) (*User, error) {
	var u User
	if !ValidID(id) {
		return nil, notFound("user")
	}
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, notFound("user")
	}
	if err != nil {
		return nil, fmt.Errorf("find user %s: %w", id, err)
	}
	return &u, nil
}

func (s *Store) issueRefresh(tx *gorm.DB, userID, familyID string) (token, id string, err error) {
	token = randomToken("cmr_")
	now := s.nowUTC()
	rt := RefreshToken{ID: NewID(), UserID: userID, FamilyID: familyID, TokenHash: hashSecret(token), CreatedAt: now, ExpiresAt: now.Add(RefreshTTL)}
	if err := tx.Create(&rt).Error; err != nil {
		return "", "", fmt.Errorf("insert refresh token: %w", err)
	}
	return token, rt.ID, nil
}

var errRefreshInvalid = E(KindUnauthorized, "invalid_refresh_token", "the refresh token is invalid, expired or revoked")

// Refresh rotates a refresh token: the presented one is spent and a new one
// of the same family returned. Presenting a spent token is treated as theft:
// the whole family is revoked and the caller must log in again.
func (s *Store) Refresh(ctx context.Context, token string) (*User, Refresh, error) {
	var (
		next   Refresh
		userID string
		reused bool
	)
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var rt RefreshToken
		err := s.forUpdate(tx.Where("token_hash = ?", hashSecret(token))).Take(&rt).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return errRefreshInvalid
		}
		if err != nil {
			return fmt.Errorf("find refresh token: %w", err)
		}
		now := s.nowUTC()
		if rt.RevokedAt != nil {
			return errRefreshInvalid
		}
		if rt.UsedAt != nil {
			reused = true
			return s.revokeFamily(tx, rt.FamilyID, now)
		}
		if !now.Before(rt.ExpiresAt) {
			return errRefreshInvalid
		}
		var newID string
		next.FamilyID = rt.FamilyID
		next.Token, newID, err = s.issueRefresh(tx, rt.UserID, rt.FamilyID)
		if err != nil {
			return err
		}
		res := tx.Model(&RefreshToken{}).Where("id = ? AND used_at IS NULL", rt.ID).
			Updates(map[string]any{"used_at": now, "replaced_by_id": newID})
		if res.Error != nil {
			return fmt.Errorf("spend refresh token: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return errRefreshInvalid
		}
		userID = rt.UserID
		return nil
	})
	if err != nil {
		return nil, Refresh{}, err
	}
	if reused {
		return nil, Refresh{}, E(KindUnauthorized, "refresh_token_reused", "this refresh token was already used; all sessions of its family are revoked")
	}
	u, err := s.UserByID(ctx, userID)
	if err != nil {
		return nil, Refresh{}, err
	}
	return u, next, nil
}

// Logout revokes the family of a refresh token. Unknown tokens are ignored,
// so logout is idempotent.
func (s *Store) Logout(ctx context.Context, token string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var rt RefreshToken
		err := tx.Where("token_hash = ?", hashSecret(token)).Take(&rt).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("find refresh token: %w", err)
		}
		return s.revokeFamily(tx, rt.FamilyID, s.nowUTC())
	})
}

// CheckRefreshFamily refuses a token whose refresh family was revoked
// (logout, or a spent refresh token presented again). One indexed read.
func (s *Store) CheckRefreshFamily(ctx context.Context, familyID string) error {
	var n int64
	err := s.db.WithContext(ctx).Model(&RefreshToken{}).
		Where("family_id = ? AND revoked_at IS NULL", familyID).Limit(1).Count(&n).Error
	if err != nil {
		return fmt.Errorf("check refresh family: %w", err)
	}
	if n == 0 {
		return E(KindUnauthorized, "credential_revoked", "this session was signed out or its refresh token reused; sign in again")
	}
	return nil
}

func (s *Store) revokeFamily(tx *gorm.DB, familyID string, now time.Time) error {
	err := tx.Model(&RefreshToken{}).Where("family_id = ? AND revoked_at IS NULL", familyID).Update("revoked_at", now).Error
	if err != nil {
		return fmt.Errorf("revoke refresh family: %w", err)
	}
	return nil
}
