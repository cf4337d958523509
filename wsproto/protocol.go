// Package wsproto is the peer WebSocket protocol on /ws as data: the
// protocol version, the signed hello, the close codes, the frame types and
// one struct per frame. The broker (ws/) encodes with these structs and
// clients (peer/) decode with them, so the wire format is written once. It
// imports only the standard library and meshcrypto: a client that links it
// links no server code. docs/ws-protocol.md describes every frame.
package wsproto

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"

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
	CloseSlowConsumer    = 4000 // outbound queue overflowed: reconnect and resume
	CloseProtocolError   = 4400 // a frame before hello, a malformed hello, binary before hello
	CloseUnauthorized    = 4401 // bad signature, stale or future ts, unknown member or key
	CloseForbidden       = 4403 // member revoked or mesh archived (at hello or later)
	CloseHelloTimeout    = 4408 // no hello in time
	CloseSessionReplaced = 4409 // the same session connected again
	CloseAbusive         = 4429 // error budget spent (floods of bad or refused frames)
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

// HelloBytes renders the exact bytes a hello signature covers: the context
// line, the challenge nonce and the hello fields, joined by "\n", with no
// trailing newline. Every field is restricted to characters without "\n",
// so the joining is unambiguous. Sig, Pid and Cwd are not signed.
func HelloBytes(nonce string, h Hello) []byte {
	return []byte(strings.Join([]string{HelloContext, nonce, h.MeshID, h.MemberID, h.Pubkey, h.SessionID, h.DisplayName,
		strconv.FormatInt(h.TS, 10)}, "\n"))
}

// SignHello signs a hello for a challenge nonce and returns the signature
// as standard base64.
func SignHello(id meshcrypto.Identity, nonce string, h Hello) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(id.PrivateKey(), HelloBytes(nonce, h)))
}

// ErrBadSignature: a hello signature that does not verify.
var ErrBadSignature = errors.New("the signature does not verify")

// VerifyHello checks a hello signature against the pubkey the hello names.
func VerifyHello(nonce string, h Hello, sigB64 string) error {
	pub, err := meshcrypto.ParsePublicKeyHex(h.Pubkey)
	if err != nil {
		return err
	}
	sig, err := meshcrypto.DecodeBase64(sigB64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return ErrBadSignature
	}
	if !ed25519.Verify(pub, HelloBytes(nonce, h), sig) {
		return ErrBadSignature
	}
	return nil
}

// CloseReason renders "<code>: <detail>" within the 123 bytes a close frame allows.
func CloseReason(code, detail string) string {
	r := code
	if detail != "" {
		r += ": " + detail
	}
	if len(r) > 123 {
		r = r[:123]
	}
	return r
}
