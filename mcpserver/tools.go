package mcpserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/ws"
)

// instructions is what the client shows the model about this server.
const instructions = `claudemesh connects this Claude Code session to a mesh: other Claude Code sessions ("peers") and the people who run them. Messages are end-to-end encrypted.
Use list_peers to see who is online and what they are doing; send_message to message a peer (@name) or everyone (*); check_messages to read direct messages sent to you (they may also arrive on their own as channel messages); topic_post and topic_history for shared topics like #general.
Message a peer when you need something only they can do or know, or to hand over work; do not chat needlessly. Reply to a message with send_message to its sender.`

// Tool inputs. The json names are upstream claudemesh's, so prompts and
// skills written for it keep working.
type sendInput struct {
	To       any    `json:"to"`
	Message  string `json:"message"`
	Priority string `json:"priority,omitempty"`
}

type listPeersInput struct {
	MeshSlug string `json:"mesh_slug,omitempty" jsonschema:"the mesh to list, by slug (default: the mesh this session is connected to)"`
}

type noInput struct{}

type summaryInput struct {
	Summary string `json:"summary" jsonschema:"one line: what you are working on, e.g. 'refactoring the ws package'"`
}

type statusInput struct {
	Status string `json:"status"`
}

type messageStatusInput struct {
	ID string `json:"id" jsonschema:"the message id send_message returned"`
}

type topicPostInput struct {
	Topic   string `json:"topic" jsonschema:"the topic name, with or without #, e.g. general"`
	Message string `json:"message" jsonschema:"the text to post"`
}

type topicHistoryInput struct {
	Topic string `json:"topic" jsonschema:"the topic name, with or without #, e.g. general"`
	Limit int    `json:"limit,omitempty" jsonschema:"how many of the newest messages, 1 to 200 (default 20)"`
}

func str(desc string, enum ...string) *jsonschema.Schema {
	s := &jsonschema.Schema{Type: "string", Description: desc}
	for _, e := range enum {
		s.Enum = append(s.Enum, e)
	}
	return s
}

