package main_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claudemesh/claudemesh-go/mcpserver"
)

// mcpSession is an SDK client session talking to a `claudemesh mcp`
// process; channel notifications it receives land in notes.
type mcpSession struct {
	*mcp.ClientSession
	notes  chan mcpserver.ChannelParams
	stderr *syncBuffer
}

// startMCP runs `claudemesh mcp` for h as session sid. With channel the
// client declares the experimental claude/channel capability.
func (h *home) startMCP(sid string, channel bool) *mcpSession {
	h.t.Helper()
	return h.startMCPOpts("", sid, channel)
}

// startMCPIn runs `claudemesh mcp` in dir (its cwd: the project).
func (h *home) startMCPIn(dir, sid string) *mcpSession {
	h.t.Helper()
	return h.startMCPOpts(dir, sid, false)
}

func (h *home) startMCPOpts(dir, sid string, channel bool) *mcpSession {
	h.t.Helper()
	_, cli := binaries(h.t)
	cmd := exec.Command(cli, "mcp")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), h.env...)
	cmd.Env = append(cmd.Env, "CLAUDEMESH_SESSION_ID="+sid)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	notes := make(chan mcpserver.ChannelParams, 100)
	var caps *mcp.ClientCapabilities
	if channel {
		caps = &mcp.ClientCapabilities{Experimental: map[string]any{mcpserver.ChannelCapability: map[string]any{}}}
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, &mcp.ClientOptions{Capabilities: caps})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := c.Connect(ctx, &tapTransport{Transport: &mcp.CommandTransport{Command: cmd}, notes: notes}, nil)
	if err != nil {
		h.t.Fatalf("connect to claudemesh mcp: %v\n%s", err, stderr.String())
	}
	h.t.Cleanup(func() {
		_ = cs.Close()
		if h.t.Failed() {
			h.t.Logf("claudemesh mcp (%s) stderr:\n%s", sid, stderr.String())
		}
	})
	return &mcpSession{ClientSession: cs, notes: notes, stderr: stderr}
}

// tapTransport hands channel notifications to the test instead of the SDK
// (which has no handler for the method).
type tapTransport struct {
	mcp.Transport
	notes chan mcpserver.ChannelParams
}

func (t *tapTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &tapConn{Connection: c, notes: t.notes}, nil
}

type tapConn struct {
	mcp.Connection
	notes chan mcpserver.ChannelParams
}

func (c *tapConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	for {
		m, err := c.Connection.Read(ctx)
		if err != nil {
			return nil, err
		}
		if r, ok := m.(*jsonrpc.Request); ok && r.Method == mcpserver.ChannelMethod {
			// Claude Code drops a notification whose meta holds anything but
			// strings: decode loosely and check.
			var loose struct {
				Content string         `json:"content"`
				Meta    map[string]any `json:"meta"`
			}
			if err := json.Unmarshal(r.Params, &loose); err != nil {
				return nil, err
			}
			p := mcpserver.ChannelParams{Content: loose.Content, Meta: map[string]string{}}
			for k, v := range loose.Meta {
				s, ok := v.(string)
				if !ok {
					s = "NOT A STRING"
				}
				p.Meta[k] = s
			}
			c.notes <- p
			continue
		}
		return m, nil
	}
}

