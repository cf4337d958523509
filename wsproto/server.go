package wsproto

import (
	"encoding/json"
	"time"
)

// Frames the broker sends. The broker encodes these structs; clients read
// a frame's type and ref (Header), then decode the frame into the struct
// for its type.

// Header is what every frame has: its type and, on an answer, the ref of
// the request it answers (an error frame's ref is null when it answers none).
type Header struct {
	Type string  `json:"type"`
	Ref  *string `json:"ref"`
}

// Challenge is the first frame on a connection: sign Nonce in the hello.
type Challenge struct {
	Type       string    `json:"type"`
	Nonce      string    `json:"nonce"`
	Protocol   string    `json:"protocol"`
	ServerTime time.Time `json:"serverTime"`
}

// Limits are announced in the welcome frame so clients can stay inside them.
type Limits struct {
	MaxFrameBytes   int64   `json:"maxFrameBytes"`
	MaxMessageBytes int     `json:"maxMessageBytes"`
	SendsPerSecond  float64 `json:"sendsPerSecond"`
	SendBurst       int     `json:"sendBurst"`
	MaxQueuedBytes  int64   `json:"maxQueuedBytes"`
	MaxEnvelopes    int     `json:"maxEnvelopes"`
}

// Welcome accepts a hello.
type Welcome struct {
	Type         string    `json:"type"`
	Protocol     string    `json:"protocol"`
	ConnectionID string    `json:"connectionId"`
	Member       MemberRef `json:"member"`
	Session      PeerView  `json:"session"`
	Limits       Limits    `json:"limits"`
	ServerTime   time.Time `json:"serverTime"`
}

// MemberRef names a member in frames.
type MemberRef struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Pubkey      string `json:"pubkey"`
}

// Ack answers send, ack (when it carried a ref), set_status and
// unsubscribe; only the fields of the answered frame are present.
type Ack struct {
	Type     string    `json:"type"`
	Ref      string    `json:"ref,omitempty"`
	To       string    `json:"to,omitempty"`
	IDs      []string  `json:"ids,omitempty"`
	Seq      int64     `json:"seq,omitempty"`
	Replayed *bool     `json:"replayed,omitempty"`
	Skipped  []string  `json:"skipped,omitempty"`
	Missing  []string  `json:"missing,omitempty"`
	Acked    *int      `json:"acked,omitempty"`
	Changed  *bool     `json:"changed,omitempty"`
	Session  *PeerView `json:"session,omitempty"`
}

// Push is a direct message as the recipient receives it.
type Push struct {
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

// MessageState is where a direct message stands, for its sender: queued,
// delivered (pushed, not acked), acked or expired.
type MessageState struct {
	ID          string     `json:"id"`
	To          string     `json:"to"`
	State       string     `json:"state"`
	CreatedAt   time.Time  `json:"createdAt"`
	DeliveredAt *time.Time `json:"deliveredAt"`
	AckedAt     *time.Time `json:"ackedAt"`
	ExpiredAt   *time.Time `json:"expiredAt"`
}

// MessageStatus answers a MessageStatusQuery.
type MessageStatus struct {
	Type     string         `json:"type"`
	Ref      string         `json:"ref,omitempty"`
	Messages []MessageState `json:"messages"`
}

// PeerView is a session's presence as every transport renders it: GET
// /v1/peers items, peers and presence frames and the SSE presence event.
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

// Peers answers ListPeers.
type Peers struct {
	Type  string     `json:"type"`
	Ref   string     `json:"ref,omitempty"`
	Peers []PeerView `json:"peers"`
}

// Subscribed answers Subscribe.
type Subscribed struct {
	Type    string   `json:"type"`
	Ref     string   `json:"ref,omitempty"`
	Topics  []string `json:"topics"`
	LastSeq int64    `json:"lastSeq"`
	Resumed bool     `json:"resumed"`
	Clamped bool     `json:"clamped,omitempty"` // since was beyond lastSeq; resumed from lastSeq
}

// Error refuses a frame; the connection stays open.
type Error struct {
	Type    string  `json:"type"`
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Ref     *string `json:"ref"`
	// Reason and Reconnect accompany subscription_ended: the same fixed
	// codes as an SSE end event.
	Reason    string `json:"reason,omitempty"`
	Reconnect *bool  `json:"reconnect,omitempty"`
}

// Event is a message, notification or presence frame: Data is the same
// JSON as the SSE event of that name (the broker renders these bytes once
// per event, see stream.WSFrame).
type Event struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}