func (s *Server) addTools(srv *mcp.Server) {
	sendSchema := &jsonschema.Schema{Type: "object", Required: []string{"to", "message"}, Properties: map[string]*jsonschema.Schema{
		"to": {Description: "who gets it: @name (a peer's display name), a member id, a pubkey, * for every peer online now, or a list of these",
			AnyOf: []*jsonschema.Schema{{Type: "string"}, {Type: "array", Items: &jsonschema.Schema{Type: "string"}, MinItems: ptr(1)}}},
		"message":  str("the text to send; it is encrypted for each recipient"),
		"priority": str("now interrupts a busy peer; next (default) waits until the peer is idle; low is for anything that can wait", "now", "next", "low"),
	}}
	mcp.AddTool(srv, &mcp.Tool{Name: "send_message", InputSchema: sendSchema, Description: "Send an end-to-end encrypted direct message to one or more peers of the mesh. " +
		"The broker stores it until the recipient's session reads it; the answer gives a message id per recipient for message_status. " +
		"Use priority now only when the peer must stop what it is doing."}, s.sendMessage)
	mcp.AddTool(srv, &mcp.Tool{Name: "list_peers", Description: "List the Claude Code sessions online in the mesh: name, status (idle, working, dnd), " +
		"what each is doing (its summary) and its directory. Call it before messaging someone you have not talked to.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, s.listPeers)
	mcp.AddTool(srv, &mcp.Tool{Name: "check_messages", Description: "Read the direct messages sent to you since the last call, decrypted, oldest first, each naming its sender. " +
		"Each message is returned once. Call it when told a message is waiting, or when you are waiting for an answer."}, s.checkMessages)
	mcp.AddTool(srv, &mcp.Tool{Name: "set_summary", Description: "Tell the other peers in one line what this session is working on; they see it in list_peers. Keeps your status.",
		Annotations: &mcp.ToolAnnotations{IdempotentHint: true}}, s.setSummary)
	mcp.AddTool(srv, &mcp.Tool{Name: "set_status", InputSchema: &jsonschema.Schema{Type: "object", Required: []string{"status"},
		Properties: map[string]*jsonschema.Schema{"status": str("idle: receive every message; working: only priority now reaches you; dnd: do not disturb, only now, and nothing automatic lifts it", "idle", "working", "dnd")}},
		Description: "Set this session's status by hand. Usually unnecessary: it follows what you are doing automatically. Use dnd for focused work that must not be interrupted, and idle to lift it.",
		Annotations: &mcp.ToolAnnotations{IdempotentHint: true}}, s.setStatus)
	mcp.AddTool(srv, &mcp.Tool{Name: "message_status", Description: "Where a direct message you sent is: queued (stored by the broker, waiting for the recipient), " +
		"delivered (handed to the recipient's session, not read yet), acked (read by the recipient's session) or expired.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, s.messageStatus)
	mcp.AddTool(srv, &mcp.Tool{Name: "topic_post", Description: "Post a message to a topic of the mesh (e.g. general), encrypted with the topic's key. Every topic member can read it; you must have joined the topic."}, s.topicPost)
	mcp.AddTool(srv, &mcp.Tool{Name: "topic_history", Description: "Read a topic's newest messages, decrypted, oldest first.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, s.topicHistory)
}

func ptr[T any](v T) *T { return &v }

func text(format string, args ...any) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(format, args...)}}}
}

// recipients turns the to argument into a list.
func recipients(to any) ([]string, error) {
	var out []string
	switch v := to.(type) {
	case string:
		out = []string{v}
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, errors.New("to must be a string or a list of strings")
			}
			out = append(out, s)
		}
	default:
		return nil, errors.New("to must be a string or a list of strings")
	}
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
		if out[i] == "" {
			return nil, errors.New("to has an empty recipient")
		}
	}
	return out, nil
}

func (s *Server) sendMessage(ctx context.Context, _ *mcp.CallToolRequest, in sendInput) (*mcp.CallToolResult, any, error) {
	to, err := recipients(in.To)
	if err != nil {
		return nil, nil, err
	}
	if strings.TrimSpace(in.Message) == "" {
		return nil, nil, errors.New("message is empty")
	}
	prio := in.Priority
	if prio == "" {
		prio = "next"
	}
	if !slices.Contains([]string{"now", "next", "low"}, prio) {
		return nil, nil, fmt.Errorf("priority must be now, next or low, not %q", prio)
	}
	var lines []string
	failed := 0
	for _, t := range to {
		line, err := s.sendOne(ctx, t, in.Message, prio)
		if err != nil {
			failed++
			line = fmt.Sprintf("%s: not sent: %v", t, err)
		}
		lines = append(lines, line)
	}
	res := text("%s", strings.Join(lines, "\n"))
	res.IsError = failed == len(to)
	return res, nil, nil
}

