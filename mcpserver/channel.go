package mcpserver

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ChannelCapability is the experimental capability Claude Code reads to
// accept pushed messages, and ChannelMethod their notification method.
const (
	ChannelCapability = "claude/channel"
	ChannelMethod     = "notifications/claude/channel"
)

// channelTransport wraps the server's transport to keep its Connection:
// the SDK only sends notification methods it knows (its sending handler
// refuses others, and the session's connection is unexported), so the
// channel notification is written through the Connection itself, whose
// Write is safe for concurrent use by contract.
type channelTransport struct {
	mcp.Transport

	mu   sync.Mutex
	conn mcp.Connection
}

func (t *channelTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.conn = c
	t.mu.Unlock()
	return c, nil
}

// notify writes one JSON-RPC notification.
func (t *channelTransport) notify(ctx context.Context, method string, params any) error {
	b, err := json.Marshal(params)
	if err != nil {
		return err
	}
	t.mu.Lock()
	c := t.conn
	t.mu.Unlock()
	if c == nil {
		return errNotConnected
	}
	return c.Write(ctx, &jsonrpc.Request{Method: method, Params: b})
}

// ChannelParams are a channel notification's params. Meta holds strings
// only: Claude Code silently drops a notification with any other value.
type ChannelParams struct {
	Content string            `json:"content"`
	Meta    map[string]string `json:"meta"`
}

// channelParams renders a direct message for the session: content reads
// like "[URGENT] alice: …", meta carries the ids to reply with.
func channelParams(m Message, meshSlug string) ChannelParams {
	meta := map[string]string{}
	put := func(k, v string) {
		if v != "" {
			meta[k] = v
		}
	}
	put("from_id", m.FromID)
	put("from_name", m.FromName)
	put("from_pubkey", m.FromPubkey)
	put("mesh_slug", meshSlug)
	put("priority", m.Priority)
	put("message_id", m.ID)
	put("client_message_id", m.ClientMessageID)
	return ChannelParams{Content: describe(m), Meta: meta}
}

// describe is one message as the model reads it.
func describe(m Message) string {
	text := m.Text
	if m.Undecryptable {
		text = "[this message could not be decrypted]"
	}
	name := m.FromName
	if name == "" {
		name = "(unknown sender)"
	}
	return priorityPrefix(m.Priority) + name + ": " + text
}

func priorityPrefix(p string) string {
	switch p {
	case "now":
		return "[URGENT] "
	case "low":
		return "[low] "
	}
	return ""
}
