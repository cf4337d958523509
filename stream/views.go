package stream

import (
	"time"

	"github.com/claudemesh/claudemesh-go/models"
)

// MessageView is a message as every transport renders it (REST history,
// SSE and WebSocket events), so the fields are the same everywhere.
type MessageView struct {
	ID                string    `json:"id"`
	MeshID            string    `json:"meshId"`
	TopicID           string    `json:"topicId"`
	Topic             string    `json:"topic"`
	Seq               int64     `json:"seq"`
	SenderMemberID    string    `json:"senderMemberId"`
	SenderPubkey      string    `json:"senderPubkey"`
	SenderDisplayName string    `json:"senderDisplayName"`
	Ciphertext        string    `json:"ciphertext"`
	Nonce             string    `json:"nonce"`
	BodyVersion       int       `json:"bodyVersion"`
	KeyEpoch          int       `json:"keyEpoch"`
	Priority          string    `json:"priority"`
	ReplyToID         *string   `json:"replyToId"`
	ClientMessageID   *string   `json:"clientMessageId"`
	CreatedAt         time.Time `json:"createdAt"`
}

// ViewMessage renders a stored message.
func ViewMessage(m *models.MessageRow) MessageView {
	return MessageView{ID: m.ID, MeshID: m.MeshID, TopicID: m.TopicID, Topic: m.TopicName, Seq: m.Seq, SenderMemberID: m.SenderMemberID,
		SenderPubkey: m.SenderPubkey, SenderDisplayName: m.SenderDisplayName, Ciphertext: m.Ciphertext, Nonce: m.Nonce,
		BodyVersion: m.BodyVersion, KeyEpoch: m.KeyEpoch, Priority: m.Priority, ReplyToID: m.ReplyToID, ClientMessageID: m.ClientMessageID, CreatedAt: m.CreatedAt.UTC()}
}

// NotificationView is a notification as REST and streams render it.
type NotificationView struct {
	ID                string     `json:"id"`
	Kind              string     `json:"kind"`
	TopicID           string     `json:"topicId"`
	Topic             string     `json:"topic"`
	MessageID         string     `json:"messageId"`
	Seq               int64      `json:"seq"`
	SenderMemberID    string     `json:"senderMemberId"`
	SenderDisplayName string     `json:"senderDisplayName"`
	BodyVersion       int        `json:"bodyVersion"`
	KeyEpoch          int        `json:"keyEpoch"`
	Ciphertext        string     `json:"ciphertext"`
	Nonce             string     `json:"nonce"`
	CreatedAt         time.Time  `json:"createdAt"`
	ReadAt            *time.Time `json:"readAt"`
}

// ViewNotification renders a notification.
func ViewNotification(n *models.NotificationRow) NotificationView {
	return NotificationView{ID: n.ID, Kind: n.Kind, TopicID: n.TopicID, Topic: n.TopicName, MessageID: n.MessageID, Seq: n.Seq,
		SenderMemberID: n.SenderMemberID, SenderDisplayName: n.SenderDisplayName, BodyVersion: n.BodyVersion, KeyEpoch: n.KeyEpoch,
		Ciphertext: n.Ciphertext, Nonce: n.Nonce, CreatedAt: n.CreatedAt.UTC(), ReadAt: utcPtr(n.ReadAt)}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