// sendOne sends to one recipient: a topic, everyone, or one member.
func (s *Server) sendOne(ctx context.Context, to, msg, prio string) (string, error) {
	if strings.HasPrefix(to, "#") {
		return s.postTopic(ctx, to, msg)
	}
	var frame map[string]any
	var label string
	if to == "*" {
		f, err := s.link.call(ctx, map[string]any{"type": ws.TypeListPeers})
		if err != nil {
			return "", err
		}
		var envs []map[string]string
		seen := map[string]bool{s.sess.Mesh.MemberID: true}
		for _, p := range f.Peers {
			if seen[p.MemberID] || p.DisconnectedAt != nil {
				continue
			}
			seen[p.MemberID] = true
			ct, nonce, err := meshcrypto.SealDirect([]byte(msg), s.sess.ID, p.Pubkey)
			if err != nil {
				continue
			}
			envs = append(envs, map[string]string{"to": p.MemberID, "nonce": nonce, "ciphertext": ct})
		}
		if len(envs) == 0 {
			return "", errors.New("no other peer is online")
		}
		frame = map[string]any{"type": ws.TypeSend, "to": "*", "priority": prio, "clientMessageId": newClientID(), "envelopes": envs}
		label = "*"
	} else {
		m, err := s.sess.ResolveMember(ctx, to)
		if err != nil {
			return "", err
		}
		frame, err = ws.SealedSend(s.sess.ID, m.Id.String(), m.Pubkey, []byte(msg), prio, newClientID(), "")
		if err != nil {
			return "", err
		}
		label = "@" + m.DisplayName
	}
	ack, err := s.link.call(ctx, frame)
	if err != nil {
		return "", err
	}
	for _, id := range ack.IDs {
		s.sent.add(id, label)
	}
	if to == "*" {
		return fmt.Sprintf("*: sent to %d peer(s) (message ids %s)", len(ack.IDs), strings.Join(ack.IDs, ", ")), nil
	}
	return fmt.Sprintf("%s: sent (message id %s)", label, strings.Join(ack.IDs, ", ")), nil
}

