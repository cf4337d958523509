package ws

import (
	"github.com/claudemesh/claudemesh-go/models"
)

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

func viewPush(r *models.QueuedRow) PushView {
	return PushView{Type: TypePush, ID: r.ID, From: MemberRef{ID: r.SenderMemberID, DisplayName: r.SenderDisplayName, Pubkey: r.SenderPubkey},
		Priority: r.Priority, Nonce: r.Nonce, Ciphertext: r.Ciphertext, ClientMessageID: r.ClientMessageID, CreatedAt: r.CreatedAt.UTC(),
		ExpiresAt: r.ExpiresAt.UTC(), Attempt: r.Attempts}
}
