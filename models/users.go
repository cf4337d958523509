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

// Signup creates an account and its first refresh token.
func (s *Store) Signup(ctx context.Context, in SignupInput) (*User, string, error) {
	if err := in.normalise(); err != nil {
		return nil, "", err
	}
	now := s.nowUTC()
	u := &User{ID: NewID(), Email: in.Email, PasswordHash: hashPassword(in.Password), Name: in.Name, CreatedAt: now, UpdatedAt: now}
	var refresh string
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(u).Error; err != nil {
			if isUniqueViolation(err) {
				return E(KindConflict, "email_taken", "an account with this email already exists")
			}
			return fmt.Errorf("insert user: %w", err)
		}
		var err error
		refresh, _, err = s.issueRefresh(tx, u.ID, NewID())
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return u, refresh, nil
}

// Login checks a password and starts a new refresh-token family.
func (s *Store) Login(ctx context.Context, email, password string) (*User, string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var u User
	err := s.db.WithContext(ctx).Where("email = ?", email).Take(&u).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		checkPassword(dummyHash, password)
		return nil, "", E(KindUnauthorized, "invalid_credentials", "wrong email or password")
	case err != nil:
		return nil, "", fmt.Errorf("find user: %w", err)
	}
	if !checkPassword(u.PasswordHash, password) {
		return nil, "", E(KindUnauthorized, "invalid_credentials", "wrong email or password")
	}
	var refresh string
	err = s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		refresh, _, err = s.issueRefresh(tx, u.ID, NewID())
		return err
	})
	if err != nil {
		return nil, "", err
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
func (s *Store) Refresh(ctx context.Context, token string) (*User, string, error) {
	var (
		newToken string
		userID   string
		reused   bool
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
		newToken, newID, err = s.issueRefresh(tx, rt.UserID, rt.FamilyID)
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
		return nil, "", err
	}
	if reused {
		return nil, "", E(KindUnauthorized, "refresh_token_reused", "this refresh token was already used; all sessions of its family are revoked")
	}
	u, err := s.UserByID(ctx, userID)
	if err != nil {
		return nil, "", err
	}
	return u, newToken, nil
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

func (s *Store) revokeFamily(tx *gorm.DB, familyID string, now time.Time) error {
	err := tx.Model(&RefreshToken{}).Where("family_id = ? AND revoked_at IS NULL", familyID).Update("revoked_at", now).Error
	if err != nil {
		return fmt.Errorf("revoke refresh family: %w", err)
	}
	return nil
}