func (s *Server) listPeers(ctx context.Context, _ *mcp.CallToolRequest, in listPeersInput) (*mcp.CallToolResult, any, error) {
	sess := s.sess
	if in.MeshSlug != "" && in.MeshSlug != sess.Mesh.Slug && in.MeshSlug != sess.Mesh.ID {
		other, err := s.opt.Home.Open(in.MeshSlug, s.opt.HTTP)
		if err != nil {
			return nil, nil, err
		}
		sess = other
	}
	limit := client.Limit(200)
	r, err := sess.API.ListPeersWithResponse(ctx, &client.ListPeersParams{Limit: &limit})
	if err := sess.Check(err, r, http.StatusOK); err != nil {
		return nil, nil, err
	}
	if len(r.JSON200.Items) == 0 {
		return text("Nobody is online in mesh %s.", sess.Mesh.Slug), nil, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d session(s) online in mesh %s:\n", len(r.JSON200.Items), sess.Mesh.Slug)
	for _, p := range r.JSON200.Items {
		you := ""
		if p.MemberId.String() == sess.Mesh.MemberID && p.SessionId == s.opt.SessionID {
			you = " (this session)"
		} else if p.MemberId.String() == sess.Mesh.MemberID {
			you = " (you, another session)"
		}
		fmt.Fprintf(&b, "- @%s%s: %s since %s", p.DisplayName, you, p.Status, p.StatusAt.UTC().Format(time.RFC3339))
		if p.Summary != "" {
			fmt.Fprintf(&b, ", %q", p.Summary)
		}
		if p.Cwd != "" {
			fmt.Fprintf(&b, ", in %s", p.Cwd)
		}
		fmt.Fprintf(&b, " [member %s, session %s]\n", p.MemberId, p.SessionId)
	}
	return text("%s", strings.TrimRight(b.String(), "\n")), nil, nil
}

func (s *Server) checkMessages(ctx context.Context, _ *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	note := ""
	select {
	case <-s.synced:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-time.After(10 * time.Second):
		note = " (not connected to the broker yet: more may be waiting there; try again shortly)"
	}
	msgs, err := s.inbox.take(nil)
	if err != nil {
		return nil, nil, err
	}
	if len(msgs) == 0 {
		return text("No new messages.%s", note), nil, nil
	}
	ids := make([]string, len(msgs))
	var b strings.Builder
	fmt.Fprintf(&b, "%d new message(s):\n", len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
		fmt.Fprintf(&b, "- %s (from member %s at %s, message id %s)\n", describe(m), m.FromID, m.CreatedAt.UTC().Format(time.RFC3339), m.ID)
	}
	s.link.ack(ctx, ids)
	return text("%s", strings.TrimRight(b.String(), "\n")), nil, nil
}

// setStatusFrame sends a manual set_status and remembers it for reconnects.
func (s *Server) setStatusFrame(ctx context.Context, status string, summary *string) (*ws.Frame, error) {
	f := map[string]any{"type": ws.TypeSetStatus, "status": status, "source": "manual"}
	if summary != nil {
		f["summary"] = *summary
	}
	ack, err := s.link.call(ctx, f)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.status = status
	if summary != nil {
		s.summary = summary
	}
	s.mu.Unlock()
	return ack, nil
}

func (s *Server) setSummary(ctx context.Context, _ *mcp.CallToolRequest, in summaryInput) (*mcp.CallToolResult, any, error) {
	sum := strings.TrimSpace(in.Summary)
	// The frame needs a status: keep the session's current one.
	f, err := s.link.call(ctx, map[string]any{"type": ws.TypeListPeers})
	if err != nil {
		return nil, nil, err
	}
	st := "idle"
	for _, p := range f.Peers {
		if p.MemberID == s.sess.Mesh.MemberID && p.SessionID == s.opt.SessionID {
			st = p.Status
		}
	}
	ack := map[string]any{"type": ws.TypeSetStatus, "status": st, "summary": sum, "source": "manual"}
	if _, err := s.link.call(ctx, ack); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	s.summary = &sum
	s.mu.Unlock()
	return text("Summary set: %q (status stays %s).", sum, st), nil, nil
}

func (s *Server) setStatus(ctx context.Context, _ *mcp.CallToolRequest, in statusInput) (*mcp.CallToolResult, any, error) {
	if !slices.Contains([]string{"idle", "working", "dnd"}, in.Status) {
		return nil, nil, fmt.Errorf("status must be idle, working or dnd, not %q", in.Status)
	}
	ack, err := s.setStatusFrame(ctx, in.Status, nil)
	if err != nil {
		return nil, nil, err
	}
	got := in.Status
	if ack.Session != nil {
		got = ack.Session.Status
	}
	return text("Status is now %s.", got), nil, nil
}

func (s *Server) messageStatus(ctx context.Context, _ *mcp.CallToolRequest, in messageStatusInput) (*mcp.CallToolResult, any, error) {
	id := strings.TrimSpace(in.ID)
	f, err := s.link.call(ctx, map[string]any{"type": ws.TypeMessageStatus, "ids": []string{id}})
	if err != nil {
		return nil, nil, err
	}
	if len(f.Messages) == 0 {
		return nil, nil, fmt.Errorf("no direct message %s sent by you (use an id send_message returned)", id)
	}
	m := f.Messages[0]
	to := m.To
	if label, ok := s.sent.get(id); ok && label != "*" {
		to = label
	}
	switch m.State {
	case "queued":
		return text("Message %s to %s: queued. The broker holds it until the recipient's session takes it (a busy peer gets priority next/low messages once idle).", id, to), nil, nil
	case "delivered":
		return text("Message %s to %s: delivered to the recipient's session at %s, not yet read.", id, to, m.DeliveredAt.Format(time.RFC3339)), nil, nil
	case "acked":
		return text("Message %s to %s: acked (read by the recipient's session) at %s.", id, to, m.AckedAt.Format(time.RFC3339)), nil, nil
	}
	return text("Message %s to %s: %s (never read; the broker gave up on it).", id, to, m.State), nil, nil
}

// sentLog remembers what this session sent, for message_status.
type sentLog struct {
	mu sync.Mutex
	to map[string]string
}

func newSentLog() *sentLog { return &sentLog{to: map[string]string{}} }

func (l *sentLog) add(id, to string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.to[id] = to
}

func (l *sentLog) get(id string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	to, ok := l.to[id]
	return to, ok
}

// newClientID is the idempotency key of one send.
func newClientID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "mcp-" + hex.EncodeToString(b[:])
}
