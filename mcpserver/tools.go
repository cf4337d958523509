package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// instructions is what the client shows the model about this server.
const instructions = `claudemesh connects this Claude Code session to a mesh: other Claude Code sessions ("peers") and the people who run them. Messages are end-to-end encrypted.
Use list_peers to see who is online and what they are doing; send_message to message a peer (@name) or everyone (*); check_messages to read direct messages sent to you (they may also arrive on their own as channel messages); topic_post and topic_history for shared topics like #general.
Message a peer when you need something only they can do or know, or to hand over work; do not chat needlessly. Reply to a message with send_message to its sender.`

// serverTool is one tool: its declaration and its handler, made together
// by one function per tool (sendMessageTool, listPeersTool, …). The names
// and schemas are a compatibility surface: testdata/tools.golden.json
// holds them and TestToolsListGolden compares.
type serverTool struct {
	Tool *mcp.Tool
	add  func(srv *mcp.Server)
}

func newTool[In any](t *mcp.Tool, h mcp.ToolHandlerFor[In, any]) serverTool {
	return serverTool{Tool: t, add: func(srv *mcp.Server) { mcp.AddTool(srv, t, h) }}
}

// tools is every tool the server offers, in the order they are listed.
func (s *Server) tools() []serverTool {
	return []serverTool{sendMessageTool(s), listPeersTool(s), checkMessagesTool(s), setSummaryTool(s), setStatusTool(s),
		messageStatusTool(s), topicPostTool(s), topicHistoryTool(s)}
}

func (s *Server) addTools(srv *mcp.Server) {
	for _, t := range s.tools() {
		t.add(srv)
	}
}

func str(desc string, enum ...string) *jsonschema.Schema {
	sc := &jsonschema.Schema{Type: "string", Description: desc}
	for _, e := range enum {
		sc.Enum = append(sc.Enum, e)
	}
	return sc
}

func ptr[T any](v T) *T { return &v }

func text(format string, args ...any) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(format, args...)}}}
}

// Tool inputs. The json names are upstream claudemesh's, so prompts and
// skills written for it keep working.

// ---- send_message ----

type sendInput struct {
	To       any    `json:"to"`
	Message  string `json:"message"`
	Priority string `json:"priority,omitempty"`
}

