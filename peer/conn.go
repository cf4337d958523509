package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// Conn is a peer's end of /ws: the challenge and the signed hello, then
// frames. Frames are wsproto's structs both ways. Next and Call are used by
// one goroutine at a time; Send may be called concurrently.
type Conn struct {
	conn *websocket.Conn
	// Nonce is the server's challenge.
	Nonce string
	// Welcome is the server's answer to an accepted hello.
	Welcome *wsproto.Welcome
	// pending holds frames Call read past while waiting for its answer;
	// Next returns them first.
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

// Frame is one frame from the broker: its type and ref, and its bytes to
// decode into the wsproto struct for its type (Decode, or the As… helpers).
type Frame struct {
	Type string
	Ref  string
	Raw  []byte
}

// Decode reads the whole frame into v (a wsproto frame struct).
func (f *Frame) Decode(v any) error {
	if err := json.Unmarshal(f.Raw, v); err != nil {
		return fmt.Errorf("decode %s frame: %w", f.Type, err)
	}
	return nil
}

// As decodes a frame into the wsproto struct T.
func As[T any](f *Frame) (T, error) {
	var v T
	err := f.Decode(&v)
	return v, err
}

// Connect dials /ws (a ws:// or wss:// URL) and reads the challenge.
func Connect(ctx context.Context, url string, hc *http.Client) (*Conn, error) {
	// The handshake response's body needs no closing (coder/websocket's Dial).
	wc, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc}) //nolint:bodyclose // see above
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	wc.SetReadLimit(64 << 20)
	c := &Conn{conn: wc}
	f, err := c.Next(ctx)
	if err != nil {
		_ = wc.CloseNow()
		return nil, err
	}
	ch, err := As[wsproto.Challenge](f)
	if err != nil || f.Type != wsproto.TypeChallenge {
		_ = wc.CloseNow()
		return nil, fmt.Errorf("expected a challenge, got %q", f.Type)
	}
	c.Nonce = ch.Nonce
	return c, nil
}

// Dial connects and says hello; it returns once welcomed.
func Dial(ctx context.Context, url string, hc *http.Client, opt HelloOptions) (*Conn, error) {
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
func (c *Conn) HelloFrame(opt HelloOptions) wsproto.Hello {
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	h := wsproto.Hello{Type: wsproto.TypeHello, MeshID: opt.MeshID, MemberID: opt.MemberID, Pubkey: opt.Identity.PublicKeyHex(),
		SessionID: opt.SessionID, DisplayName: opt.DisplayName, TS: now().UnixMilli(), Pid: opt.Pid, Cwd: opt.Cwd}
	h.Sig = wsproto.SignHello(opt.Identity, c.Nonce, h)
	return h
}

// Hello sends a hello and waits for the welcome. A refusal comes back as
// the close error (see CloseStatus).
func (c *Conn) Hello(ctx context.Context, opt HelloOptions) error {
	if err := c.Send(ctx, c.HelloFrame(opt)); err != nil {
		return err
	}
	f, err := c.Next(ctx)
	if err != nil {
		return err
	}
	if f.Type != wsproto.TypeWelcome {
		return fmt.Errorf("expected welcome, got %q", f.Type)
	}
	w, err := As[wsproto.Welcome](f)
	if err != nil {
		return err
	}
	c.Welcome = &w
	return nil
}

// Send writes one frame as JSON.
func (c *Conn) Send(ctx context.Context, frame any) error {
	b, err := json.Marshal(frame)
	if err != nil {
		return err
	}
	return c.conn.Write(ctx, websocket.MessageText, b)
}

// SendRaw writes raw bytes as one text frame.
func (c *Conn) SendRaw(ctx context.Context, b []byte) error {
	return c.conn.Write(ctx, websocket.MessageText, b)
}

// Next reads the next frame (frames Call read past come first, in order).
func (c *Conn) Next(ctx context.Context) (*Frame, error) {
	if len(c.pending) > 0 {
		f := c.pending[0]
		c.pending = c.pending[1:]
		return f, nil
	}
	return c.read(ctx)
}

// NextOf reads frames until one of the given types arrives, dropping the
// others (pushes must still be acked by whoever cares about them).
func (c *Conn) NextOf(ctx context.Context, types ...string) (*Frame, error) {
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

// NextRef returns a fresh ref for a request on this connection.
func (c *Conn) NextRef() string {
	c.refs++
	return "c" + strconv.Itoa(c.refs)
}

// Call sends a request with a fresh ref (unless it has one) and returns
// the server's answer to it, an error frame included. Pushes, presence and
// topic messages that arrive first are kept for Next: the server may push
// before it answers (a turn to idle releases held messages before the
// set_status ack is written).
func (c *Conn) Call(ctx context.Context, req wsproto.Request) (*Frame, error) {
	ref := req.GetRef()
	if ref == "" {
		ref = c.NextRef()
		req.SetRef(ref)
	}
	if err := c.Send(ctx, req); err != nil {
		return nil, err
	}
	for {
		f, err := c.read(ctx)
		if err != nil {
			return nil, err
		}
		if f.Ref == ref && f.Type != wsproto.TypeMessage && f.Type != wsproto.TypePresence {
			return f, nil
		}
		c.pending = append(c.pending, f)
	}
}

func (c *Conn) read(ctx context.Context) (*Frame, error) {
	_, b, err := c.conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	var h wsproto.Header
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("undecodable frame: %w", err)
	}
	f := &Frame{Type: h.Type, Raw: b}
	if h.Ref != nil {
		f.Ref = *h.Ref
	}
	return f, nil
}

// Socket exposes the underlying connection (pings, close).
func (c *Conn) Socket() *websocket.Conn { return c.conn }

// Close ends the connection normally.
func (c *Conn) Close() error { return c.conn.Close(websocket.StatusNormalClosure, "bye") }

// CloseNow drops the connection without a close handshake.
func (c *Conn) CloseNow() error { return c.conn.CloseNow() }

// CloseStatus extracts the close code and reason the server ended a
// connection with (-1 when err is not a close).
func CloseStatus(err error) (int, string) {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return int(ce.Code), ce.Reason
	}
	return -1, ""
}

// SealedSend builds a direct send: plaintext boxed from the sender's
// identity to the recipient's key (crypto_box).
func SealedSend(sender meshcrypto.Identity, to, recipientPubkeyHex string, plaintext []byte, priority, clientMessageID string) (*wsproto.Send, error) {
	ct, nonce, err := meshcrypto.SealDirect(plaintext, sender, recipientPubkeyHex)
	if err != nil {
		return nil, err
	}
	return &wsproto.Send{Type: wsproto.TypeSend, To: to, Nonce: nonce, Ciphertext: ct, Priority: priority, ClientMessageID: clientMessageID}, nil
}
