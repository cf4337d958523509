package ws

import (
	"time"

	"github.com/claudemesh/claudemesh-go/models"
)

// PeerView is a session's presence as every transport renders it: GET
// /v1/peers items, WebSocket presence/peers frames and the SSE presence
// event.
type PeerView struct {
	MemberID       string     `json:"memberId"`
	DisplayName    string     `json:"displayName"`
	Pubkey         string     `json:"pubkey"`
	SessionID      string     `json:"sessionId"`
	Status         string     `json:"status"`
	StatusSource   string     `json:"statusSource"`
	StatusAt       time.Time  `json:"statusAt"`
	Summary        string     `json:"summary"`
	Pid            *int       `json:"pid"`
	Cwd            string     `json:"cwd"`
	ConnectedAt    time.Time  `json:"connectedAt"`
	LastSeenAt     time.Time  `json:"lastSeenAt"`
	DisconnectedAt *time.Time `json:"disconnectedAt"`
}

// ViewPeer renders a session.
func ViewPeer(p *models.PresenceRow) PeerView {
	v := PeerView{MemberID: p.MemberID, DisplayName: p.DisplayName, Pubkey: p.Pubkey, SessionID: p.SessionID, Status: p.Status,
		StatusSource: p.StatusSource, StatusAt: p.StatusAt.UTC(), Summary: p.Summary, Pid: p.Pid, Cwd: p.Cwd,
		ConnectedAt: p.ConnectedAt.UTC(), LastSeenAt: p.LastSeenAt.UTC()}
	if p.DisconnectedAt != nil {
		t := p.DisconnectedAt.UTC()
		v.DisconnectedAt = &t
	}
	return v
}

// PushView is a direct message as the recipient receives it.
type PushView struct {
	Type            string    `json:"type"`
	ID              string    `json:"id"`
	From            MemberRef `json:"from"`
	Priority        string    `json:"priority"`
	Nonce           string    `json:"nonce"`
	Ciphertext      string    `json:"ciphertext"`
	ClientMessageID *string   `json:"clientMessageId"`
	CreatedAt       time.Time `json:"createdAt"`
	ExpiresAt       time.Time `json:"expiresAt"`
	// Attempt is 1 on first delivery and higher when the row is delivered
	// again after a connection ended without acking it.
	Attempt int `json:"attempt"`
}

func viewPush(r *models.QueuedRow) PushView {
	return PushView{Type: TypePush, ID: r.ID, From: MemberRef{ID: r.SenderMemberID, DisplayName: r.SenderDisplayName, Pubkey: r.SenderPubkey},
		Priority: r.Priority, Nonce: r.Nonce, Ciphertext: r.Ciphertext, ClientMessageID: r.ClientMessageID, CreatedAt: r.CreatedAt.UTC(),
		ExpiresAt: r.ExpiresAt.UTC(), Attempt: r.Attempts}
}
