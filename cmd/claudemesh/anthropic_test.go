package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// standIn is a scripted stand-in for the Anthropic Messages API on
// loopback, for the real Claude Code CLI. Its "model" reads the prompt:
// a line `TOOL <name> <json input>` makes it call that tool; once the tool
// result is back it ends the turn with `RESULT: <the result's text>`, so
// the session's output shows what the tool returned. Any other request
// (titles, quota probes) gets a short text answer. Unknown endpoints are
// logged and answered 404. CLAUDEMESH_TEST_STANDIN_LOG=1 logs every request
// and answer (what Claude Code sent, by role and block).
type standIn struct {
	t   *testing.T
	srv *httptest.Server
	// onTool runs when the model is about to call a tool, in the request
	// (Claude Code has run its UserPromptSubmit hook by then). Set before
	// the server starts: handlers read it unlocked.
	onTool func(name string)

	mu      sync.Mutex
	unknown []string
	n       int
}

var toolLine = regexp.MustCompile(`TOOL (\S+) (\{.*\})`)

func newStandIn(t *testing.T, onTool func(name string)) *standIn {
	s := &standIn{t: t, onTool: onTool}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

type msgRequest struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Name string `json:"name"`
	} `json:"tools"`
}

type block struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   json.RawMessage `json:"content,omitempty"`
}

// blocks reads a message's content: a string or a list of blocks.
func blocks(raw json.RawMessage) []block {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []block{{Type: "text", Text: s}}
	}
	var bs []block
	_ = json.Unmarshal(raw, &bs)
	return bs
}

// resultText is a tool_result's content as text.
func resultText(raw json.RawMessage) string {
	var out []string
	for _, b := range blocks(raw) {
		if b.Type == "text" {
			out = append(out, b.Text)
		}
	}
	return strings.Join(out, "\n")
}

func (s *standIn) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/v1/messages") {
		s.mu.Lock()
		s.unknown = append(s.unknown, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		http.Error(w, `{"type":"error","error":{"type":"not_found_error","message":"not in the stand-in"}}`, http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(r.Body)
	if strings.HasSuffix(r.URL.Path, "/count_tokens") {
		_, _ = w.Write([]byte(`{"input_tokens":100}`))
		return
	}
	var req msgRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	out, stop := s.answer(req)
	if os.Getenv("CLAUDEMESH_TEST_STANDIN_LOG") != "" {
		var desc []string
		for _, m := range req.Messages {
			for _, b := range blocks(m.Content) {
				desc = append(desc, fmt.Sprintf("%s/%s:%.200q", m.Role, b.Type, b.Text))
			}
		}
		s.t.Logf("stand-in %s stream=%v tools=%d: %v → %v %s", r.URL.Path, req.Stream, len(req.Tools), desc, out, stop)
	}
	s.mu.Lock()
	s.n++
	id := fmt.Sprintf("msg_standin_%d", s.n)
	s.mu.Unlock()
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "type": "message", "role": "assistant", "model": req.Model,
			"content": out, "stop_reason": stop, "stop_sequence": nil, "usage": map[string]int{"input_tokens": 100, "output_tokens": 10}})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl, _ := w.(http.Flusher)
	ev := func(name string, data any) {
		b, _ := json.Marshal(data)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
		if fl != nil {
			fl.Flush()
		}
	}
	ev("message_start", map[string]any{"type": "message_start", "message": map[string]any{"id": id, "type": "message", "role": "assistant",
		"model": req.Model, "content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": map[string]int{"input_tokens": 100, "output_tokens": 1}}})
	for i, b := range out {
		switch b.Type {
		case "text":
			ev("content_block_start", map[string]any{"type": "content_block_start", "index": i, "content_block": map[string]any{"type": "text", "text": ""}})
			ev("content_block_delta", map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]any{"type": "text_delta", "text": b.Text}})
		case "tool_use":
			ev("content_block_start", map[string]any{"type": "content_block_start", "index": i,
				"content_block": map[string]any{"type": "tool_use", "id": b.ID, "name": b.Name, "input": map[string]any{}}})
			ev("content_block_delta", map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]any{"type": "input_json_delta", "partial_json": string(b.Input)}})
		}
		ev("content_block_stop", map[string]any{"type": "content_block_stop", "index": i})
	}
	ev("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}, "usage": map[string]int{"output_tokens": 10}})
	ev("message_stop", map[string]any{"type": "message_stop"})
}

// answer is the scripted model: call the tool the prompt names, then
// report its result.
func (s *standIn) answer(req msgRequest) ([]block, string) {
	if len(req.Messages) == 0 {
		return []block{{Type: "text", Text: "ok"}}, "end_turn"
	}
	// The newest user turn (Claude Code may put system-role messages after it).
	last := req.Messages[len(req.Messages)-1]
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == "user" {
			last = req.Messages[i]
			break
		}
	}
	for _, b := range blocks(last.Content) {
		if b.Type == "tool_result" {
			return []block{{Type: "text", Text: "RESULT: " + resultText(b.Content)}}, "end_turn"
		}
	}
	for _, b := range blocks(last.Content) {
		m := toolLine.FindStringSubmatch(b.Text)
		if b.Type != "text" || m == nil {
			continue
		}
		name, input := m[1], m[2]
		offered := false
		var names []string
		for _, t := range req.Tools {
			names = append(names, t.Name)
			offered = offered || t.Name == name
		}
		if !offered {
			return []block{{Type: "text", Text: "NO TOOL " + name + " among " + strings.Join(names, ",")}}, "end_turn"
		}
		if s.onTool != nil {
			s.onTool(name)
		}
		s.mu.Lock()
		s.n++
		id := fmt.Sprintf("toolu_standin_%d", s.n)
		s.mu.Unlock()
		return []block{{Type: "tool_use", ID: id, Name: name, Input: json.RawMessage(input)}}, "tool_use"
	}
	return []block{{Type: "text", Text: "ok"}}, "end_turn"
}

// unknownEndpoints lists the requests the stand-in did not know.
func (s *standIn) unknownEndpoints() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unknown...)
}