// waitLog waits until the server's stderr holds text.
func (s *mcpSession) waitLog(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(s.stderr.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("the server never logged %q; stderr:\n%s", text, s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// call runs a tool and returns its text.
func (s *mcpSession) call(t *testing.T, name string, args map[string]any) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String(), res.IsError
}

// until calls a tool until its text satisfies ok.
func (s *mcpSession) until(t *testing.T, name string, args map[string]any, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, _ := s.call(t, name, args)
		if ok(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never matched; last answer:\n%s", name, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMCP: two Claude Code sessions talk through `claudemesh mcp`: the
// tools are listed with schemas, a direct message is read once through
// check_messages, list_peers shows both with their status, a client that
// declared the channel gets it as notifications/claude/channel with
// string-only meta, and a message received but not yet read survives a
// restart of the server.
func TestMCP(t *testing.T) {
	b := startBroker(t)
	inv := b.invites(3)
	alice, bob, carol := newHome(t, "CLAUDEMESH_RESEAL_INTERVAL=300ms"), newHome(t), newHome(t)
	alice.must("join", inv[0], "--server", b.url, "--name", "alice")
	bob.must("join", inv[1], "--server", b.url, "--name", "bob")
	carol.must("join", inv[2], "--server", b.url, "--name", "carol")

	a := alice.startMCP("cc-alice", false)
	bs := bob.startMCP("cc-bob", false)

	tools, err := a.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
		if tl.Description == "" || tl.InputSchema == nil {
			t.Errorf("tool %s has no description or schema", tl.Name)
		}
	}
	for _, want := range []string{"send_message", "list_peers", "check_messages", "set_summary", "set_status", "message_status", "topic_post", "topic_history"} {
		if !slices.Contains(names, want) {
			t.Errorf("tool %s missing from %v", want, names)
		}
	}
	schema, _ := json.Marshal(tools.Tools[slices.Index(names, "send_message")].InputSchema)
	for _, want := range []string{`"to"`, `"message"`, `"priority"`, `"now"`} {
		if !strings.Contains(string(schema), want) {
			t.Errorf("send_message schema lacks %s: %s", want, schema)
		}
	}

	peers := a.until(t, "list_peers", nil, func(s string) bool { return strings.Contains(s, "@alice") && strings.Contains(s, "@bob") })
	if !strings.Contains(peers, "idle") || !strings.Contains(peers, "(this session)") {
		t.Errorf("list_peers:\n%s", peers)
	}

	secret := "review PR 42 " + randomWord()
	if out, isErr := a.call(t, "send_message", map[string]any{"to": "@bob", "message": secret}); isErr || !strings.Contains(out, "@bob: sent") {
		t.Fatalf("send_message: %q", out)
	}
	got := bs.until(t, "check_messages", nil, func(s string) bool { return strings.Contains(s, secret) })
	if !strings.Contains(got, "alice: "+secret) || strings.Contains(got, "[URGENT]") {
		t.Errorf("check_messages: %q", got)
	}
	if again, _ := bs.call(t, "check_messages", nil); again != "No new messages." {
		t.Errorf("second check_messages: %q", again)
	}
	// check_messages acked it: message_status says so (acks are sent
	// without waiting, so allow a moment).
	sent, _ := a.call(t, "send_message", map[string]any{"to": "@bob", "message": "status?"})
	msgID := strings.TrimSuffix(sent[strings.LastIndex(sent, " ")+1:], ")")
	bs.until(t, "check_messages", nil, func(s string) bool { return strings.Contains(s, "status?") })
	a.until(t, "message_status", map[string]any{"id": msgID}, func(s string) bool { return strings.Contains(s, ": acked") })

	// The channel: carol's client declares it and gets a notification.
	cs := carol.startMCP("cc-carol", true)
	a.until(t, "list_peers", nil, func(s string) bool { return strings.Contains(s, "@carol") })
	urgent := "prod is down " + randomWord()
	if out, isErr := a.call(t, "send_message", map[string]any{"to": []any{"@carol"}, "message": urgent, "priority": "now"}); isErr {
		t.Fatalf("send_message to carol: %q", out)
	}
	select {
	case n := <-cs.notes:
		if n.Content != "[URGENT] alice: "+urgent {
			t.Errorf("channel content %q", n.Content)
		}
		for k, v := range n.Meta {
			if v == "NOT A STRING" {
				t.Errorf("meta %s is not a string", k)
			}
		}
		if n.Meta["from_name"] != "alice" || n.Meta["priority"] != "now" || n.Meta["message_id"] == "" || n.Meta["mesh_slug"] == "" || n.Meta["from_pubkey"] == "" {
			t.Errorf("channel meta %v", n.Meta)
		}
	case <-time.After(20 * time.Second):
		out, _ := cs.call(t, "check_messages", nil)
		t.Fatalf("no channel notification within a minute; check_messages: %s", out)
	}
	if out, _ := cs.call(t, "check_messages", nil); out != "No new messages." {
		t.Errorf("check_messages after the channel: %q", out)
	}

	// A topic post reaches carol's channel too, decrypted once alice's
	// server has sealed the new topic key for her.
	news := "v1.4 is out " + randomWord()
	if out, isErr := a.call(t, "topic_post", map[string]any{"topic": "#general", "message": news}); isErr || !strings.Contains(out, "#general: posted") {
		t.Fatalf("topic_post: %q", out)
	}
	select {
	case n := <-cs.notes:
		if n.Content != "alice (#general): "+news || n.Meta["topic"] != "general" || n.Meta["from_name"] != "alice" || n.Meta["message_id"] == "" {
			t.Errorf("topic channel notification %+v", n)
		}
	case <-time.After(time.Minute):
		t.Fatal("no channel notification for the topic post within a minute")
	}
	if hist, _ := bs.call(t, "topic_history", map[string]any{"topic": "general"}); !strings.Contains(hist, "@alice: "+news) {
		t.Errorf("bob's topic_history: %q", hist)
	}

	// A message bob's server received but the model has not read survives
	// a restart: it is in the spool, unacked, and shown once.
	kept := "kept across restarts " + randomWord()
	a.call(t, "send_message", map[string]any{"to": "@bob", "message": kept})
	deadline := time.Now().Add(time.Minute)
	for !spoolHas(t, bob.dir, kept) {
		if time.Now().After(deadline) {
			t.Fatal("bob's server never spooled the message")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := bs.Close(); err != nil {
		t.Logf("close bob's session: %v", err)
	}
	bs2 := bob.startMCP("cc-bob", false)
	got = bs2.until(t, "check_messages", nil, func(s string) bool { return strings.Contains(s, kept) })
	if strings.Count(got, kept) != 1 {
		t.Errorf("after the restart: %q", got)
	}
	if again, _ := bs2.call(t, "check_messages", nil); again != "No new messages." {
		t.Errorf("check_messages after the restart, again: %q", again)
	}
}

// spoolHas reports whether a spool file in the config dir holds text.
func spoolHas(t *testing.T, dir, text string) bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "spool", "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), text) {
			return true
		}
	}
	return false
}
