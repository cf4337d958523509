package peer

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// Priorities a direct message may have.
var Priorities = []string{"now", "next", "low"}

// ErrNobodyOnline: a broadcast found no other peer online.
var ErrNobodyOnline = errors.New("no other peer is online")

// Sent is the broker's ack of a direct send or broadcast, and whom it
// went to ("@name", or "*").
type Sent struct {
	Label string
	Ack   wsproto.Ack
}

// SendDirect boxes text for one member (@name, member id or pubkey) or,
// with to "*", once for every other peer online now, and sends it on c.
// clientPrefix names the front end in the idempotency key.
func (s *Session) SendDirect(ctx context.Context, c Caller, to, text, priority, clientPrefix string) (Sent, error) {
	if !slices.Contains(Priorities, priority) {
		return Sent{}, fmt.Errorf("priority must be now, next or low, not %q", priority)
	}
	cid := NewClientID(clientPrefix)
	var req *wsproto.Send
	label := "*"
	if to == "*" {
		peers, err := Ask[wsproto.Peers](ctx, s, c, &wsproto.ListPeers{Type: wsproto.TypeListPeers})
		if err != nil {
			return Sent{}, err
		}
		if req, err = s.Broadcast(peers.Peers, []byte(text), priority, cid); err != nil {
			return Sent{}, err
		}
	} else {
		m, err := s.ResolveMember(ctx, to)
		if err != nil {
			return Sent{}, err
		}
		if req, err = SealedSend(s.ID, m.Id.String(), m.Pubkey, []byte(text), priority, cid); err != nil {
			return Sent{}, err
		}
		label = "@" + m.DisplayName
	}
	ack, err := Ask[wsproto.Ack](ctx, s, c, req)
	return Sent{Label: label, Ack: ack}, err
}

// Broadcast boxes text once for every other online peer (one envelope per
// member, whatever its number of sessions): direct bodies are crypto_box
// per recipient, so a broadcast is as many envelopes as peers.
func (s *Session) Broadcast(peers []wsproto.PeerView, text []byte, priority, clientMessageID string) (*wsproto.Send, error) {
	var envs []wsproto.Envelope
	seen := map[string]bool{s.Mesh.MemberID: true}
	for _, p := range peers {
		if seen[p.MemberID] || p.DisconnectedAt != nil {
			continue
		}
		seen[p.MemberID] = true
		ct, nonce, err := meshcrypto.SealDirect(text, s.ID, p.Pubkey)
		if err != nil {
			continue // a malformed key: that peer is reported missing in the ack
		}
		envs = append(envs, wsproto.Envelope{To: p.MemberID, Nonce: nonce, Ciphertext: ct})
	}
	if len(envs) == 0 {
		return nil, fmt.Errorf("%w in mesh %s", ErrNobodyOnline, s.Mesh.Slug)
	}
	return &wsproto.Send{Type: wsproto.TypeSend, To: "*", Priority: priority, ClientMessageID: clientMessageID, Envelopes: envs}, nil
}

// Direct is a received direct message, opened.
type Direct struct {
	wsproto.Push
	// Text is the plaintext; "" with Undecryptable when it did not open.
	Text          string
	Undecryptable bool
}

// OpenPush decrypts a pushed direct message with our identity.
func (s *Session) OpenPush(p wsproto.Push) Direct { return OpenPush(p, s.ID) }

// OpenPush decrypts a pushed direct message for the identity id.
func OpenPush(p wsproto.Push, id meshcrypto.Identity) Direct {
	d := Direct{Push: p, Undecryptable: true}
	if b, err := meshcrypto.OpenDirect(p.Ciphertext, p.Nonce, id, p.From.Pubkey); err == nil {
		d.Text, d.Undecryptable = string(b), false
	}
	return d
}

// AckPushes acknowledges pushed messages by id without waiting, at most
// 256 ids a frame (a lost ack only means a re-push, recognised by id).
func AckPushes(ctx context.Context, c interface {
	Send(ctx context.Context, frame any) error
}, ids []string) error {
	for len(ids) > 0 {
		n := min(len(ids), 256)
		if err := c.Send(ctx, wsproto.AckPushes{Type: wsproto.TypeAck, IDs: ids[:n]}); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// SetStatus reports the session's status (and summary, when not nil) on
// /ws; source is manual or jsonl.
func (s *Session) SetStatus(ctx context.Context, c Caller, status string, summary *string, source string) (wsproto.Ack, error) {
	return Ask[wsproto.Ack](ctx, s, c, &wsproto.SetStatus{Type: wsproto.TypeSetStatus, Status: status, Summary: summary, Source: source})
}

// MessageStates asks where the direct messages we sent stand.
func (s *Session) MessageStates(ctx context.Context, c Caller, ids ...string) ([]wsproto.MessageState, error) {
	f, err := Ask[wsproto.MessageStatus](ctx, s, c, &wsproto.MessageStatusQuery{Type: wsproto.TypeMessageStatus, IDs: ids})
	return f.Messages, err
}
