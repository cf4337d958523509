package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
)

type signupRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type refreshRequest struct {
	RefreshToken string `json:"refreshToken"`
}

type authSessionView struct {
	User         userView `json:"user"`
	AccessToken  string   `json:"accessToken"`
	RefreshToken string   `json:"refreshToken"`
	TokenType    string   `json:"tokenType"`
	ExpiresIn    int      `json:"expiresIn"`
}

func (h *Handler) session(c echo.Context, status int, u *models.User, refresh models.Refresh) error {
	access, _, err := h.Tokens.SignUser(u.ID, refresh.FamilyID)
	if err != nil {
		return err
	}
	return c.JSON(status, authSessionView{User: viewUser(u), AccessToken: access, RefreshToken: refresh.Token,
		TokenType: "Bearer", ExpiresIn: int(middleware.UserTokenTTL.Seconds())})
}

// Signup creates a dashboard account: POST /v1/auth/signup.
func (h *Handler) Signup(c echo.Context) error {
	var req signupRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	u, refresh, err := h.Store.Signup(c.Request().Context(), models.SignupInput{Email: req.Email, Password: req.Password, Name: req.Name})
	if err != nil {
		return err
	}
	return h.session(c, http.StatusCreated, u, refresh)
}

// Login checks a password: POST /v1/auth/login.
func (h *Handler) Login(c echo.Context) error {
	var req loginRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	u, refresh, err := h.Store.Login(c.Request().Context(), req.Email, req.Password)
	if err != nil {
		return err
	}
	return h.session(c, http.StatusOK, u, refresh)
}

// Refresh rotates a refresh token: POST /v1/auth/refresh.
func (h *Handler) Refresh(c echo.Context) error {
	var req refreshRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	u, refresh, err := h.Store.Refresh(c.Request().Context(), req.RefreshToken)
	if err != nil {
		return err
	}
	return h.session(c, http.StatusOK, u, refresh)
}

// Logout revokes a refresh-token family: POST /v1/auth/logout.
func (h *Handler) Logout(c echo.Context) error {
	var req refreshRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	if err := h.Store.Logout(c.Request().Context(), req.RefreshToken); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type membershipView struct {
	MeshID      string `json:"meshId"`
	MeshSlug    string `json:"meshSlug"`
	MeshName    string `json:"meshName"`
	MemberID    string `json:"memberId"`
	DisplayName string `json:"displayName"`
	Role        string `json:"role"`
}

// Me shows the calling user and their own memberships only: GET /v1/me.
func (h *Handler) Me(c echo.Context) error {
	p := middleware.PrincipalFrom(c)
	ctx := c.Request().Context()
	u, err := h.Store.UserByID(ctx, p.UserID)
	if err != nil {
		return err
	}
	ms, err := h.Store.Memberships(ctx, p.UserID)
	if err != nil {
		return err
	}
	out := struct {
		User        userView         `json:"user"`
		Memberships []membershipView `json:"memberships"`
	}{User: viewUser(u), Memberships: make([]membershipView, 0, len(ms))}
	for _, m := range ms {
		out.Memberships = append(out.Memberships, membershipView{MeshID: m.Mesh.ID, MeshSlug: m.Mesh.Slug, MeshName: m.Mesh.Name,
			MemberID: m.Member.ID, DisplayName: m.Member.DisplayName, Role: m.Member.Role})
	}
	return c.JSON(http.StatusOK, out)
}
