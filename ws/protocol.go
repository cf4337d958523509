// Package ws is the peer WebSocket protocol of SPEC §8 (documented frame by
// frame in docs/ws-protocol.md): a signed hello, direct messages through the
// message_queue with acks and priority gating, topic sends through the same
// store path as REST, topic subscriptions over the stream hub, and
// presence. The frames themselves are wsproto's; clients live in peer/.
package ws

import (
	"encoding/json"
	"regexp"

	"github.com/coder/websocket"

	"github.com/claudemesh/claudemesh-go/wsproto"
)

// The server's short names for the wire package's frames and constants:
// the frames are defined once, in wsproto, and encoded from there.
type (
	clientFrame        = wsproto.ClientFrame
	challengeFrame     = wsproto.Challenge
	welcomeFrame       = wsproto.Welcome
	ackFrame           = wsproto.Ack
	messageStatusFrame = wsproto.MessageStatus
	peersFrame         = wsproto.Peers
	subscribedFrame    = wsproto.Subscribed
	errorFrame         = wsproto.Error

	// Limits are announced in the welcome frame.
	Limits = wsproto.Limits
	// MemberRef names a member in frames.
	MemberRef = wsproto.MemberRef
	// MessageState is where a direct message stands, for its sender.
	MessageState = wsproto.MessageState
	// PeerView is a session's presence as every transport renders it.
	PeerView = wsproto.PeerView
	// PushView is a direct message as the recipient receives it.
	PushView = wsproto.Push
	// Hello is the signed hello.
	Hello = wsproto.Hello
)

// Protocol names this protocol version in the challenge and welcome frames.
const Protocol = wsproto.Protocol

// Close codes (see wsproto).
const (
	CloseSlowConsumer    websocket.StatusCode = wsproto.CloseSlowConsumer
	CloseProtocolError   websocket.StatusCode = wsproto.CloseProtocolError
	CloseUnauthorized    websocket.StatusCode = wsproto.CloseUnauthorized
	CloseForbidden       websocket.StatusCode = wsproto.CloseForbidden
	CloseHelloTimeout    websocket.StatusCode = wsproto.CloseHelloTimeout
	CloseSessionReplaced websocket.StatusCode = wsproto.CloseSessionReplaced
	CloseAbusive         websocket.StatusCode = wsproto.CloseAbusive
)

// Frame types (see wsproto).
const (
	TypeChallenge     = wsproto.TypeChallenge
	TypeHello         = wsproto.TypeHello
	TypeWelcome       = wsproto.TypeWelcome
	TypeSend          = wsproto.TypeSend
	TypeAck           = wsproto.TypeAck
	TypePush          = wsproto.TypePush
	TypeSetStatus     = wsproto.TypeSetStatus
	TypeListPeers     = wsproto.TypeListPeers
	TypeMessageStatus = wsproto.TypeMessageStatus
	TypePeers         = wsproto.TypePeers
	TypePresence      = wsproto.TypePresence
	TypeSubscribe     = wsproto.TypeSubscribe
	TypeSubscribed    = wsproto.TypeSubscribed
	TypeUnsubscribe   = wsproto.TypeUnsubscribe
	TypeMessage       = wsproto.TypeMessage
	TypeNotification  = wsproto.TypeNotification
	TypeError         = wsproto.TypeError
)

var (
	sessionIDRe   = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	refRe         = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
	pubkeyHexRe   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	displayNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
)

// VerifyHello checks a hello signature (wsproto.VerifyHello).
func VerifyHello(nonce string, h Hello, sigB64 string) error {
	return wsproto.VerifyHello(nonce, h, sigB64)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("ws: encode frame: " + err.Error()) // frames hold strings, numbers and times only
	}
	return b
}

func closeReason(code, detail string) string { return wsproto.CloseReason(code, detail) }
