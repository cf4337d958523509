// Package middleware holds the Echo middleware of the broker: authentication
// (API keys and JWTs), rate limits, request ids, logging and metrics.
package middleware

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/claudemesh/claudemesh-go/models"
)

// Token lifetimes.
const (
	UserTokenTTL      = 15 * time.Minute
	MaxMemberTokenTTL = time.Hour
	tokenIssuer       = "claudemesh-broker"
	tokenAudience     = "claudemesh"
)

// Token types, carried in the typ claim so one kind can never pass for another.
const (
	TypUser   = "user"
	TypMember = "member"
	TypStream = "stream"
)

// StreamTokenTTL is how long a ?token= stream token may be used to connect.
const StreamTokenTTL = 5 * time.Minute

// Claims are the broker's JWT claims.
type Claims struct {
	Typ  string `json:"typ"`
	Mesh string `json:"mesh,omitempty"`
	// Fam is the refresh-token family behind a user token, and behind a
	// member or stream token minted with one.
	Fam  string   `json:"fam,omitempty"`
	Caps []string `json:"caps,omitempty"`
	// Stream tokens carry the credential they were minted from, so the
	// stream lives exactly as long as that credential.
	Scoped    bool     `json:"scoped,omitempty"`
	Scopes    []string `json:"scp,omitempty"`
	KeyID     string   `json:"kid,omitempty"`
	ParentExp int64    `json:"pexp,omitempty"`
	jwt.RegisteredClaims
}

// Tokens signs and verifies the broker's HS256 JWTs.
type Tokens struct {
	secret []byte
	now    func() time.Time
}

// NewTokens returns a signer for secret (at least 32 bytes).
func NewTokens(secret []byte, now func() time.Time) (*Tokens, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("JWT secret must be at least 32 bytes, got %d", len(secret))
	}
	if now == nil {
		now = time.Now
	}
	return &Tokens{secret: secret, now: now}, nil
}

// SignUser issues a 15-minute user access token bound to a refresh family.
func (t *Tokens) SignUser(userID, familyID string) (string, time.Time, error) {
	return t.sign(Claims{Typ: TypUser, Fam: familyID}, userID, UserTokenTTL)
}

// SignMember issues a member token for one mesh, at most one hour long,
// bound to the refresh family of the user session that asked for it.
func (t *Tokens) SignMember(m *models.Member, caps []string, ttl time.Duration, familyID string) (string, time.Time, error) {
	if ttl <= 0 || ttl > MaxMemberTokenTTL {
		ttl = MaxMemberTokenTTL
	}
	return t.sign(Claims{Typ: TypMember, Mesh: m.MeshID, Caps: caps, Fam: familyID}, m.ID, ttl)
}

// SignStream issues a short-lived token for EventSource clients, which
// cannot set headers, to pass as ?token=. It carries the caller's member,
// caps and scopes and names the credential it came from.
func (t *Tokens) SignStream(p *models.Principal) (string, time.Time, error) {
	c := Claims{Typ: TypStream, Mesh: p.MeshID, Caps: p.Caps, Scoped: p.TopicScopes != nil, Scopes: p.TopicScopes, KeyID: p.APIKeyID, Fam: p.FamilyID}
	if p.ExpiresAt != nil {
		c.ParentExp = p.ExpiresAt.Unix()
	}
	return t.sign(c, p.MemberID, StreamTokenTTL)
}

func (t *Tokens) sign(c Claims, subject string, ttl time.Duration) (string, time.Time, error) {
	now := t.now()
	exp := now.Add(ttl)
	c.RegisteredClaims = jwt.RegisteredClaims{
		Issuer:    tokenIssuer,
		Subject:   subject,
		Audience:  jwt.ClaimStrings{tokenAudience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now.Add(-time.Second)),
		ExpiresAt: jwt.NewNumericDate(exp),
		ID:        models.NewID(),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return s, exp, nil
}

var errBadToken = models.E(models.KindUnauthorized, "invalid_token", "the access token is invalid or expired")

// Verify checks signature, algorithm (HS256 only: "none" and RS/ES
// confusion are refused), issuer, audience and expiry.
func (t *Tokens) Verify(raw string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(tokenIssuer),
		jwt.WithAudience(tokenAudience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(t.now),
		jwt.WithLeeway(5*time.Second),
	)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, models.E(models.KindUnauthorized, "token_expired", "the access token has expired")
		}
		return nil, errBadToken
	}
	if c.Typ != TypUser && c.Typ != TypMember && c.Typ != TypStream {
		return nil, errBadToken
	}
	return &c, nil
}
