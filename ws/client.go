package ws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/coder/websocket"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
)

// Client is a peer's end of /ws: the CLI, the tests and the load generator
// use it. It does the challenge and hello; everything after is frames.
type Client struct {
	conn *websocket.Conn
	// Nonce is the server's challenge.
	Nonce string
	// Welcome is the server's answer to an accepted hello.
	Welcome *Frame
	// pending holds frames Call read past while waiting for its answer;
	// Next returns them first. A Client is used by one goroutine at a time.
	pending []*Frame
	refs    int
}

// HelloOptions identify the peer.
type HelloOptions struct {
	Identity    meshcrypto.Identity
	MeshID      string
	MemberID    string
	SessionID   string
	DisplayName string
	Pid         *int
	Cwd         *string
	// Now is the clock the ts is read from (time.Now when nil).
	Now func() time.Time
}

// Frame is any server frame; Type says which fields are set.
type Frame struct {
	Type string `json:"type"`
	Ref  string `json:"ref"`

	// challenge, welcome
	Nonce        string     `json:"nonce"`
	Protocol     string     `json:"protocol"`
	ServerTime   time.Time  `json:"serverTime"`
	ConnectionID string     `json:"connectionId"`
	Member       *MemberRef `json:"member"`
	Session      *PeerView  `json:"session"`
	Limits       *Limits    `json:"limits"`

	// ack
	To       string   `json:"to"`
	IDs      []string `json:"ids"`
	Seq      int64    `json:"seq"`
	Replayed *bool    `json:"replayed"`
	Skipped  []string `json:"skipped"`
	Missing  []string `json:"missing"`
	Acked    *int     `json:"acked"`
	Changed  *bool    `json:"changed"`

	// push
	ID              string     `json:"id"`
	From            *MemberRef `json:"from"`
	Priority        string     `json:"priority"`
	Ciphertext      string     `json:"ciphertext"`
	ClientMessageID *string    `json:"clientMessageId"`
	CreatedAt       time.Time  `json:"createdAt"`
	ExpiresAt       time.Time  `json:"expiresAt"`
	Attempt         int        `json:"attempt"`

	// message, notification, presence: the SSE event's data
	Data json.RawMessage `json:"data"`
	// peers
	Peers []PeerView `json:"peers"`
	// message_status
	Messages []MessageState `json:"messages"`
	// subscribed
	Topics  []string `json:"topics"`
	LastSeq int64    `json:"lastSeq"`
	Resumed bool     `json:"resumed"`
	Clamped bool     `json:"clamped"`
	// error
	Code    string `json:"code"`
	Message string `json:"message"`
	// subscription_ended: why, and whether to subscribe again
	Reason    string `json:"reason"`
	Reconnect *bool  `json:"reconnect"`
}

// Decode reads a message, notification or presence frame's data.
func (f *Frame) Decode(v any) error { return json.Unmarshal(f.Data, v) }

// Connect dials /ws (a ws:// or wss:// URL) and reads the challenge.
func Connect(ctx context.Context, url string, hc *http.Client) (*Client, error) {
	wc, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	wc.SetReadLimit(64 << 20)
	c := &Client{conn: wc}
	f, err := c.Next(ctx)
	if err != nil {
		_ = wc.CloseNow()
		return nil, err
	}
	if f.Type != TypeChallenge {
		_ = wc.CloseNow()
		return nil, fmt.Errorf("expected a challenge, got %q", f.Type)
	}
	c.Nonce = f.Nonce
	return c, nil
}

// Dial connects and says hello; it returns once welcomed.
func Dial(ctx context.Context, url string, hc *http.Client, opt HelloOptions) (*Client, error) {
	c, err := Connect(ctx, url, hc)
	if err != nil {
		return nil, err
	}
	if err := c.Hello(ctx, opt); err != nil {
		_ = c.conn.CloseNow()
		return nil, err
	}
	return c, nil
}

