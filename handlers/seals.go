package handlers

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
)

type sealView struct {
	TopicID          string    `json:"topicId"`
	MemberID         string    `json:"memberId"`
	KeyEpoch         int       `json:"keyEpoch"`
	EncryptedKey     string    `json:"encryptedKey"`
	Nonce            string    `json:"nonce"`
	SealedForPubkey  string    `json:"sealedForPubkey"`
	SealedByMemberID string    `json:"sealedByMemberId"`
	CreatedAt        time.Time `json:"createdAt"`
}

func viewSeal(k *models.TopicMemberKey) sealView {
	return sealView{TopicID: k.TopicID, MemberID: k.MemberID, KeyEpoch: k.Epoch, EncryptedKey: k.EncryptedKey, Nonce: k.Nonce,
		SealedForPubkey: k.SealedForPubkey, SealedByMemberID: k.SealedByMemberID, CreatedAt: utc(k.CreatedAt)}
}

// MyTopicKey returns the caller's sealed copy, of the current key epoch or
// of ?epoch=: GET /v1/topics/{name}/key.
func (h *Handler) MyTopicKey(c echo.Context) error {
	epoch := 0
	if s := c.QueryParam("epoch"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return models.E(models.KindBadRequest, "invalid_query", "epoch must be a positive integer")
		}
		epoch = n
	}
	k, _, err := h.Store.MyTopicKey(c.Request().Context(), middleware.PrincipalFrom(c), topicParam(c), epoch)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewSeal(k))
}

type sealRequest struct {
	EncryptedKey string `json:"encryptedKey"`
	Nonce        string `json:"nonce"`
	KeyEpoch     int    `json:"keyEpoch"`
}

// ClaimKey keys an unkeyed topic: POST /v1/topics/{name}/claim-key.
func (h *Handler) ClaimKey(c echo.Context) error {
	var req sealRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	k, err := h.Store.ClaimKey(c.Request().Context(), middleware.PrincipalFrom(c), topicParam(c), models.SealInput{EncryptedKey: req.EncryptedKey, Nonce: req.Nonce, KeyEpoch: req.KeyEpoch})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, viewSeal(k))
}

type pendingSealView struct {
	MemberID    string `json:"memberId"`
	DisplayName string `json:"displayName"`
	Pubkey      string `json:"pubkey"`
}

// PendingSeals lists members waiting for a seal: GET /v1/topics/{name}/pending-seals.
func (h *Handler) PendingSeals(c echo.Context) error {
	pr, err := pageRequest(c)
	if err != nil {
		return err
	}
	page, err := h.Store.PendingSeals(c.Request().Context(), middleware.PrincipalFrom(c), topicParam(c), pr)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderPage(page, func(p *models.PendingSeal) pendingSealView {
		return pendingSealView{MemberID: p.MemberID, DisplayName: p.DisplayName, Pubkey: p.Pubkey}
	}))
}

type sealForRequest struct {
	MemberID     string `json:"memberId"`
	EncryptedKey string `json:"encryptedKey"`
	Nonce        string `json:"nonce"`
	KeyEpoch     int    `json:"keyEpoch"`
}

// Seal stores a seal for another member: POST /v1/topics/{name}/seal.
func (h *Handler) Seal(c echo.Context) error {
	var req sealForRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	k, err := h.Store.Seal(c.Request().Context(), middleware.PrincipalFrom(c), topicParam(c), req.MemberID,
		models.SealInput{EncryptedKey: req.EncryptedKey, Nonce: req.Nonce, KeyEpoch: req.KeyEpoch})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, viewSeal(k))
}

type peerPubkeyRequest struct {
	Pubkey   string `json:"pubkey"`
	MemberID string `json:"memberId"`
}

// SetPeerPubkey replaces a member's identity key: POST /v1/me/peer-pubkey.
func (h *Handler) SetPeerPubkey(c echo.Context) error {
	var req peerPubkeyRequest
	if err := bind(c, &req, false); err != nil {
		return err
	}
	m, err := h.Store.SetPeerPubkey(c.Request().Context(), middleware.PrincipalFrom(c), req.MemberID, req.Pubkey)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewMember(m))
}

// RotateTopicKey starts a new key epoch (a mesh admin or the topic's lead):
// POST /v1/topics/{name}/rotate-key.
func (h *Handler) RotateTopicKey(c echo.Context) error {
	ta, err := h.Store.RotateTopicKey(c.Request().Context(), middleware.PrincipalFrom(c), topicParam(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewTopic(ta, nil))
}
