package claudecode

import (
	"context"
	"encoding/json"
	"io"
	"time"
)

// HookPayload is the part of a Claude Code hook's stdin JSON we use.
type HookPayload struct {
	SessionID      string `json:"session_id"`
	TranscriptPath string `json:"transcript_path"`
	Cwd            string `json:"cwd"`
	HookEventName  string `json:"hook_event_name"`
}

// StatusForEvent maps a hook event to the status it means: a prompt
// submitted starts a turn (working), Stop ends it (idle). Other events
// say nothing about the status (ok false).
func StatusForEvent(event string) (status string, ok bool) {
	switch event {
	case "UserPromptSubmit":
		return Working, true
	case "Stop":
		return Idle, true
	}
	return "", false
}

// ReadHookPayload reads the hook JSON from r for at most wait: Claude
// Code closes stdin after writing it, but a hook run by hand (or a stdin
// nobody closes) must not block. A missing or unreadable payload is the
// zero payload.
func ReadHookPayload(ctx context.Context, r io.Reader, wait time.Duration) HookPayload {
	type result struct{ b []byte }
	ch := make(chan result, 1)
	go func() { // left behind if stdin never ends: the process exits soon anyway
		b, _ := io.ReadAll(io.LimitReader(r, 1<<20))
		ch <- result{b}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	var p HookPayload
	select {
	case res := <-ch:
		_ = json.Unmarshal(res.b, &p)
	case <-t.C:
	case <-ctx.Done():
	}
	return p
}