func sendMessageTool(s *Server) serverTool {
	schema := &jsonschema.Schema{Type: "object", Required: []string{"to", "message"}, Properties: map[string]*jsonschema.Schema{
		"to": {Description: "who gets it: @name (a peer's display name), a member id, a pubkey, * for every peer online now, or a list of these",
			AnyOf: []*jsonschema.Schema{{Type: "string"}, {Type: "array", Items: &jsonschema.Schema{Type: "string"}, MinItems: ptr(1)}}},
		"message":  str("the text to send; it is encrypted for each recipient"),
		"priority": str("now interrupts a busy peer; next (default) waits until the peer is idle; low is for anything that can wait", "now", "next", "low"),
	}}
	return newTool(&mcp.Tool{Name: "send_message", InputSchema: schema, Description: "Send an end-to-end encrypted direct message to one or more peers of the mesh. " +
		"The broker stores it until the recipient's session reads it; the answer gives a message id per recipient for message_status. " +
		"Use priority now only when the peer must stop what it is doing."}, s.sendMessage)
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
	if !slices.Contains(peer.Priorities, prio) {
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
	sent, err := s.sess.SendDirect(ctx, s.link, to, msg, prio, "mcp")
	if err != nil {
		return "", err
	}
	ids := sent.Ack.IDs
	for _, id := range ids {
		s.sent.add(id, sent.Label)
	}
	if to == "*" {
		return fmt.Sprintf("*: sent to %d peer(s) (message ids %s)", len(ids), strings.Join(ids, ", ")), nil
	}
	return fmt.Sprintf("%s: sent (message id %s)", sent.Label, strings.Join(ids, ", ")), nil
}

// ---- list_peers ----

type listPeersInput struct {
	MeshSlug string `json:"mesh_slug,omitempty" jsonschema:"the mesh to list, by slug (default: the mesh this session is connected to)"`
}

func listPeersTool(s *Server) serverTool {
	return newTool(&mcp.Tool{Name: "list_peers", Description: "List the Claude Code sessions online in the mesh: name, status (idle, working, dnd), " +
		"what each is doing (its summary) and its directory. Call it before messaging someone you have not talked to.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, s.listPeers)
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
	peers, err := sess.ListPeers(ctx)
	if err != nil {
		return nil, nil, err
	}
	if len(peers) == 0 {
		return text("Nobody is online in mesh %s.", sess.Mesh.Slug), nil, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d session(s) online in mesh %s:\n", len(peers), sess.Mesh.Slug)
	for _, p := range peers {
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

// ---- check_messages ----

type noInput struct{}

func checkMessagesTool(s *Server) serverTool {
	return newTool(&mcp.Tool{Name: "check_messages", Description: "Read the direct messages sent to you since the last call, decrypted, oldest first, each naming its sender. " +
		"Each message is returned once. Call it when told a message is waiting, or when you are waiting for an answer."}, s.checkMessages)
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

// ---- set_summary ----

type summaryInput struct {
	Summary string `json:"summary" jsonschema:"one line: what you are working on, e.g. 'refactoring the ws package'"`
}

func setSummaryTool(s *Server) serverTool {
	return newTool(&mcp.Tool{Name: "set_summary", Description: "Tell the other peers in one line what this session is working on; they see it in list_peers. Keeps your status.",
		Annotations: &mcp.ToolAnnotations{IdempotentHint: true}}, s.setSummary)
}

func (s *Server) setSummary(ctx context.Context, _ *mcp.CallToolRequest, in summaryInput) (*mcp.CallToolResult, any, error) {
	sum := strings.TrimSpace(in.Summary)
	// The frame needs a status: keep the session's current one.
	peers, err := peer.Ask[wsproto.Peers](ctx, s.sess, s.link, &wsproto.ListPeers{Type: wsproto.TypeListPeers})
	if err != nil {
		return nil, nil, err
	}
	st := "idle"
	for _, p := range peers.Peers {
		if p.MemberID == s.sess.Mesh.MemberID && p.SessionID == s.opt.SessionID {
			st = p.Status
		}
	}
	if _, err := s.sess.SetStatus(ctx, s.link, st, &sum, "manual"); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	s.summary = &sum
	s.mu.Unlock()
	return text("Summary set: %q (status stays %s).", sum, st), nil, nil
}

// ---- set_status ----

type statusInput struct {
	Status string `json:"status"`
}

func setStatusTool(s *Server) serverTool {
	return newTool(&mcp.Tool{Name: "set_status", InputSchema: &jsonschema.Schema{Type: "object", Required: []string{"status"},
		Properties: map[string]*jsonschema.Schema{"status": str("idle: receive every message; working: only priority now reaches you; dnd: do not disturb, only now, and nothing automatic lifts it", "idle", "working", "dnd")}},
		Description: "Set this session's status by hand. Usually unnecessary: it follows what you are doing automatically. Use dnd for focused work that must not be interrupted, and idle to lift it.",
		Annotations: &mcp.ToolAnnotations{IdempotentHint: true}}, s.setStatus)
}

func (s *Server) setStatus(ctx context.Context, _ *mcp.CallToolRequest, in statusInput) (*mcp.CallToolResult, any, error) {
	if !slices.Contains([]string{"idle", "working", "dnd"}, in.Status) {
		return nil, nil, fmt.Errorf("status must be idle, working or dnd, not %q", in.Status)
	}
	ack, err := s.sess.SetStatus(ctx, s.link, in.Status, nil, "manual")
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	s.status = in.Status // restored after a reconnect
	s.mu.Unlock()
	got := in.Status
	if ack.Session != nil {
		got = ack.Session.Status
	}
	return text("Status is now %s.", got), nil, nil
}

// ---- message_status ----

type messageStatusInput struct {
	ID string `json:"id" jsonschema:"the message id send_message returned"`
}

func messageStatusTool(s *Server) serverTool {
	return newTool(&mcp.Tool{Name: "message_status", Description: "Where a direct message you sent is: queued (stored by the broker, waiting for the recipient), " +
		"delivered (handed to the recipient's session, not read yet), acked (read by the recipient's session) or expired.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, s.messageStatus)
}

func (s *Server) messageStatus(ctx context.Context, _ *mcp.CallToolRequest, in messageStatusInput) (*mcp.CallToolResult, any, error) {
	id := strings.TrimSpace(in.ID)
	states, err := s.sess.MessageStates(ctx, s.link, id)
	if err != nil {
		return nil, nil, err
	}
	if len(states) == 0 {
		return nil, nil, fmt.Errorf("no direct message %s sent by you (use an id send_message returned)", id)
	}
	m := states[0]
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