// HelloFrame builds the signed hello for this connection's challenge.
func (c *Client) HelloFrame(opt HelloOptions) map[string]any {
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	h := Hello{MeshID: opt.MeshID, MemberID: opt.MemberID, Pubkey: opt.Identity.PublicKeyHex(), SessionID: opt.SessionID,
		DisplayName: opt.DisplayName, TS: now().UnixMilli()}
	f := map[string]any{"type": TypeHello, "meshId": h.MeshID, "memberId": h.MemberID, "pubkey": h.Pubkey, "sessionId": h.SessionID,
		"ts": h.TS, "sig": SignHello(opt.Identity, c.Nonce, h)}
	if h.DisplayName != "" {
		f["displayName"] = h.DisplayName
	}
	if opt.Pid != nil {
		f["pid"] = *opt.Pid
	}
	if opt.Cwd != nil {
		f["cwd"] = *opt.Cwd
	}
	return f
}

// Hello sends a hello and waits for the welcome. A refusal comes back as
// the close error (see CloseStatus).
func (c *Client) Hello(ctx context.Context, opt HelloOptions) error {
	if err := c.Send(ctx, c.HelloFrame(opt)); err != nil {
		return err
	}
	f, err := c.Next(ctx)
	if err != nil {
		return err
	}
	if f.Type != TypeWelcome {
		return fmt.Errorf("expected welcome, got %q", f.Type)
	}
	c.Welcome = f
	return nil
}

// Send writes one frame as JSON.
func (c *Client) Send(ctx context.Context, frame any) error {
	b, err := json.Marshal(frame)
	if err != nil {
		return err
	}
	return c.conn.Write(ctx, websocket.MessageText, b)
}

// SendRaw writes raw bytes as one text frame.
func (c *Client) SendRaw(ctx context.Context, b []byte) error {
	return c.conn.Write(ctx, websocket.MessageText, b)
}

// Next reads the next frame (frames Call read past come first, in order).
func (c *Client) Next(ctx context.Context) (*Frame, error) {
	if len(c.pending) > 0 {
		f := c.pending[0]
		c.pending = c.pending[1:]
		return f, nil
	}
	return c.read(ctx)
}

// NextOf reads frames until one of the given types arrives, dropping the
// others (pushes must still be acked by whoever cares about them).
func (c *Client) NextOf(ctx context.Context, types ...string) (*Frame, error) {
	for {
		f, err := c.Next(ctx)
		if err != nil {
			return nil, err
		}
		if slices.Contains(types, f.Type) {
			return f, nil
		}
	}
}

// Call sends a frame with a fresh ref (unless it has one) and returns the
// server's answer to it. Pushes, presence and topic messages that arrive
// first are kept for Next: the server may push before it answers (a turn
// to idle releases held messages before the set_status ack is written).
func (c *Client) Call(ctx context.Context, frame map[string]any) (*Frame, error) {
	ref, _ := frame["ref"].(string)
	if ref == "" {
		c.refs++
		ref = fmt.Sprintf("c%d", c.refs)
		frame["ref"] = ref
	}
	if err := c.Send(ctx, frame); err != nil {
		return nil, err
	}
	for {
		f, err := c.read(ctx)
		if err != nil {
			return nil, err
		}
		if f.Ref == ref && f.Type != TypeMessage && f.Type != TypePresence {
			return f, nil
		}
		c.pending = append(c.pending, f)
	}
}

func (c *Client) read(ctx context.Context) (*Frame, error) {
	_, b, err := c.conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("undecodable frame: %w", err)
	}
	return &f, nil
}

// Conn exposes the underlying connection (pings, close).
func (c *Client) Conn() *websocket.Conn { return c.conn }

// Close ends the connection normally.
func (c *Client) Close() error { return c.conn.Close(websocket.StatusNormalClosure, "bye") }

// CloseStatus extracts the close code and reason the server ended a
// connection with (-1 when err is not a close).
func CloseStatus(err error) (websocket.StatusCode, string) {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Reason
	}
	return -1, ""
}

// SealedSend builds a direct send frame: plaintext boxed from the sender's
// identity to the recipient's key (crypto_box, SPEC §9).
func SealedSend(sender meshcrypto.Identity, to, recipientPubkeyHex string, plaintext []byte, priority, clientMessageID, ref string) (map[string]any, error) {
	ct, nonce, err := meshcrypto.SealDirect(plaintext, sender, recipientPubkeyHex)
	if err != nil {
		return nil, err
	}
	f := map[string]any{"type": TypeSend, "to": to, "nonce": nonce, "ciphertext": ct}
	if priority != "" {
		f["priority"] = priority
	}
	if clientMessageID != "" {
		f["clientMessageId"] = clientMessageID
	}
	if ref != "" {
		f["ref"] = ref
	}
	return f, nil
}
