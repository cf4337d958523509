package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/peer"
)

// messageView is one topic message as --json prints it. Text is null
// when it could not be read: Pending (no key for us yet) or Undecryptable.
type messageView struct {
	Seq           int64     `json:"seq"`
	ID            string    `json:"id"`
	Topic         string    `json:"topic"`
	From          string    `json:"from"`
	FromMemberID  string    `json:"fromMemberId"`
	CreatedAt     time.Time `json:"createdAt"`
	BodyVersion   int       `json:"bodyVersion"`
	KeyEpoch      int       `json:"keyEpoch"`
	Text          *string   `json:"text"`
	Plaintext     bool      `json:"plaintext"`
	Pending       bool      `json:"pending"`
	Undecryptable bool      `json:"undecryptable"`
	ReplyToID     *string   `json:"replyToId"`
}

// viewMessage renders a message and its opened body.
func viewMessage(m *client.Message, o peer.Opened) messageView {
	v := messageView{Seq: m.Seq, ID: m.Id.String(), Topic: m.Topic, From: m.SenderDisplayName, FromMemberID: m.SenderMemberId.String(),
		CreatedAt: m.CreatedAt, BodyVersion: int(m.BodyVersion), KeyEpoch: m.KeyEpoch, Text: o.Text, Plaintext: o.Plaintext,
		Pending: o.Pending, Undecryptable: o.Undecryptable}
	if m.ReplyToId != nil {
		s := m.ReplyToId.String()
		v.ReplyToID = &s
	}
	return v
}

// printMessage writes one human line: "12:04:05  #general  @ada  text".
func printMessage(w io.Writer, v messageView, now time.Time) {
	var body string
	switch {
	case v.Pending:
		body = "[encrypted: no key for you yet]"
	case v.Undecryptable:
		body = "[cannot decrypt this message]"
	case v.Plaintext:
		body = "[plaintext] " + oneLine(*v.Text)
	default:
		body = oneLine(*v.Text)
	}
	when := v.CreatedAt.Local().Format("15:04:05")
	if now.Sub(v.CreatedAt) > 20*time.Hour {
		when = v.CreatedAt.Local().Format("Jan 02 15:04")
	}
	fmt.Fprintf(w, "%-12s #%s  @%s: %s\n", when, v.Topic, v.From, body)
}
