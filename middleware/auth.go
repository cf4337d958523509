package middleware

import (
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/models"
)

const principalKey = "claudemesh.principal"

// PrincipalFrom returns the authenticated caller, or nil.
func PrincipalFrom(c echo.Context) *models.Principal {
	p, _ := c.Get(principalKey).(*models.Principal)
	return p
}

// Authenticator resolves the bearer credential of a request.
type Authenticator struct {
	Store  *models.Store
	Tokens *Tokens
}

// bearer extracts the token of an "Authorization: Bearer …" header.
func bearer(c echo.Context) (string, bool) {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	if h == "" {
		return "", false
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", true
	}
	return strings.TrimSpace(tok), true
}

// Authenticate resolves the principal when a credential is present. A
// present but bad credential is refused here; an absent one is left to the
// Require* guards, so public routes stay public.
func (a *Authenticator) Authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok, present := bearer(c)
		if !present {
			return next(c)
		}
		if tok == "" {
			return models.ErrUnauthorized
		}
		p, err := a.Resolve(c, tok)
		if err != nil {
			return err
		}
		c.Set(principalKey, p)
		return next(c)
	}
}

// Resolve turns a raw credential into a principal.
func (a *Authenticator) Resolve(c echo.Context, tok string) (*models.Principal, error) {
	ctx := c.Request().Context()
	if strings.HasPrefix(tok, "cm_") {
		return a.Store.AuthenticateAPIKey(ctx, tok)
	}
	claims, err := a.Tokens.Verify(tok)
	if err != nil {
		return nil, err
	}
	if claims.Typ == TypStream {
		// Stream tokens ride in URLs; they open streams and nothing else.
		return nil, errBadToken
	}
	if claims.Typ == TypUser {
		// Every user token names its refresh family, and the family must
		// still be live: signing out or a detected refresh-token theft ends
		// the access tokens of that session at once.
		if !models.ValidID(claims.Subject) || !models.ValidID(claims.Fam) {
			return nil, errBadToken
		}
		if err := a.Store.CheckRefreshFamily(ctx, claims.Fam); err != nil {
			return nil, err
		}
		return &models.Principal{UserID: claims.Subject, FamilyID: claims.Fam}, nil
	}
	// Member tokens are re-checked against the database on every request,
	// so revoking the member or archiving the mesh takes effect at once.
	p, err := a.Store.LiveMemberPrincipal(ctx, claims.Subject, claims.Mesh, claims.Caps)
	if err != nil {
		return nil, err
	}
	p.TokenID = claims.ID
	if claims.Fam != "" {
		if err := a.Store.CheckRefreshFamily(ctx, claims.Fam); err != nil {
			return nil, err
		}
		p.FamilyID = claims.Fam
	}
	if claims.ExpiresAt != nil {
		exp := claims.ExpiresAt.Time
		p.ExpiresAt = &exp
	}
	return p, nil
}

// StreamToken admits a ?token= stream token on stream routes when no
// Authorization header was sent (EventSource cannot send one). The token is
// checked for expiry only at connect; the stream then lives as long as the
// credential it was minted from.
func (a *Authenticator) StreamToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok := c.QueryParam("token")
		if tok == "" || PrincipalFrom(c) != nil {
			return next(c)
		}
		claims, err := a.Tokens.Verify(tok)
		if err != nil {
			return err
		}
		if claims.Typ != TypStream {
			return errBadToken
		}
		ctx := c.Request().Context()
		p, err := a.Store.LiveMemberPrincipal(ctx, claims.Subject, claims.Mesh, claims.Caps)
		if err != nil {
			return err
		}
		if claims.Scoped {
			p.TopicScopes = append([]string{}, claims.Scopes...)
		}
		if claims.ParentExp != 0 {
			exp := time.Unix(claims.ParentExp, 0)
			p.ExpiresAt = &exp
		}
		p.APIKeyID = claims.KeyID
		p.FamilyID = claims.Fam
		if err := a.Store.StillValid(ctx, p); err != nil {
			return err
		}
		c.Set(principalKey, p)
		return next(c)
	}
}

var (
	errNeedUser   = models.E(models.KindForbidden, "user_token_required", "this route takes a dashboard user token")
	errNeedMember = models.E(models.KindForbidden, "member_credential_required", "this route takes a member API key or member token")
)

// RequireUser admits dashboard-user principals only.
func RequireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := PrincipalFrom(c)
		switch {
		case p == nil:
			return models.ErrUnauthorized
		case !p.IsUser():
			return errNeedUser
		}
		return next(c)
	}
}

// RequireMember admits member principals holding every listed capability.
func RequireMember(caps ...string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p := PrincipalFrom(c)
			switch {
			case p == nil:
				return models.ErrUnauthorized
			case !p.IsMember():
				return errNeedMember
			}
			for _, cp := range caps {
				if !p.Can(cp) {
					return models.E(models.KindForbidden, "capability_required", "this needs the %q capability", cp)
				}
			}
			return next(c)
		}
	}
}

// RequireAny admits any authenticated principal; the handler decides.
func RequireAny(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if PrincipalFrom(c) == nil {
			return models.ErrUnauthorized
		}
		return next(c)
	}
}
