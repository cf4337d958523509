// Package peertest helps tests that talk /ws through peer.Conn: one view
// of any server frame for assertions, and frames as maps for tests that
// send what the protocol does not allow. Client code never uses it: it
// decodes each frame into its own wsproto struct.
package peertest

import (
	"encoding/json"
	"time"

	"github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// FrameView reads any server frame's fields at once, for assertions; the
// client code decodes each frame into its own wsproto struct instead.
type FrameView struct {
	Type         string                 `json:"type"`
	Ref          string                 `json:"ref"`
	Nonce        string                 `json:"nonce"`
	ConnectionID string                 `json:"connectionId"`
	Member       *wsproto.MemberRef     `json:"member"`
	Session      *wsproto.PeerView      `json:"session"`
	To           string                 `json:"to"`
	IDs          []string               `json:"ids"`
	Seq          int64                  `json:"seq"`
	Replayed     *bool                  `json:"replayed"`
	Skipped      []string               `json:"skipped"`
	Missing      []string               `json:"missing"`
	Acked        *int                   `json:"acked"`
	Changed      *bool                  `json:"changed"`
	ID           string                 `json:"id"`
	From         *wsproto.MemberRef     `json:"from"`
	Priority     string                 `json:"priority"`
	Ciphertext   string                 `json:"ciphertext"`
	CreatedAt    time.Time              `json:"createdAt"`
	Attempt      int                    `json:"attempt"`
	Data         json.RawMessage        `json:"data"`
	Peers        []wsproto.PeerView     `json:"peers"`
	Messages     []wsproto.MessageState `json:"messages"`
	Topics       []string               `json:"topics"`
	LastSeq      int64                  `json:"lastSeq"`
	Resumed      bool                   `json:"resumed"`
	Clamped      bool                   `json:"clamped"`
	Code         string                 `json:"code"`
	Message      string                 `json:"message"`
	Reason       string                 `json:"reason"`
	Reconnect    *bool                  `json:"reconnect"`
}

// View decodes a frame for assertions (a zero view when f is nil).
func View(f *peer.Frame) FrameView {
	var v FrameView
	if f != nil {
		_ = json.Unmarshal(f.Raw, &v)
	}
	return v
}

// ToMap renders a frame struct as a map, for tests that then change or
// drop fields to send what the protocol does not allow.
func ToMap(v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	return m
}

// DecodeData reads a message, notification or presence frame's data.
func DecodeData(f *peer.Frame, v any) error {
	e, err := peer.As[wsproto.Event](f)
	if err != nil {
		return err
	}
	return json.Unmarshal(e.Data, v)
}

// MapFrame is a request written as a map, for tests that send what the
// protocol does not define (unknown fields, wrong types) through Call.
type MapFrame map[string]any

// GetRef is the "ref" entry.
func (m MapFrame) GetRef() string { r, _ := m["ref"].(string); return r }

// SetRef sets the "ref" entry.
func (m MapFrame) SetRef(r string) { m["ref"] = r }
