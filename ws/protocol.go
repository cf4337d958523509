// Package ws is the peer WebSocket protocol of SPEC §8 (documented frame by
// frame in docs/ws-protocol.md): a signed hello, direct messages through the
// message_queue with acks and priority gating, topic sends through the same
// store path as REST, topic subscriptions over the stream hub, and
// presence.
package ws

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
)

// Protocol names this protocol version in the challenge and welcome frames.
const Protocol = "claudemesh-ws-v1"

// HelloContext is the first line of the signed hello bytes. Any change to
// the layout gets a new version, so an old signature never verifies under
// a new reading.
const HelloContext = "claudemesh-ws-hello-v1"

// Close codes (RFC 6455 private range). The close reason is "<code>: <detail>".
const (
	CloseSlowConsumer    websocket.StatusCode = 4000 // outbound queue overflowed: reconnect and resume
	CloseProtocolError   websocket.StatusCode = 4400 // a frame before hello, a malformed hello, binary before hello
	CloseUnauthorized    websocket.StatusCode = 4401 // bad signature, stale or future ts, unknown member or key
	CloseForbidden       websocket.StatusCode = 4403 // member revoked or mesh archived (at hello or later)
	CloseHelloTimeout    websocket.StatusCode = 4408 // no hello in time
	CloseSessionReplaced websocket.StatusCode = 4409 // the same session connected again
	CloseAbusive         websocket.StatusCode = 4429 // error budget spent (floods of bad or refused frames)
)

// Frame types.
const (
	TypeChallenge = "challenge"
	TypeHello     = "hello"
	TypeWelcome   = "welcome"
	TypeSend      = "send"
	TypeAck       = "ack"
	TypePush      = "push"
	TypeSetStatus = "set_status"
	TypeListPeers = "list_peers"
	// TypeMessageStatus is both the question (ids) and its answer (messages).
	TypeMessageStatus = "message_status"
	TypePeers         = "peers"
	TypePresence      = "presence"
	TypeSubscribe     = "subscribe"
	TypeSubscribed    = "subscribed"
	TypeUnsubscribe   = "unsubscribe"
	TypeMessage       = "message"
	TypeNotification  = "notification"
	TypeError         = "error"
)

var (
	sessionIDRe   = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	refRe         = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
	pubkeyHexRe   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	displayNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
)

// Hello is what a peer signs to prove it holds the member's identity key.
type Hello struct {
	MeshID      string
	MemberID    string
	Pubkey      string // the member's ed25519 key, 64 lowercase hex
	SessionID   string
	DisplayName string // optional; "" when absent
	TS          int64  // unix milliseconds
}

// HelloBytes renders the exact bytes a hello signature covers: the context
// line, the challenge nonce and the hello fields, joined by "\n", with no
// trailing newline. Every field is restricted to characters without "\n",
// so the joining is unambiguous.
func HelloBytes(nonce string, h Hello) []byte {
	return []byte(strings.Join([]string{HelloContext, nonce, h.MeshID, h.MemberID, h.Pubkey, h.SessionID, h.DisplayName,
		strconv.FormatInt(h.TS, 10)}, "\n"))
}

// SignHello signs a hello for a challenge nonce and returns the signature
// as standard base64.
func SignHello(id meshcrypto.Identity, nonce string, h Hello) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(id.PrivateKey(), HelloBytes(nonce, h)))
}

var errBadSignature = errors.New("the signature does not verify")

// VerifyHello checks a hello signature against the pubkey the hello names.
func VerifyHello(nonce string, h Hello, sigB64 string) error {
	pub, err := meshcrypto.ParsePublicKeyHex(h.Pubkey)
	if err != nil {
		return err
	}
	sig, err := meshcrypto.DecodeBase64(sigB64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errBadSignature
	}
	if !ed25519.Verify(pub, HelloBytes(nonce, h), sig) {
		return errBadSignature
	}
	return nil
}

// ---- frames a client sends ----

// clientFrame is every client frame; Type says which fields apply.
type clientFrame struct {
	Type string `json:"type"`
	Ref  string `json:"ref,omitempty"`

	// hello
	MeshID      string  `json:"meshId,omitempty"`
	MemberID    string  `json:"memberId,omitempty"`
	Pubkey      string  `json:"pubkey,omitempty"`
	SessionID   string  `json:"sessionId,omitempty"`
	DisplayName string  `json:"displayName,omitempty"`
	TS          int64   `json:"ts,omitempty"`
	Sig         string  `json:"sig,omitempty"`
	Pid         *int    `json:"pid,omitempty"`
	Cwd         *string `json:"cwd,omitempty"`

	// send
	To              string        `json:"to,omitempty"`
	Priority        string        `json:"priority,omitempty"`
	Nonce           string        `json:"nonce,omitempty"`
	Ciphertext      string        `json:"ciphertext,omitempty"`
	ClientMessageID string        `json:"clientMessageId,omitempty"`
	BodyVersion     int           `json:"bodyVersion,omitempty"`
	KeyEpoch        int           `json:"keyEpoch,omitempty"`
	Mentions        []string      `json:"mentions,omitempty"`
	ReplyToID       string        `json:"replyToId,omitempty"`
	Envelopes       []EnvelopeOut `json:"envelopes,omitempty"`

	// ack
	IDs []string `json:"ids,omitempty"`

	// set_status
	Status  string  `json:"status,omitempty"`
	Summary *string `json:"summary,omitempty"`
	Source  string  `json:"source,omitempty"`

	// subscribe
	Topics []string `json:"topics,omitempty"`
	Since  *int64   `json:"since,omitempty"`
}

// EnvelopeOut is one recipient's copy in a broadcast send.
type EnvelopeOut struct {
	To         string `json:"to"`
	Nonce      string `json:"nonce"`
	Ciphertext string `json:"ciphertext"`
}

// ---- frames the server sends ----

type challengeFrame struct {
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

type welcomeFrame struct {
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

// ackFrame answers send, ack (when it carried a ref), set_status and
// unsubscribe; only the fields of the answered frame are present.
type ackFrame struct {
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

type messageStatusFrame struct {
	Type     string         `json:"type"`
	Ref      string         `json:"ref,omitempty"`
	Messages []MessageState `json:"messages"`
}

type peersFrame struct {
	Type  string     `json:"type"`
	Ref   string     `json:"ref,omitempty"`
	Peers []PeerView `json:"peers"`
}

type subscribedFrame struct {
	Type    string   `json:"type"`
	Ref     string   `json:"ref,omitempty"`
	Topics  []string `json:"topics"`
	LastSeq int64    `json:"lastSeq"`
	Resumed bool     `json:"resumed"`
	Clamped bool     `json:"clamped,omitempty"` // since was beyond lastSeq; resumed from lastSeq
}

type errorFrame struct {
	Type    string  `json:"type"`
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Ref     *string `json:"ref"`
	// Reason and Reconnect accompany subscription_ended: the same fixed
	// codes as an SSE end event.
	Reason    string `json:"reason,omitempty"`
	Reconnect *bool  `json:"reconnect,omitempty"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("ws: encode frame: " + err.Error()) // frames hold strings, numbers and times only
	}
	return b
}

// closeReason renders "<code>: <detail>" within the 123 bytes a close frame allows.
func closeReason(code, detail string) string {
	r := code
	if detail != "" {
		r += ": " + detail
	}
	if len(r) > 123 {
		r = r[:123]
	}
	return r
}
